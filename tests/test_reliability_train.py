"""Reliability, in-process training failures: divergence, failed writes, disk
full, no energy source. Each keeps the earlier log intact (docs/reliability.md)."""

from __future__ import annotations

import dataclasses
import errno
import json
import math
import os
from pathlib import Path

import pytest
import torch
from helpers import quiet, tiny_config, tweak

from greensed.energy.constant import UnavailableMeter
from greensed.errors import ConfigError, GreensedError
from greensed.runlog import RunDir, RunStatus
from greensed.train import step as step_mod
from greensed.train.loop import train
from greensed.train.validate import HELDOUT_METRICS, METRICS, PSDS_METRICS

# Trains or spawns trainers: left out of `make test-fast`.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def one_step_config(dataset: Path, cache: Path, epochs: int):
    cfg = tiny_config(dataset, cache, epochs=epochs)
    cfg = tweak(cfg, **{"train.max_steps_per_epoch": 1})
    return cfg


def last_epoch(run: Path) -> int:
    return int(torch.load(run / "checkpoints/last.pt", weights_only=False)["epoch"])


def enospc(path: Path) -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def test_nan_loss_stops_diverged_with_last_good_checkpoint(tiny_dataset, tmp_path, monkeypatch):
    real_step = step_mod.train_step
    steps: list[int] = []

    def nan_from_epoch_2(*args, **kwargs):
        losses = real_step(*args, **kwargs)
        steps.append(1)
        if len(steps) > 1:  # one step per epoch: this is epoch 2
            losses["total"] = losses["total"] * float("nan")
        return losses

    monkeypatch.setattr(step_mod, "train_step", nan_from_epoch_2)  # what optimize() calls
    run = tmp_path / "run"
    res = train(one_step_config(tiny_dataset, tmp_path / "cache", 3), run, report=quiet)
    d = RunDir(run)
    s = d.read_summary()
    assert s.status is RunStatus.DIVERGED and s.stop_policy == "diverged"
    assert "non-finite loss" in s.stop_reason and s.epochs == 1 and len(steps) == 2
    records = d.read_epochs(strict=True)
    assert [r.epoch for r in records] == [1]
    assert all(math.isfinite(v) for v in dataclasses.astuple(records[0].loss))
    assert last_epoch(run) == 1
    ck = torch.load(run / "checkpoints/last.pt", weights_only=False)
    assert all(torch.isfinite(v).all() for v in ck["student"].values() if v.is_floating_point())
    (lost,) = d.read_lost()
    assert lost.epoch == 2 and lost.how == "measured: partial epoch cut by divergence"
    assert s.total_kwh == pytest.approx(records[0].cumulative_kwh + lost.kwh)
    assert res.summary == s


def test_failed_checkpoint_write_keeps_previous_and_resume_counts_the_epoch_once(
        tiny_dataset, tmp_path, monkeypatch):
    cfg = one_step_config(tiny_dataset, tmp_path / "cache", 1)
    run = tmp_path / "run"
    train(cfg, run, report=quiet)
    before = (run / "checkpoints/last.pt").read_bytes()
    cfg = tweak(cfg, **{"train.epochs": 2})
    real_replace = os.replace

    def replace(src, dst, *args, **kwargs):  # the temp file is written; the rename fails
        if Path(dst).name == "last.pt":
            raise enospc(dst)
        return real_replace(src, dst, *args, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        with pytest.raises(GreensedError) as err:
            train(cfg, run, resume=True, report=quiet)
    msg = str(err.value)
    assert "No space left on device" in msg and "--resume" in msg and "\n" not in msg
    assert (run / "checkpoints/last.pt").read_bytes() == before
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]
    d = RunDir(run)
    assert d.read_summary().status is RunStatus.FAILED
    logged = d.read_epochs(strict=True)
    assert [r.epoch for r in logged] == [1, 2]  # logged, but not checkpointed

    res = train(cfg, run, resume=True, report=quiet)
    records = d.read_epochs(strict=True)
    assert [r.epoch for r in records] == [1, 2] and records[0] == logged[0]
    assert records[1].time_utc >= logged[1].time_utc and last_epoch(run) == 2
    (lost,) = d.read_lost()  # the first try at epoch 2, measured, and no estimate on top
    assert lost.epoch == 2 and lost.kwh == logged[1].energy_kwh
    assert lost.how.startswith("measured: finished epoch redone")
    s = res.summary
    assert s.status is RunStatus.FINISHED and s.lost_kwh == pytest.approx(lost.kwh)
    assert s.total_kwh == pytest.approx(sum(r.energy_kwh for r in records) + lost.kwh)
    assert records[1].cumulative_kwh == pytest.approx(s.total_kwh)


def test_disk_full_on_log_append_stops_with_one_line_and_resume_repairs_torn_line(
        tiny_dataset, tmp_path, monkeypatch):
    cfg = one_step_config(tiny_dataset, tmp_path / "cache", 2)
    run = tmp_path / "run"
    real_append = RunDir.append_epoch

    def torn_from_epoch_2(self, record):
        if record.epoch == 1:
            return real_append(self, record)
        line = json.dumps(record.to_json())
        with open(self.epochs, "a") as fh:
            fh.write(line[: len(line) // 2])  # half a line reached the disk
        raise enospc(self.epochs)

    with monkeypatch.context() as m:
        m.setattr(RunDir, "append_epoch", torn_from_epoch_2)
        with pytest.raises(GreensedError) as err:
            train(cfg, run, report=quiet)
    msg = str(err.value)
    assert "No space left on device" in msg and "epochs.jsonl" in msg and "\n" not in msg
    d = RunDir(run)
    with pytest.raises(GreensedError, match=r"epochs\.jsonl:2: not a JSON record"):
        d.read_epochs(strict=True)
    assert [r.epoch for r in d.read_epochs()] == [1]  # earlier record intact
    s = d.read_summary()
    assert s.status is RunStatus.FAILED and s.epochs == 1 and "No space left" in s.error
    # The failed attempt's window was ended by the error and measured into the ledger,
    # naming its heartbeat (so no estimate is added on top), and the heartbeat cleared.
    (cut,) = d.read_lost()
    assert cut.epoch == 2 and cut.how == "measured: partial epoch cut by an error (OSError)"
    assert cut.kwh == pytest.approx(40 * cut.duration_s / 3.6e6)
    assert d.read_heartbeat().epoch == 0

    res = train(cfg, run, resume=True, report=quiet)
    records = d.read_epochs(strict=True)  # the torn line is gone
    assert [r.epoch for r in records] == [1, 2]
    assert d.read_lost() == [cut]
    assert res.summary.total_kwh == pytest.approx(
        sum(r.energy_kwh for r in records) + cut.kwh)
    assert records[1].cumulative_kwh == pytest.approx(res.summary.total_kwh)


def test_unavailable_meter_is_never_a_silent_zero(tiny_dataset, tmp_path):
    cfg = one_step_config(tiny_dataset, tmp_path / "cache", 1)
    cfg = tweak(cfg, **{"meter.spec": "none"})
    run = tmp_path / "run"
    res = train(cfg, run, report=quiet)
    (r,) = RunDir(run).read_epochs()
    assert r.energy_kwh is None and r.cumulative_kwh is None and r.avg_power_w is None
    assert r.energy_methods == {"all": "unavailable"}
    # The names stop.metric is checked against are those a record really has (the
    # greensed protocol holds no weak clips out; test_desed_train_cli has the others;
    # PSDS only with [validate] psds, test_metrics_psds_epoch).
    assert {k for k, v in r.metrics.items() if not isinstance(v, list)} == \
        set(METRICS) - set(HELDOUT_METRICS) - set(PSDS_METRICS)
    assert r.energy_status.startswith("unavailable: ")
    assert res.summary.total_kwh is None and res.summary.finished
    assert RunDir(run).read_summary().total_kwh is None


@pytest.mark.parametrize("how", ["spec none", "meter object"])
def test_budget_policy_refuses_an_unavailable_meter_before_the_run_dir(
        tiny_dataset, tmp_path, how):
    cfg = one_step_config(tiny_dataset, tmp_path / "cache", 1)
    cfg = tweak(cfg, **{"stop.policies": ["budget"]})
    cfg = tweak(cfg, **{"stop.budget.kwh": 0.1})
    cfg = tweak(cfg, **{"meter.spec": "none"})
    meter = UnavailableMeter("no RAPL and no NVML") if how == "meter object" else None
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"needs energy readings but meter 'unavailable' is "
                                          r"unavailable"):
        train(cfg, run, meter=meter, report=quiet)
    assert not run.exists()
