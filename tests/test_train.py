"""End-to-end training on tiny data: the run log, checkpoints, resume."""

from __future__ import annotations

import dataclasses
import json
import os
import signal

import pytest
import torch
from helpers import quiet, tiny_config, tweak

from greensed import config as C
from greensed import runlog
from greensed.energy.constant import ConstantPowerMeter
from greensed.errors import ConfigError, GreensedError
from greensed.train import preflight
from greensed.train.batches import batch_composition, epoch_batches
from greensed.train.loop import train

# Trains or spawns trainers: left out of `make test-fast`.
pytestmark = pytest.mark.slow



def test_two_epoch_run_log(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    result = train(tiny_config(tiny_dataset, tmp_path / "cache"), run, report=quiet)
    d = runlog.RunDir(run)
    records = d.read_epochs()
    assert [r.epoch for r in records] == [1, 2]
    assert [r.steps for r in records] == [2, 4]
    for r in records:
        assert r.schema == runlog.SCHEMA_VERSION
        assert all(v is not None for v in dataclasses.astuple(r.loss))
        for who in ("student", "teacher"):
            assert 0.0 <= r.metric(f"{who}_f1") <= 1.0
            assert len(r.metrics[f"{who}_class_f1"]) == 10
            assert 0.0 <= r.metric(f"{who}_weak_f1") <= 1.0
        assert r.train_s > 0 and r.val_s > 0
        assert r.duration_s >= r.train_s + r.val_s - 1e-3
        # constant 40 W model: energy = 40 W x window duration
        assert r.energy_kwh == pytest.approx(40 * r.duration_s / 3.6e6, rel=1e-6)
        assert r.energy_methods and all("model" in m for m in r.energy_methods.values())
        assert r.avg_power_w == pytest.approx(40, rel=1e-6)
    assert records[1].cumulative_kwh == pytest.approx(
        records[0].energy_kwh + records[1].energy_kwh)
    # The forecast to the cap: after epoch 1, one epoch left at epoch 1's energy and time.
    f1, f2 = records[0].forecast, records[1].forecast
    assert (f1["epochs_left"], f1["max_epochs"], f2["epochs_left"]) == (1, 2, 0)
    assert f1["remaining_kwh"] == pytest.approx(records[0].energy_kwh)
    assert f1["remaining_s"] == pytest.approx(records[0].duration_s)
    assert f1["metric_at_cap"] is None and "points" in f1["why"]  # 1 point: no curve yet
    summary = d.read_summary()
    assert summary == result.summary
    assert summary.status is runlog.RunStatus.FINISHED and summary.stop_policy == "max-epochs"
    assert summary.epochs == summary.stop_epoch == 2
    assert summary.total_kwh == pytest.approx(records[-1].cumulative_kwh)
    best = max(records, key=lambda r: r.metric("teacher_f1"))
    assert summary.best_value == best.metric("teacher_f1")
    ck = torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    assert ck["epoch"] == summary.best_epoch
    assert (run / "checkpoints" / "last.pt").exists()
    saved = C.from_toml_text((run / "config.toml").read_text(), "config.toml")
    assert saved == tiny_config(tiny_dataset, tmp_path / "cache")
    assert json.loads((run / "hardware.json").read_text())["torch_version"] == torch.__version__


def test_same_seed_same_losses(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "cache", epochs=1)
    a = train(cfg, tmp_path / "a", report=quiet).history[0]
    b = train(cfg, tmp_path / "b", report=quiet).history[0]
    assert a.loss == b.loss
    assert a.metrics == b.metrics


def test_interrupt_then_resume(tiny_dataset, tmp_path, monkeypatch):
    """SIGINT during epoch 2: clean stop; resume continues with contiguous epochs,
    monotonic cumulative energy, and the cut partial epoch counted exactly once. Each
    run resolves its carbon intensity once and leaves no lock file when it ends."""
    cfg = tiny_config(tiny_dataset, tmp_path / "cache", epochs=3)
    run = tmp_path / "run"
    resolved = []
    real = preflight.carbon_intensity
    monkeypatch.setattr(preflight, "carbon_intensity",
                        lambda *a: resolved.append(a) or real(*a))

    def interrupt_after_first_epoch(line: str) -> None:
        if line.startswith("epoch   1"):
            os.kill(os.getpid(), signal.SIGINT)

    first = train(cfg, run, report=interrupt_after_first_epoch)
    assert first.summary.status is runlog.RunStatus.INTERRUPTED
    assert first.summary.epochs == 1
    lost = first.summary.lost_kwh
    assert lost > 0  # the cut part of epoch 2, measured by the meter
    assert first.summary.total_kwh == pytest.approx(first.history[0].energy_kwh + lost)
    assert len(resolved) == 1 and not runlog.RunDir(run).lock.exists()

    with pytest.raises(GreensedError, match="already holds a run"):
        train(cfg, run, report=quiet)
    second = train(cfg, run, resume=True, report=quiet)
    records = runlog.RunDir(run).read_epochs()
    assert [r.epoch for r in records] == [1, 2, 3]
    cums = [r.cumulative_kwh for r in records]
    assert cums == sorted(cums)
    expected = sum(r.energy_kwh for r in records) + lost
    assert second.summary.total_kwh == pytest.approx(expected)
    assert second.summary.status is runlog.RunStatus.FINISHED
    assert second.summary.lost_kwh == pytest.approx(lost)
    assert len(resolved) == 3 and not runlog.RunDir(run).lock.exists()
    assert second.summary.carbon_source == "codecarbon: world average (no country given)"
    assert second.summary.total_co2_kg == pytest.approx(
        expected * second.summary.carbon_intensity_g_per_kwh / 1000)


def test_resume_with_changed_config_is_refused(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "cache", epochs=1)
    run = tmp_path / "run"
    train(cfg, run, report=quiet)
    cfg = tweak(cfg, **{"train.lr": 5e-4})
    with pytest.raises(ConfigError, match=r"train.lr: 0.001 -> 0.0005"):
        train(cfg, run, resume=True, report=quiet)
    cfg = tweak(cfg, **{"train.epochs": 2})  # with --force it resumes
    assert train(cfg, run, resume=True, force=True, report=quiet).summary.epochs == 2


def test_batch_composition_and_epoch_length():
    assert batch_composition(48) == (12, 12, 24)
    assert batch_composition(4) == (1, 1, 2)
    for bad in (0, 6, 10):
        with pytest.raises(ConfigError, match="multiple of 4"):
            batch_composition(bad)
    batches = list(epoch_batches((10, 7, 40), (2, 2, 4), seed=1, epoch=1))
    assert len(batches) == 3  # weak is the shortest: 7 // 2
    assert all(len(s) == 2 and len(w) == 2 and len(u) == 4 for s, w, u in batches)
    again = list(epoch_batches((10, 7, 40), (2, 2, 4), seed=1, epoch=1))
    assert all((a[0] == b[0]).all() for a, b in zip(batches, again, strict=True))


def test_budget_never_exceeded_with_constant_meter(tiny_dataset, tmp_path):
    """The budget policy stops before an epoch that would overrun (constant power)."""
    cfg = tiny_config(tiny_dataset, tmp_path / "cache", epochs=50)
    cfg = tweak(cfg, **{"train.max_steps_per_epoch": 1})
    cfg = tweak(cfg, **{"stop.policies": ["budget"]})
    cfg = tweak(cfg, **{"stop.budget.kwh": 3.5})
    ticks = iter(range(10_000))
    # 3.6 MW for one tick (1 s) per window: exactly 1 kWh per epoch, whatever the
    # machine's speed, so the prediction is exact and the stop is deterministic.
    meter = ConstantPowerMeter(3.6e6, clock=lambda: float(next(ticks)))
    res = train(cfg, tmp_path / "run", meter=meter, report=quiet)
    assert res.summary.stop_policy == "budget"
    assert res.summary.epochs == 3
    assert res.summary.total_kwh == pytest.approx(3.0)
    assert res.summary.budget_overrun_kwh == 0.0


def test_compile_wraps_only_the_training_step(tiny_dataset, tmp_path, monkeypatch):
    """train.compile: the step calls torch.compile'd wrappers of the student and
    teacher (sharing their parameters); validation, EMA and checkpoints use the
    eager modules. A pass-through stand-in for torch.compile keeps this cheap
    (the real compiler is checked in test_step_equivalence)."""
    class Counting(torch.nn.Module):
        def __init__(self, module: torch.nn.Module) -> None:
            super().__init__()
            self.module, self.calls = module, 0

        def forward(self, x: torch.Tensor):
            self.calls += 1
            return self.module(x)

    wrappers: list[Counting] = []
    monkeypatch.setattr(torch, "compile", lambda m: wrappers.append(Counting(m)) or wrappers[-1])
    cfg = tiny_config(tiny_dataset, tmp_path / "cache", epochs=1)
    eager = train(cfg, tmp_path / "eager", report=quiet)
    assert wrappers == []
    cfg = tweak(cfg, **{"train.compile": True})
    compiled = train(cfg, tmp_path / "compiled", report=quiet)
    assert [w.calls for w in wrappers] == [2, 2]  # 2 steps; validation bypasses them
    assert compiled.history[0].loss == eager.history[0].loss
    assert compiled.history[0].metrics == eager.history[0].metrics
    assert compiled.model_sha256 == eager.model_sha256
