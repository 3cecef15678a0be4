"""A straightforward baseline-style training step, kept as the yardstick.

This is how the DCASE 2022 recipe trains (re-written, not copied): the mel is
computed from audio for every batch, mixup acts on it, dB and min-max scaling
follow, the teacher runs under ``no_grad``, the EMA loops over parameters in
Python, and every loss is read back to the host each step for logging. The
benchmark measures greensed's step against it, and a test checks that both
give the same losses on the same batch, in either protocol's order of operations
(``ema_first``: the baseline's EMA of the pre-update student, before backward).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from greensed.train.step import Batch


def baseline_log_scale(mel: torch.Tensor) -> torch.Tensor:
    """[B, F, T] linear mel -> AmplitudeToDB(amin 1e-5) clamped [-50, 80] -> per-clip min-max."""
    db = (20.0 * torch.log10(torch.clamp(mel, min=1e-5))).clamp(-50.0, 80.0)
    lo = db.amin(dim=(1, 2), keepdim=True)
    hi = db.amax(dim=(1, 2), keepdim=True)
    return (db - lo) / (hi - lo + 1e-8)


def reference_step(student: nn.Module, teacher: nn.Module, opt: torch.optim.Optimizer,
                   audio: torch.Tensor, batch_labels: Batch, mel: nn.Module, *, step: int,
                   lr: float, consistency_weight: float, mixup_p: float, mixup_alpha: float,
                   ema_factor: float, rng: np.random.Generator,
                   ema_first: bool = False) -> dict[str, float]:
    """One full step from audio [B, samples]; returns the losses as Python floats.

    ``step`` is the 1-based step number the EMA factor reads; ``ema_first`` updates the
    teacher before backward and the optimizer step (the "baseline" protocol), else after.
    """
    for g in opt.param_groups:
        g["lr"] = lr
    feats = mel(audio)  # [B, F, T], recomputed from audio on every batch
    s, w = batch_labels.n_strong, batch_labels.n_weak
    y_strong, y_weak = batch_labels.strong_labels, batch_labels.weak_labels
    if mixup_p > 0 and rng.random() < mixup_p:
        feats = feats.clone()
        lam, perm = rng.beta(mixup_alpha, mixup_alpha), torch.from_numpy(rng.permutation(s))
        feats[:s] = lam * feats[:s] + (1 - lam) * feats[:s][perm]
        y_strong = torch.clamp(lam * y_strong + (1 - lam) * y_strong[perm], 0, 1)
        lam, perm = rng.beta(mixup_alpha, mixup_alpha), torch.from_numpy(rng.permutation(w))
        feats[s:s + w] = lam * feats[s:s + w] + (1 - lam) * feats[s:s + w][perm]
        y_weak = torch.clamp(lam * y_weak + (1 - lam) * y_weak[perm], 0, 1)
    x = baseline_log_scale(feats).transpose(1, 2)
    strong_s, weak_s = student(x)
    with torch.no_grad():
        strong_t, weak_t = teacher(x)
    loss_strong = F.binary_cross_entropy(strong_s[:s], y_strong)
    loss_weak = F.binary_cross_entropy(weak_s[s:s + w], y_weak)
    cons_strong = F.mse_loss(strong_s, strong_t.detach())
    cons_weak = F.mse_loss(weak_s, weak_t.detach())
    total = loss_strong + loss_weak + consistency_weight * (cons_strong + cons_weak)

    def ema() -> None:
        alpha = min(1 - 1 / (step + 1), ema_factor)
        with torch.no_grad():
            for tp, sp in zip(teacher.parameters(), student.parameters(), strict=True):
                tp.mul_(alpha).add_(sp, alpha=1 - alpha)

    if ema_first:
        ema()
    opt.zero_grad()
    total.backward()
    opt.step()
    if not ema_first:
        ema()
    # The baseline logs every loss every step: a host read each time.
    return {"strong": loss_strong.item(), "weak": loss_weak.item(),
            "consistency_strong": cons_strong.item(), "consistency_weak": cons_weak.item(),
            "total": total.item()}
