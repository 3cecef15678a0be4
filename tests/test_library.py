"""greensed as a library: energy windows, epoch records, policies and the run writer,
and the plain-loop example whose run the study tools read."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import greensed
from greensed.cli import app
from greensed.energy import ConstantPowerMeter
from greensed.errors import ConfigError, GreensedError
from greensed.library import budget_of
from greensed.runlog import RunDir, RunStatus, load_run

REPO = Path(__file__).resolve().parent.parent


def tick_meter(watts: float = 3.6e6) -> ConstantPowerMeter:
    """1 s per window at ``watts``: 3.6 MW gives exactly 1 kWh a window."""
    ticks = iter(range(100_000))
    return ConstantPowerMeter(watts, clock=lambda: float(next(ticks)))


def cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_public_surface_is_lazy_and_complete():
    code = ("import sys, greensed; assert 'torch' not in sys.modules; "
            "greensed.RunRecorder, greensed.measure, greensed.make_policy; "
            "assert 'torch' not in sys.modules and 'codecarbon' not in sys.modules; "
            "print(sorted(set(greensed.__all__) - set(dir(greensed))))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.strip() == "[]"
    assert set(greensed.__all__) == {"__version__", *greensed._EXPORTS}
    for name in greensed._EXPORTS:
        assert getattr(greensed, name) is not None
    with pytest.raises(AttributeError):
        greensed.no_such_name  # noqa: B018


def test_measure_is_a_context_manager_returning_a_labelled_reading():
    with greensed.measure(tick_meter()) as m:
        assert m.reading is None
    assert m.reading.energy_kwh == pytest.approx(1.0)
    assert m.reading.methods == {"cpu": "constant-power model"} and m.reading.ok
    assert not m.monitor.started  # measure() closes its meter


def test_monitor_starts_once_and_gives_a_window_per_block():
    meter = tick_meter(1.8e6)
    with greensed.EnergyMonitor(meter) as monitor:
        readings = []
        for _ in range(3):
            with monitor.window() as w:
                pass
            readings.append(w.reading)
        with monitor.window() as w:
            early = w.end()  # ending inside the block: the same reading after it
        assert w.reading is early
        assert monitor.describe() == {"cpu": "constant-power model"}
    assert [r.energy_kwh for r in readings] == pytest.approx([0.5] * 3)
    with pytest.raises(RuntimeError), monitor.window():
        raise RuntimeError("boom")
    assert monitor.abandoned is not None and monitor.abandoned.energy_kwh == pytest.approx(0.5)


def test_a_bad_meter_spec_is_one_line():
    with pytest.raises(ConfigError, match="constant:"):
        greensed.EnergyMonitor("constant:x")


def test_epoch_record_continues_the_cumulative_energy():
    with greensed.measure(tick_meter()) as m:
        pass
    first = greensed.epoch_record(1, {"val_f1": 0.5, "per_class": [0.1, 0.9]}, m.reading,
                                  loss=0.7, steps=10)
    second = greensed.epoch_record(2, {"val_f1": 0.6}, m.reading, previous=first,
                                   lost_kwh=0.25, loss={"total": 0.6, "strong": 0.4})
    assert first.cumulative_kwh == pytest.approx(1.0)
    assert second.cumulative_kwh == pytest.approx(2.25)
    assert first.loss.total == 0.7 and second.loss.strong == 0.4
    assert second.metric("val_f1") == 0.6 and first.metrics["per_class"] == [0.1, 0.9]
    assert first.energy_methods == {"cpu": "constant-power model"} and first.duration_s == 1.0
    import numpy as np
    import torch

    third = greensed.epoch_record(3, {"a": torch.tensor(0.25), "b": np.float32(0.5),
                                      "c": torch.tensor([1.0, 2.0])}, m.reading, previous=second)
    assert third.metrics == {"a": 0.25, "b": 0.5, "c": [1.0, 2.0]}
    with pytest.raises(ConfigError, match="epochs are contiguous"):
        greensed.epoch_record(5, {}, m.reading, previous=second)
    with pytest.raises(ConfigError, match="unknown term"):
        greensed.epoch_record(1, {}, m.reading, loss={"kl": 1.0})
    with pytest.raises(ConfigError, match="not a number"):
        greensed.epoch_record(1, {"x": object()}, m.reading)


def test_make_policy_watches_the_loops_own_metric():
    policy = greensed.make_policy(["plateau:patience=2", "budget:kwh=3.5"], metric="val_f1",
                                  max_epochs=10)
    assert budget_of(policy) == 3.5
    with greensed.measure(tick_meter()) as m:
        pass
    history = []
    for epoch, f1 in enumerate([0.1, 0.3, 0.3, 0.2], start=1):
        history.append(greensed.epoch_record(epoch, {"val_f1": f1}, m.reading,
                                             previous=history[-1] if history else None))
    assert policy.decide(history[:2]).stop is False
    d = policy.decide(history[:3])  # 3 kWh spent, the next would overrun 3.5
    assert d.stop and d.policy == "budget"
    d = greensed.make_policy("plateau:patience=2", metric="val_f1", max_epochs=10).decide(history)
    assert d.stop and d.policy == "plateau" and "val_f1" in d.reason


def test_run_recorder_writes_what_the_study_tools_read(tmp_path):
    policy = greensed.make_policy(["budget:kwh=2.5"], max_epochs=10)
    run_dir = tmp_path / "run"
    with greensed.EnergyMonitor(tick_meter()) as monitor, greensed.RunRecorder(
            run_dir, metric="val_f1", policy=policy, max_epochs=10, batch_size=16, seed=3,
            recipe="mine", stop=["budget:kwh=2.5"], monitor=monitor) as run:
        for epoch in range(1, 11):
            with monitor.window() as w:
                pass
            run.add(epoch, {"val_f1": 0.1 * epoch}, w.reading, steps=5 * epoch)
            if run.decide().stop:
                break
    log = load_run(run_dir)
    assert [r.epoch for r in log.epochs] == [1, 2]
    s = log.summary
    assert s.status is RunStatus.FINISHED and s.stop_policy == "budget"
    assert s.total_kwh == pytest.approx(2.0) and s.budget_kwh == 2.5
    assert s.best_metric == "val_f1" and s.best_epoch == 2 and s.best_value == pytest.approx(0.2)
    assert (s.batch_size, s.seed, s.recipe, s.steps, s.steps_per_epoch) == (16, 3, "mine", 10, 5)
    from greensed import config as C

    cfg = C.from_toml_text(log.config_text, "config.toml")  # a valid greensed config
    assert (cfg.train.epochs, cfg.train.batch_size, cfg.stop.metric) == (10, 16, "val_f1")
    assert log.hardware["cpu_count"] and "torch_version" in log.hardware
    out = cli("status", str(run_dir), "--metric", "val_f1", "--format", "csv")
    assert "finished" in out and "2/10" in out


def test_run_recorder_ends_interrupted_and_failed_runs_with_their_partial_epoch(tmp_path):
    for exc, status in ((KeyboardInterrupt, RunStatus.INTERRUPTED), (ValueError, RunStatus.FAILED)):
        run_dir = tmp_path / status.value
        with pytest.raises(exc), greensed.EnergyMonitor(tick_meter()) as monitor, \
                greensed.RunRecorder(run_dir, monitor=monitor) as run:
            with monitor.window() as w:
                pass
            run.add(1, {"teacher_f1": 0.2}, w.reading)
            with monitor.window():
                raise exc("cut")
        s = RunDir(run_dir).read_summary()
        assert s.status is status and s.epochs == 1
        assert s.total_kwh == pytest.approx(2.0) and s.lost_kwh == pytest.approx(1.0)
        assert RunDir(run_dir).read_lost()[0].epoch == 2
        if status is RunStatus.FAILED:
            assert s.error == "ValueError: cut"


def test_run_recorder_refuses_a_used_directory_and_resumes_one(tmp_path):
    run_dir = tmp_path / "run"
    with greensed.EnergyMonitor(tick_meter()) as monitor:
        with greensed.RunRecorder(run_dir, max_epochs=5) as run:
            for epoch in (1, 2, 3):
                with monitor.window() as w:
                    pass
                run.add(epoch, {"teacher_f1": 0.1}, w.reading)
        assert run.summary.stop_policy == "" and "loop ended after 3" in run.summary.stop_reason
        with pytest.raises(GreensedError, match="already holds a run"):
            greensed.RunRecorder(run_dir).start()
        # A checkpoint holding 2 epochs: epoch 3 is redone, its first attempt in the ledger.
        with greensed.RunRecorder(run_dir, resume=True, held_epochs=2, max_epochs=3) as run:
            assert [r.epoch for r in run.history] == [1, 2]
            with monitor.window() as w:
                pass
            rec = run.add(3, {"teacher_f1": 0.2}, w.reading)
        assert rec.cumulative_kwh == pytest.approx(4.0)
        assert run.summary.stop_policy == "max-epochs" and run.summary.total_kwh == pytest.approx(4)
    with pytest.raises(ConfigError, match="batch_size"):
        greensed.RunRecorder(tmp_path / "x", batch_size=0)
    with pytest.raises(GreensedError, match="nothing to resume"):
        greensed.RunRecorder(tmp_path / "none", resume=True).start()


def test_a_refused_record_keeps_its_windows_energy_in_the_ledger(tmp_path):
    """An epoch out of turn (or a bad value) is refused, and the energy its window
    measured goes to lost.jsonl, counted once in the run's total."""
    run_dir = tmp_path / "run"
    with greensed.EnergyMonitor(tick_meter()) as monitor, \
            greensed.RunRecorder(run_dir, monitor=monitor) as run:
        for epoch in (1, 3):  # the loop skipped epoch 2
            with monitor.window() as w:
                pass
            if epoch == 1:
                run.add(epoch, {"teacher_f1": 0.2}, w.reading)
                continue
            with pytest.raises(ConfigError, match=r"epoch 3 recorded where epoch 2 was due; "
                                                  r"its window \(1 kWh\) is in .*lost.jsonl"):
                run.add(epoch, {"teacher_f1": 0.3}, w.reading)
        with monitor.window() as w:
            pass
        with pytest.raises(ConfigError, match="not a number.*lost.jsonl"):
            run.add(2, {"teacher_f1": object()}, w.reading)
        with monitor.window() as w:
            pass
        rec = run.add(2, {"teacher_f1": 0.3}, w.reading)
    assert [(e.epoch, e.kwh) for e in RunDir(run_dir).read_lost()] == [(2, 1.0), (2, 1.0)]
    assert rec.cumulative_kwh == pytest.approx(4.0)  # epochs 1 and 2 + the two refused windows
    assert run.summary.total_kwh == pytest.approx(4.0) and run.summary.lost_kwh == 2.0


def _example():
    spec = importlib.util.spec_from_file_location("plain_loop", REPO / "examples/plain_loop.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_plain_loop_example_runs_and_report_and_replay_read_its_run(tmp_path, one_torch_thread):
    example = _example()
    run_dir = tmp_path / "plain"
    # 1 kWh a window: the budget of 4.5 kWh stops it after 4 epochs, deterministically.
    summary = example.main(str(run_dir), meter=tick_meter(), epochs=20,
                           stop=["plateau:patience=50", "budget:kwh=4.5"])
    assert summary.status is RunStatus.FINISHED and summary.stop_policy == "budget"
    assert summary.epochs == 4 and summary.total_kwh == pytest.approx(4.0)
    assert json.loads((run_dir / "summary.json").read_text())["stop_policy"] == "budget"
    out = cli("report", str(run_dir), "--metric", "val_f1", "--format", "csv", "--no-plots",
              "--out", str(tmp_path / "report"))
    assert "Table 1" in out
    rows = (tmp_path / "report" / "runs.csv").read_text().splitlines()
    assert len(rows) == 2 and str(run_dir) in rows[1]
    out = cli("replay", str(run_dir), "--metric", "val_f1", "--policy", "budget:kwh=2.5",
              "--format", "csv")
    assert "budget:kwh=2.5" in out and "2/4" in out
    # And as a script, from the command line.
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, str(REPO / "examples/plain_loop.py"), "--run-dir",
                          str(tmp_path / "script"), "--meter", "constant:40", "--epochs", "2"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "epoch 2: val_f1" in res.stdout
    assert load_run(tmp_path / "script").summary.stop_policy == "max-epochs"
