"""greensed's optimized step gives the same losses as the straightforward
baseline-style reference step (features from audio each batch) on the same batch,
in the order of operations of either protocol."""

from __future__ import annotations

import copy
import math
import shutil

import numpy as np
import pytest
import torch

from greensed.config import FeatureConfig, TrainConfig
from greensed.data.features import compute_mels, mel_module
from greensed.model.crnn import CRNN
from greensed.model.teacher import make_teacher
from greensed.train.reference import reference_step
from greensed.train.step import Batch, optimize

# Trains or spawns trainers: left out of `make test-fast`.
pytestmark = pytest.mark.slow



def _batch(n_strong: int = 2, n_weak: int = 2, n_unlab: int = 4):
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(n_strong + n_weak + n_unlab, 160_000, generator=g)
    strong = (torch.rand(n_strong, 10, 156, generator=g) > 0.8).float()
    weak = (torch.rand(n_weak, 10, generator=g) > 0.7).float()
    return audio, strong, weak


def _schedule(protocol: str, k: int, rampup: int) -> tuple[float, float]:
    """(lr factor, consistency factor) of 1-based step k, written out per protocol."""
    def ramp(i: int) -> float:
        return math.exp(-5.0 * (1.0 - min(i, rampup) / rampup) ** 2)

    if protocol == "baseline":  # the scheduler sets the lr after each step, from step_num 1
        return (1.0 if k == 1 else ramp(k)), ramp(k)
    return ramp(k - 1), ramp(k - 1)


def _run_both(mels_for_greensed, n_steps: int = 3, protocol: str = "baseline"):
    audio, y_strong, y_weak = _batch()
    tc = TrainConfig(mixup_p=1.0, protocol=protocol)  # always mix: covers the mixup path
    torch.manual_seed(0)
    student = CRNN()
    models = {k: (copy.deepcopy(student), None) for k in ("ref", "ours")}
    models = {k: (s, make_teacher(s)) for k, (s, _) in models.items()}
    opts = {k: torch.optim.Adam(m[0].parameters(), lr=tc.lr, foreach=(k == "ours"))
            for k, m in models.items()}
    mel = mel_module(FeatureConfig())
    labels = Batch(torch.empty(0), y_strong, y_weak)
    mels = mels_for_greensed(audio, mel)
    out = {"ref": [], "ours": []}
    rampup = 10
    for k in ("ref", "ours"):
        torch.manual_seed(1)  # dropout masks
        rng = np.random.default_rng(1)  # mixup draws
        s, t = models[k]
        for step in range(n_steps):
            if k == "ref":
                lr_f, w_f = _schedule(protocol, step + 1, rampup)
                out[k].append(reference_step(
                    s, t, opts[k], audio, labels, mel, step=step + 1, lr=tc.lr * lr_f,
                    consistency_weight=tc.consistency_max * w_f,
                    mixup_p=tc.mixup_p, mixup_alpha=tc.mixup_alpha, ema_factor=tc.ema_factor,
                    rng=rng, ema_first=protocol == "baseline"))
            else:
                losses = optimize(s, t, opts[k], Batch(mels, y_strong, y_weak), step=step,
                                  rampup_steps=rampup, tc=tc, rng=rng)
                out[k].append({n: float(v.detach()) for n, v in losses.items()})
    return out


@pytest.mark.parametrize("protocol", ["baseline", "greensed"])
def test_same_losses_as_reference_fp32(protocol):
    """Tolerance: 1e-5 absolute (fp32; only reduction order differs). Three steps, so
    the teacher's update order (before or after the optimizer step) shows in the
    consistency losses of steps 2 and 3."""
    out = _run_both(lambda audio, mel: compute_mels(audio, mel), protocol=protocol)
    for ref, ours in zip(out["ref"], out["ours"], strict=True):
        for key, value in ref.items():
            assert ours[key] == pytest.approx(value, abs=1e-5), key


def test_fp16_feature_cache_changes_losses_negligibly():
    """The cache stores the linear mel in fp16; losses stay within 1e-3 relative."""
    out = _run_both(lambda audio, mel: compute_mels(audio, mel).half(), n_steps=1)
    for key, value in out["ref"][0].items():
        assert out["ours"][0][key] == pytest.approx(value, rel=1e-3, abs=1e-5), key


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_step_same_losses_as_eager():
    """train.compile: torch.compile'd student and teacher give the eager losses.

    Dropout is off (compiled graphs draw their own random numbers) and clips are
    short (64 frames) to keep the compile cheap. Tolerance 1e-4 absolute: the
    compiler may fuse and reorder reductions.
    """
    g = torch.Generator().manual_seed(0)
    mels = torch.rand(8, 64, 128, generator=g) * 10
    batch = Batch(mels, (torch.rand(2, 10, 16, generator=g) > 0.8).float(),
                  (torch.rand(2, 10, generator=g) > 0.7).float())
    tc = TrainConfig(mixup_p=1.0)
    torch.manual_seed(0)
    eager = CRNN(dropout=0.0)
    losses = {}
    for name in ("eager", "compiled"):
        student = copy.deepcopy(eager)
        teacher = make_teacher(student)
        opt = torch.optim.Adam(student.parameters(), lr=tc.lr, foreach=True)
        s_call, t_call = student, teacher
        if name == "compiled":
            s_call, t_call = torch.compile(student), torch.compile(teacher)
        rng = np.random.default_rng(1)
        losses[name] = [
            {k: float(v.detach()) for k, v in optimize(s_call, t_call, opt, batch, step=step,
                                              rampup_steps=10, tc=tc, rng=rng).items()}
            for step in range(2)]
    for ref, ours in zip(losses["eager"], losses["compiled"], strict=True):
        for key, value in ref.items():
            assert ours[key] == pytest.approx(value, abs=1e-4), key
