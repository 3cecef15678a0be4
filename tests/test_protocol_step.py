"""The baseline protocol's step schedule against DESED_task 2022's order of operations.

The reference below restates, without greensed's step code, what one optimizer step
of the 2022 recipe does under PyTorch Lightning 1.5's automatic optimisation
(sed_trainer.py training_step / on_before_zero_grad, train_sed.py's ExponentialWarmup
stepped every optimizer step): the lr is the scheduler's state, the forward and the
losses use the consistency weight of the scheduler's step_num, the teacher becomes the
EMA of the pre-update student before backward, then backward, the Adam step and the
scheduler step (step_num += 1, lr set).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from greensed.config import TrainConfig
from greensed.data.features import to_model_input
from greensed.model.crnn import CRNN
from greensed.train.step import Batch, factors, optimize

# Trains (4 optimizer steps of a CRNN): left out of `make test-fast`.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

RAMPUP = 10  # steps of warm-up: the ramp factor moves a lot over 4 steps
N_STEPS = 4


class WarmupRef:
    """DESED_task's ExponentialWarmup as a plain object: step_num starts at 1 and the lr
    is written into the optimizer only by step()."""

    def __init__(self, opt: torch.optim.Optimizer, max_lr: float, rampup: int) -> None:
        self.opt, self.max_lr, self.rampup, self.step_num = opt, max_lr, rampup, 1

    def factor(self) -> float:
        current = min(max(self.step_num, 0), self.rampup)
        return math.exp(-5.0 * (1.0 - current / self.rampup) ** 2)

    def step(self) -> None:
        self.step_num += 1
        for g in self.opt.param_groups:
            g["lr"] = self.max_lr * self.factor()


def baseline_steps(student: torch.nn.Module, batches: list[Batch], tc: TrainConfig
                   ) -> tuple[torch.nn.Module, torch.nn.Module, list[float]]:
    """N steps as the 2022 recipe; returns the student, the teacher and each step's lr."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.detach_()
    opt = torch.optim.Adam(student.parameters(), lr=tc.lr, betas=(0.9, 0.999))
    sched = WarmupRef(opt, tc.lr, RAMPUP)
    lrs = []
    for b in batches:
        s, w = b.n_strong, b.n_weak
        x = to_model_input(b.mels)
        strong_s, weak_s = student(x)
        with torch.no_grad():
            strong_t, weak_t = teacher(x)
        weight = tc.consistency_max * sched.factor()
        loss = (F.binary_cross_entropy(strong_s[:s], b.strong_labels)
                + F.binary_cross_entropy(weak_s[s:s + w], b.weak_labels)
                + weight * (F.mse_loss(strong_s, strong_t) + F.mse_loss(weak_s, weak_t)))
        # on_before_zero_grad: the EMA, from the student as it is before this update.
        alpha = min(1 - 1 / (sched.step_num + 1), tc.ema_factor)
        with torch.no_grad():
            for tp, sp in zip(teacher.parameters(), student.parameters(), strict=True):
                tp.data.mul_(alpha).add_(sp.data, alpha=1 - alpha)
        opt.zero_grad()
        loss.backward()
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return student, teacher, lrs


def _batches(n: int) -> list[Batch]:
    g = torch.Generator().manual_seed(0)
    # Short clips (64 frames -> 16 output frames) keep four CRNN steps cheap.
    return [Batch(torch.rand(8, 64, 128, generator=g) * 10,
                  (torch.rand(2, 10, 16, generator=g) > 0.8).float(),
                  (torch.rand(2, 10, generator=g) > 0.7).float()) for _ in range(n)]


def greensed_steps(student: torch.nn.Module, batches: list[Batch], tc: TrainConfig
                   ) -> tuple[torch.nn.Module, torch.nn.Module, list[float]]:
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    opt = torch.optim.Adam(student.parameters(), lr=tc.lr, betas=(0.9, 0.999), foreach=True)
    rng, lrs = np.random.default_rng(0), []
    for step, b in enumerate(batches):
        optimize(student, teacher, opt, b, step=step, rampup_steps=RAMPUP, tc=tc, rng=rng)
        lrs.append(opt.param_groups[0]["lr"])
    return student, teacher, lrs


def _max_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    pairs = zip(a.parameters(), b.parameters(), strict=True)
    return max(float((p - q).detach().abs().max()) for p, q in pairs)


def test_baseline_protocol_equals_the_2022_order_of_operations_after_4_steps():
    """Dropout and mixup off; weights of both models equal to 1e-6."""
    torch.manual_seed(0)
    init = CRNN(dropout=0.0)
    batches = _batches(N_STEPS)
    tc = TrainConfig(protocol="baseline", mixup_p=0.0)
    ref_s, ref_t, ref_lrs = baseline_steps(copy.deepcopy(init), batches, tc)
    our_s, our_t, our_lrs = greensed_steps(copy.deepcopy(init), batches, tc)
    assert _max_diff(ref_s, our_s) < 1e-6
    assert _max_diff(ref_t, our_t) < 1e-6
    # The first optimizer step at the full lr, then ramp(k) at 1-based step k.
    assert ref_lrs[0] == tc.lr
    assert our_lrs == pytest.approx(ref_lrs, rel=1e-12)
    assert our_lrs[1:] == pytest.approx(
        [tc.lr * math.exp(-5 * (1 - k / RAMPUP) ** 2) for k in range(2, N_STEPS + 1)])
    # The test can tell the protocols apart: greensed's order ends elsewhere.
    old_s, old_t, old_lrs = greensed_steps(copy.deepcopy(init), batches,
                                           TrainConfig(protocol="greensed", mixup_p=0.0))
    assert _max_diff(ref_s, old_s) > 1e-4 and _max_diff(ref_t, old_t) > 1e-5
    assert old_lrs[0] == pytest.approx(tc.lr * math.exp(-5))


def test_factors_of_both_protocols():
    r = 50
    ramp = [math.exp(-5 * (1 - min(k, r) / r) ** 2) for k in range(0, 60)]
    for done in range(55):
        lr_f, w_f = factors("baseline", done, r)
        assert w_f == pytest.approx(ramp[done + 1])
        assert lr_f == (1.0 if done == 0 else pytest.approx(ramp[done + 1]))
        assert factors("greensed", done, r) == (pytest.approx(ramp[done]),) * 2
    assert factors("baseline", 0, 0) == (1.0, 1.0) == factors("greensed", 7, 0)
