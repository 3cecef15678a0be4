"""Validation of student and teacher: frame probabilities -> events -> F1.

Every epoch, on the validation set (synthetic, strongly labelled): the paper's
intersection F1 (``eval.dtc``/``eval.gtc``, 0.7 by default) and the baseline's
(DTC = GTC = 0.5, psds_eval's convention), clip-level F1 and BCE. Under the "baseline"
protocol also on the held-out weak clips, and the baseline's checkpoint objective.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from greensed import config as C
from greensed.data.desed import Subset
from greensed.data.features import to_model_input
from greensed.data.spec import CLASSES
from greensed.metrics.events import Events, decode
from greensed.metrics.intersection import F1Result, intersection_f1
from greensed.metrics.weak import weak_f1
from greensed.train.protocol import OBJECTIVE
from greensed.train.state import model_frame_s
from greensed.train.step import autocast

# The scalar metrics validate() may return for each epoch (docs/runlog.md).
METRICS = tuple(f"{who}_{m}" for who in ("student", "teacher")
                for m in ("f1", "f1_05", "weak_f1", "weak_f1_heldout", "loss_strong")
                ) + (OBJECTIVE,)
# Those that need the held-out weak clips: only the "baseline" protocol has them.
HELDOUT_METRICS = tuple(m for m in METRICS if m.endswith("_heldout")) + (OBJECTIVE,)

# The baseline's validation operating point (psds_eval's defaults in
# compute_per_intersection_macro_f1); CTTC does not change the F1.
BASELINE_DTC = BASELINE_GTC = 0.5
BASELINE_CTTC = 0.3
# torchmetrics' F1Score threshold, the baseline's weak F1: probabilities >= 0.5.
WEAK_THRESHOLD = 0.5


@torch.inference_mode()
def predict(model: nn.Module, mels: torch.Tensor, batch_size: int = 64,
            precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
    """Strong [N, C, T'] and weak [N, C] probabilities (fp32), kept on the model's device."""
    model.eval()
    strong, weak = [], []
    with autocast(mels.device, precision):
        for i in range(0, len(mels), batch_size):
            s, w = model(to_model_input(mels[i:i + batch_size]))
            strong.append(s.float())
            weak.append(w.float())
    return torch.cat(strong), torch.cat(weak)


def validation_tensors(subset: Subset, device: torch.device, *, clip_s: float,
                       heldout: Subset | None = None) -> dict[str, Any]:
    """Validation mels and labels on the device, the reference events and each clip's
    scored duration, built once; with ``heldout``, the held-out weak clips too."""
    out: dict[str, Any] = {
        "mels": torch.from_numpy(np.array(subset.mels)).to(device),
        "strong": torch.from_numpy(subset.strong).to(device=device, dtype=torch.float32),
        "weak": subset.weak.astype(np.uint8),
        "events": Events.from_tuples(subset.events or []),
        "durations": subset.metric_durations_s(clip_s),
    }
    if heldout is not None:
        out["heldout"] = {"mels": torch.from_numpy(np.array(heldout.mels)).to(device),
                          "weak": heldout.weak.astype(np.uint8)}
    return out


def detections(probs: np.ndarray, cfg: C.RunConfig) -> Events:
    """Frame probabilities [N, C, T'] -> events (eval.threshold, eval.median_window)."""
    ec = cfg.eval
    return decode(probs, threshold=ec.threshold, median_window=ec.median_window,
                  frame_s=model_frame_s(cfg), clip_s=cfg.features.clip_s)


def score_events(probs: np.ndarray, events: Events, cfg: C.RunConfig,
                 durations_s: np.ndarray | float | None = None) -> F1Result:
    """Frame probabilities [N, C, T'] -> events (threshold, median filter) -> intersection
    F1 against ``events`` with the run's DTC/GTC/CTTC (docs/metrics.md)."""
    ec = cfg.eval
    return intersection_f1(detections(probs, cfg), events, n_classes=len(CLASSES),
                           durations_s=cfg.features.clip_s if durations_s is None else durations_s,
                           dtc=ec.dtc, gtc=ec.gtc, cttc=ec.cttc)


def baseline_f1(det: Events, events: Events, durations_s: np.ndarray | float) -> float:
    """The baseline's validation F1 (compute_per_intersection_macro_f1): intersection F1
    at DTC = GTC = 0.5, CTTC = 0.3, macro over the classes with a true positive (psds_eval
    gives the others NaN and np.nanmean drops them); 0 when no class has one."""
    res = intersection_f1(det, events, n_classes=len(CLASSES), durations_s=durations_s,
                          dtc=BASELINE_DTC, gtc=BASELINE_GTC, cttc=BASELINE_CTTC)
    kept = res.f1[res.tp > 0]
    return float(kept.mean()) if len(kept) else 0.0


def baseline_weak_f1(probs: np.ndarray, labels: np.ndarray) -> float:
    """The baseline's weak F1 (torchmetrics 0.7.3 ``F1Score(average="macro")``): a class
    is predicted at probability >= 0.5; macro over the classes with any TP, FP or FN
    (torchmetrics drops the others); 0 when there is none."""
    # weak_f1 predicts at p > threshold; just below 0.5 this is p >= 0.5 for any float32 p.
    macro, _ = weak_f1(probs, labels, threshold=float(np.nextafter(WEAK_THRESHOLD, 0.0)),
                       zero_division=np.nan)
    return 0.0 if math.isnan(macro) else macro


def validate(student: nn.Module, teacher: nn.Module, val: dict[str, Any],
             cfg: C.RunConfig) -> dict[str, Any]:
    """Metrics for both models; the keys are those of docs/runlog.md."""
    ec, precision = cfg.eval, cfg.train.precision
    durations = val.get("durations", cfg.features.clip_s)  # hand-made dicts: whole clips
    out: dict[str, Any] = {}
    for name, model in (("student", student), ("teacher", teacher)):
        strong, weak = predict(model, val["mels"], precision=precision)
        out[f"{name}_loss_strong"] = F.binary_cross_entropy(strong, val["strong"]).item()
        det = detections(strong.float().cpu().numpy(), cfg)
        res = intersection_f1(det, val["events"], n_classes=len(CLASSES),
                              durations_s=durations, dtc=ec.dtc, gtc=ec.gtc,
                              cttc=ec.cttc)
        out[f"{name}_f1"] = float(res.macro_f1)
        out[f"{name}_class_f1"] = [float(v) for v in res.f1]
        out[f"{name}_f1_05"] = baseline_f1(det, val["events"], durations)
        w_macro, _ = weak_f1(weak.float().cpu().numpy(), val["weak"], threshold=ec.threshold)
        out[f"{name}_weak_f1"] = float(w_macro)
        held = val.get("heldout")
        if held is not None:
            _, held_weak = predict(model, held["mels"], precision=precision)
            out[f"{name}_weak_f1_heldout"] = baseline_weak_f1(held_weak.cpu().numpy(),
                                                              held["weak"])
    if "student_weak_f1_heldout" in out:
        out[OBJECTIVE] = out["student_weak_f1_heldout"] + out["student_f1_05"]
    student.train()
    teacher.train()
    return out


# The keys of EpochRecord.test (docs/runlog.md): intersection F1 at eval.dtc/gtc (0.7)
# and threshold 0.5 of each model on the held-out test subset; PSDS keys
# (student_psds1, ...) join them once scoring them every epoch is cheap enough.
TEST_SCORES = ("student_f1", "teacher_f1")


def score_test_set(student: nn.Module, teacher: nn.Module, test: dict[str, Any],
                cfg: C.RunConfig) -> dict[str, float]:
    """Both models' scores on the held-out test subset (``[eval] test``; tensors from
    ``validation_tensors``): record.test, which no decision reads."""
    durations = test.get("durations", cfg.features.clip_s)
    out: dict[str, float] = {}
    for name, model in (("student", student), ("teacher", teacher)):
        strong, _ = predict(model, test["mels"], precision=cfg.train.precision)
        res = score_events(strong.float().cpu().numpy(), test["events"], cfg, durations)
        out[f"{name}_f1"] = float(res.macro_f1)
    student.train()
    teacher.train()
    return out
