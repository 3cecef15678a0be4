"""Validation of student and teacher: frame probabilities -> events -> F1.

Every epoch, on the validation set (synthetic, strongly labelled): the paper's
intersection F1 (``eval.dtc``/``eval.gtc``, 0.7 by default) and the baseline's
(DTC = GTC = 0.5, psds_eval's convention), clip-level F1 and BCE. Under the "baseline"
protocol also on the held-out weak clips, and the baseline's checkpoint objective.
With ``[validate] psds`` also PSDS1 and PSDS2 of both models (greensed.metrics.psds, the
baseline's 50 thresholds), timed: ``PSDS_TIME`` leaves as the record's ``psds_s``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from greensed import config
from greensed.data.desed import Subset
from greensed.data.features import to_model_input
from greensed.data.spec import CLASSES
from greensed.metrics.events import Events, decode
from greensed.metrics.intersection import intersection_f1
from greensed.metrics.psds import psds_scores
from greensed.metrics.weak import weak_f1
from greensed.train.protocol import OBJECTIVE
from greensed.train.state import model_frame_s
from greensed.train.step import autocast

# PSDS1/PSDS2 per model, with [validate] psds (docs/metrics.md).
PSDS_METRICS = tuple(f"{who}_psds{n}" for who in ("student", "teacher") for n in (1, 2))
# The scalar metrics validate() may return for each epoch (docs/runlog.md).
METRICS = tuple(f"{who}_{m}" for who in ("student", "teacher")
                for m in ("f1", "f1_05", "weak_f1", "weak_f1_heldout", "loss_strong")
                ) + (OBJECTIVE,) + PSDS_METRICS
# Seconds the PSDS of both models took, handed to the epoch record as ``psds_s``.
PSDS_TIME = "psds_s"
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
            precision: str = "fp32", progress: Callable[[int], None] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Strong [N, C, T'] and weak [N, C] probabilities (fp32), kept on the model's device;
    ``progress(n)`` after each batch of n clips (queued, on a GPU)."""
    model.eval()
    strong, weak = [], []
    with autocast(mels.device, precision):
        for i in range(0, len(mels), batch_size):
            s, w = model(to_model_input(mels[i:i + batch_size]))
            strong.append(s.float())
            weak.append(w.float())
            if progress is not None:
                progress(len(s))
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
        "files": list(subset.files),
    }
    if heldout is not None:
        out["heldout"] = {"mels": torch.from_numpy(np.array(heldout.mels)).to(device),
                          "weak": heldout.weak.astype(np.uint8)}
    return out


def psds_on(cfg: config.RunConfig) -> bool:
    """Whether each epoch scores PSDS: ``[validate] psds``, or by default only when the
    stopping metric is a PSDS."""
    on = cfg.validate.psds
    return cfg.stop.metric in PSDS_METRICS if on is None else on


def detections(probs: np.ndarray, cfg: config.RunConfig) -> Events:
    """Frame probabilities [N, C, T'] -> events (eval.threshold, eval.median_window)."""
    ec = cfg.eval
    return decode(probs, threshold=ec.threshold, median_window=ec.median_window,
                  frame_s=model_frame_s(cfg), clip_s=cfg.features.clip_s)


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


def validation_clips(val: dict[str, Any]) -> int:
    """The clips validate() predicts: each model's validation and held-out clips."""
    held = val.get("heldout")
    return 2 * (len(val["mels"]) + (len(held["mels"]) if held is not None else 0))


def validate(student: nn.Module, teacher: nn.Module, val: dict[str, Any],
             cfg: config.RunConfig, progress: Callable[[int], None] | None = None
             ) -> dict[str, Any]:
    """Metrics for both models; the keys are those of docs/runlog.md. ``progress(n)``
    after each batch of n clips predicted (validation_clips(val) in all)."""
    ec, precision = cfg.eval, cfg.train.precision
    durations = val.get("durations", cfg.features.clip_s)  # hand-made dicts: whole clips
    out: dict[str, Any] = {}
    psds_s = 0.0
    for name, model in (("student", student), ("teacher", teacher)):
        strong, weak = predict(model, val["mels"], precision=precision, progress=progress)
        out[f"{name}_loss_strong"] = F.binary_cross_entropy(strong, val["strong"]).item()
        probs = strong.float().cpu().numpy()
        det = detections(probs, cfg)
        res = intersection_f1(det, val["events"], n_classes=len(CLASSES),
                              durations_s=durations, dtc=ec.dtc, gtc=ec.gtc,
                              cttc=ec.cttc)
        out[f"{name}_f1"] = float(res.macro_f1)
        out[f"{name}_class_f1"] = [float(v) for v in res.f1]
        out[f"{name}_f1_05"] = baseline_f1(det, val["events"], durations)
        w_macro, _ = weak_f1(weak.float().cpu().numpy(), val["weak"], threshold=ec.threshold)
        out[f"{name}_weak_f1"] = float(w_macro)
        if psds_on(cfg):
            t0 = time.perf_counter()
            out.update(_psds(name, probs, val, cfg))
            psds_s += time.perf_counter() - t0
        held = val.get("heldout")
        if held is not None:
            _, held_weak = predict(model, held["mels"], precision=precision, progress=progress)
            out[f"{name}_weak_f1_heldout"] = baseline_weak_f1(held_weak.cpu().numpy(),
                                                              held["weak"])
    if "student_weak_f1_heldout" in out:
        out[OBJECTIVE] = out["student_weak_f1_heldout"] + out["student_f1_05"]
    if psds_on(cfg):
        out[PSDS_TIME] = psds_s
    student.train()
    teacher.train()
    return out


def _psds(name: str, probs: np.ndarray, tensors: dict[str, Any], cfg: config.RunConfig
          ) -> dict[str, float]:
    """``<name>_psds1`` and ``<name>_psds2`` of frame probabilities on ``tensors``."""
    files = tensors.get("files") or [str(i) for i in range(len(probs))]
    ps = psds_scores(probs, tensors["events"], files, list(CLASSES),
                     durations_s=tensors.get("durations", cfg.features.clip_s),
                     median_window=cfg.eval.median_window, frame_s=model_frame_s(cfg))
    return {f"{name}_psds1": ps["psds1"], f"{name}_psds2": ps["psds2"]}


# The keys of EpochRecord.test (docs/runlog.md): intersection F1 at eval.dtc/gtc (0.7)
# and threshold 0.5 of each model on the held-out test subset, and, when the run scores
# PSDS every epoch (psds_on), TEST_PSDS too.
TEST_SCORES = ("student_f1", "teacher_f1")
TEST_PSDS = ("student_psds1", "student_psds2", "teacher_psds1", "teacher_psds2")


def score_test_set(student: nn.Module, teacher: nn.Module, test: dict[str, Any],
                   cfg: config.RunConfig) -> dict[str, float]:
    """Both models' scores on the held-out test subset (``[eval] test``; tensors from
    ``validation_tensors``): record.test, which no decision reads."""
    ec = cfg.eval
    durations = test.get("durations", cfg.features.clip_s)
    out: dict[str, float] = {}
    for name, model in (("student", student), ("teacher", teacher)):
        strong, _ = predict(model, test["mels"], precision=cfg.train.precision)
        probs = strong.float().cpu().numpy()
        res = intersection_f1(detections(probs, cfg), test["events"], n_classes=len(CLASSES),
                              durations_s=durations, dtc=ec.dtc, gtc=ec.gtc, cttc=ec.cttc)
        out[f"{name}_f1"] = float(res.macro_f1)
        if psds_on(cfg):
            out.update(_psds(name, probs, test, cfg))
    student.train()
    teacher.train()
    return out
