"""One mean-teacher training step, as in the DCASE 2022 baseline (docs/training.md).

The step schedule depends on ``train.protocol``: "baseline" is DESED_task 2022's order
of operations under Lightning 1.5, "greensed" the order greensed used before (see
``factors`` and ``optimize``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from greensed.config import TrainConfig
from greensed.data.features import to_model_input
from greensed.errors import ConfigError
from greensed.model.teacher import ema_update


@dataclass
class Batch:
    """Linear mels [B, T, F] ordered strong | weak | unlabelled, and their labels."""

    mels: torch.Tensor
    strong_labels: torch.Tensor  # [n_strong, C, T_out] float
    weak_labels: torch.Tensor    # [n_weak, C] float

    @property
    def n_strong(self) -> int:
        return self.strong_labels.shape[0]

    @property
    def n_weak(self) -> int:
        return self.weak_labels.shape[0]


def ramp(step: int, rampup_steps: int) -> float:
    """Exponential ramp-up factor exp(-5 (1 - t)^2), t = min(step, ramp) / ramp."""
    if rampup_steps <= 0:
        return 1.0
    t = min(step, rampup_steps) / rampup_steps
    return math.exp(-5.0 * (1.0 - t) ** 2)


def factors(protocol: str, done: int, rampup_steps: int) -> tuple[float, float]:
    """(lr factor, consistency factor) of the optimizer step that follows ``done`` steps.

    "baseline": DESED_task 2022's ExponentialWarmup starts at step_num = 1 and sets the
    lr only when it is stepped, after each optimizer step; so optimizer step k (1-based)
    runs at ramp(k) and the first at the optimizer's own, full lr, while the consistency
    weight reads ramp(step_num) = ramp(k) from the first step on. "greensed": both at
    ramp(k - 1), the first step at ramp(0) = exp(-5).
    """
    if protocol == "baseline":
        k = done + 1
        return (1.0 if done == 0 else ramp(k, rampup_steps)), ramp(k, rampup_steps)
    factor = ramp(done, rampup_steps)
    return factor, factor


def mixup(x: torch.Tensor, y: torch.Tensor, lam: float,
          perm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix a sub-batch with a permutation of itself; soft labels clamped to [0, 1]."""
    perm = perm.to(x.device)
    return lam * x + (1 - lam) * x[perm], (lam * y + (1 - lam) * y[perm]).clamp(0, 1)


def autocast(device: torch.device, precision: str) -> torch.autocast:
    """fp32 (no autocast) or bf16 autocast for the forward passes (losses stay fp32)."""
    if precision not in ("fp32", "bf16"):
        raise ConfigError(f"train.precision = {precision!r}: expected fp32 or bf16")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def train_step(student: nn.Module, teacher: nn.Module, batch: Batch, *,
               consistency_weight: float, mixup_p: float, mixup_alpha: float,
               rng: np.random.Generator, precision: str = "fp32") -> dict[str, torch.Tensor]:
    """Forward student and teacher on one composed batch; return the loss terms.

    No host-device sync happens here: mixup draws come from a host numpy
    generator and the losses stay tensors.
    """
    mels, y_strong, y_weak = batch.mels, batch.strong_labels, batch.weak_labels
    s, w = batch.n_strong, batch.n_weak
    if mixup_p > 0 and rng.random() < mixup_p:
        # The baseline mixes the linear mel (before log and scaling), the strong
        # and weak sub-batches separately, each with its own lambda ~ Beta(a, a).
        mels = mels.clone()
        lam, perm = rng.beta(mixup_alpha, mixup_alpha), rng.permutation(s)
        mels[:s], y_strong = mixup(mels[:s], y_strong, lam, torch.from_numpy(perm))
        lam, perm = rng.beta(mixup_alpha, mixup_alpha), rng.permutation(w)
        mels[s:s + w], y_weak = mixup(mels[s:s + w], y_weak, lam, torch.from_numpy(perm))
    x = to_model_input(mels)
    with autocast(x.device, precision):
        strong_s, weak_s = student(x)
        with torch.no_grad():  # the baseline runs the teacher in train mode, without gradients
            strong_t, weak_t = teacher(x)
    # BCE is unsafe under autocast: losses in fp32 (a no-op cast in fp32 runs).
    strong_s, weak_s, strong_t, weak_t = (t.float() for t in (strong_s, weak_s, strong_t, weak_t))
    loss_strong = F.binary_cross_entropy(strong_s[:s], y_strong)
    loss_weak = F.binary_cross_entropy(weak_s[s:s + w], y_weak)
    cons_strong = F.mse_loss(strong_s, strong_t)
    cons_weak = F.mse_loss(weak_s, weak_t)
    total = loss_strong + loss_weak + consistency_weight * (cons_strong + cons_weak)
    return {"strong": loss_strong, "weak": loss_weak, "consistency_strong": cons_strong,
            "consistency_weak": cons_weak, "total": total}


def optimize(student: nn.Module, teacher: nn.Module, opt: torch.optim.Optimizer, batch: Batch,
             *, step: int, rampup_steps: int, tc: TrainConfig,
             rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """One optimizer step: lr and consistency ramp, losses, backward, Adam, EMA.

    ``step`` counts the steps already done; the teacher update uses step + 1 (the
    baseline's scheduler step_num). Under the "baseline" protocol the teacher is
    updated from the student before backward and the optimizer step, as Lightning 1.5
    calls the baseline's ``on_before_zero_grad`` (the EMA) inside the optimizer's
    closure, after the forward and before backward; under "greensed", after them.
    """
    lr_factor, weight_factor = factors(tc.protocol, step, rampup_steps)
    for g in opt.param_groups:
        g["lr"] = tc.lr * lr_factor
    losses = train_step(student, teacher, batch,
                        consistency_weight=tc.consistency_max * weight_factor,
                        mixup_p=tc.mixup_p, mixup_alpha=tc.mixup_alpha, rng=rng,
                        precision=tc.precision)
    ema_first = tc.protocol == "baseline"
    if ema_first:  # the pre-update student; this step's teacher outputs are already made
        ema_update(teacher, student, step + 1, tc.ema_factor)
    opt.zero_grad(set_to_none=True)
    losses["total"].backward()
    opt.step()
    if not ema_first:
        ema_update(teacher, student, step + 1, tc.ema_factor)
    return losses
