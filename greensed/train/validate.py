"""Validation of student and teacher: frame probabilities -> events -> F1."""

from __future__ import annotations

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
from greensed.train.state import model_frame_s
from greensed.train.step import autocast

# The scalar metrics validate() returns for each epoch (docs/runlog.md).
METRICS = tuple(f"{who}_{m}" for who in ("student", "teacher")
                for m in ("f1", "weak_f1", "loss_strong"))


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


def validation_tensors(subset: Subset, device: torch.device) -> dict[str, Any]:
    """Validation mels and labels on the device, and the reference events, built once."""
    return {
        "mels": torch.from_numpy(np.array(subset.mels)).to(device),
        "strong": torch.from_numpy(subset.strong).to(device=device, dtype=torch.float32),
        "weak": subset.weak.astype(np.uint8),
        "events": Events.from_tuples(subset.events or []),
    }


def score_events(probs: np.ndarray, events: Events, cfg: C.RunConfig,
                 durations_s: np.ndarray | float | None = None) -> F1Result:
    """Frame probabilities [N, C, T'] -> events (threshold, median filter) -> intersection
    F1 against ``events`` with the run's DTC/GTC/CTTC (docs/metrics.md)."""
    ec = cfg.eval
    det = decode(probs, threshold=ec.threshold, median_window=ec.median_window,
                 frame_s=model_frame_s(cfg), clip_s=cfg.features.clip_s)
    return intersection_f1(det, events, n_classes=len(CLASSES),
                           durations_s=cfg.features.clip_s if durations_s is None else durations_s,
                           dtc=ec.dtc, gtc=ec.gtc, cttc=ec.cttc)


def validate(student: nn.Module, teacher: nn.Module, val: dict[str, Any],
             cfg: C.RunConfig) -> dict[str, Any]:
    """Metrics for both models; the keys are those of docs/runlog.md."""
    ec = cfg.eval
    out: dict[str, Any] = {}
    for name, model in (("student", student), ("teacher", teacher)):
        strong, weak = predict(model, val["mels"], precision=cfg.train.precision)
        out[f"{name}_loss_strong"] = F.binary_cross_entropy(strong, val["strong"]).item()
        res = score_events(strong.float().cpu().numpy(), val["events"], cfg)
        out[f"{name}_f1"] = float(res.macro_f1)
        out[f"{name}_class_f1"] = [float(v) for v in res.f1]
        w_macro, _ = weak_f1(weak.float().cpu().numpy(), val["weak"], threshold=ec.threshold)
        out[f"{name}_weak_f1"] = float(w_macro)
    student.train()
    teacher.train()
    return out
