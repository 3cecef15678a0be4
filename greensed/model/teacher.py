"""Mean teacher: an exponential moving average of the student's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_teacher(student: nn.Module) -> nn.Module:
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, step: int,
               max_alpha: float = 0.999) -> float:
    """teacher <- alpha * teacher + (1 - alpha) * student, alpha = min(1 - 1/(step+1), max).

    Early on alpha is small, so the teacher follows the student closely. Only
    parameters are averaged, as in the baseline: the teacher's BatchNorm
    running statistics come from its own (train-mode, no-grad) forward passes.
    """
    alpha = min(1.0 - 1.0 / (step + 1), max_alpha)
    t_params = [p for p in teacher.parameters()]
    s_params = [p.detach() for p in student.parameters()]
    torch._foreach_mul_(t_params, alpha)
    torch._foreach_add_(t_params, s_params, alpha=1.0 - alpha)
    return alpha
