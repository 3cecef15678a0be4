"""Reliability, whole processes: SIGTERM (preemption), kill -9, and a second
trainer on the same run directory (docs/reliability.md).

The trainer runs as a real `greensed train` subprocess; resumes run through
`greensed.cli.main` in this process (no second start-up to pay).
"""

from __future__ import annotations

import fcntl
import os
import signal
import sys
from pathlib import Path

import pytest
import torch
from helpers import PARK_IN_EPOCH_2, cli, spawn, train_args, wait_for

from greensed import runlog
from greensed.runlog import RunDir, RunStatus, Summary

# Trains or spawns trainers: left out of `make test-fast`.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def check_energy_ledger(run: Path, summary: Summary) -> list[runlog.EpochRecord]:
    """Epochs 1..N once each, cumulative energy monotonic, total = epochs + lost parts."""
    d = RunDir(run)
    records = d.read_epochs(strict=True)
    assert [r.epoch for r in records] == list(range(1, len(records) + 1))
    cums = [r.cumulative_kwh for r in records]
    assert cums == sorted(cums)
    lost = d.read_lost()
    lost_kwh = sum(e.kwh for e in lost)
    assert summary.lost_kwh == pytest.approx(lost_kwh)
    assert summary.total_kwh == pytest.approx(sum(r.energy_kwh for r in records) + lost_kwh)
    # A part cut just now belongs to the next epoch, which has no record yet.
    unrecorded = sum(e.kwh for e in lost if e.epoch > len(records))
    assert cums[-1] + unrecorded == pytest.approx(summary.total_kwh)
    return records


def test_sigterm_stops_cleanly_and_resume_completes(tiny_dataset, cache, tmp_path, monkeypatch,
                                                    capsys):
    run = tmp_path / "run"
    proc = spawn([sys.executable, "-m", "greensed.cli",
                  *train_args(tiny_dataset, cache, run, 1000)])
    d = RunDir(run)
    wait_for(lambda: len(d.read_epochs()) >= 1, proc)

    # A second trainer while the first runs is refused by the lock, not interleaved.
    code, _, err = cli(monkeypatch, capsys, "train", "--resume", run)
    assert code == 2 and err == (f"error: {run}: run directory is in use by pid {proc.pid} on "
                                 f"{os.uname().nodename}; wait for it or choose another --out\n")

    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 130, err
    assert ": interrupted by SIGTERM\n" in out and f"greensed train --resume {run}\n" in out
    # Acknowledged at once, on stderr, as the signal arrived.
    assert "SIGTERM received: stopping after the current step" in err
    s = d.read_summary()
    assert s.status is RunStatus.INTERRUPTED and s.stop_policy == "interrupted"
    records = check_energy_ledger(run, s)
    k = len(records)
    assert s.epochs == k and torch.load(run / "checkpoints/last.pt",
                                        weights_only=False)["epoch"] == k
    cut = d.read_lost()[-1]  # the epoch the signal cut, measured by the meter
    assert cut.epoch == k + 1 and cut.how == "measured: partial epoch cut by a signal"

    # Resuming with a different config is refused, naming the key; the log is untouched.
    code, _, err = cli(monkeypatch, capsys, "train", "--resume", run, "--seed", "7")
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "train.seed: 42 -> 7" in err and "--force" in err
    assert d.read_epochs() == records

    code, out, _ = cli(monkeypatch, capsys, "train", "--resume", run, "--epochs", k + 1)
    assert code == 0 and f"resuming at epoch {k + 1}" in out
    s = d.read_summary()
    assert s.finished and s.epochs == k + 1
    after = check_energy_ledger(run, s)
    assert after[:k] == records
    assert after[k].cumulative_kwh == pytest.approx(
        records[-1].cumulative_kwh + cut.kwh + after[k].energy_kwh)


def test_kill_9_mid_epoch_then_resume_accounts_the_lost_part_once(
        tiny_dataset, cache, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    parked = tmp_path / "parked"
    proc = spawn([sys.executable, "-c", PARK_IN_EPOCH_2,
                  *train_args(tiny_dataset, cache, run, 3)],
                 GREENSED_TEST_PARKED=str(parked))
    wait_for(parked.exists, proc)
    proc.kill()  # SIGKILL: no handler, no flush, no summary
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    d = RunDir(run)
    beat = d.read_heartbeat()  # as the dead process left it
    assert beat.epoch == 2 and beat.pid == proc.pid and beat.elapsed_s > 0
    assert [r.epoch for r in d.read_epochs(strict=True)] == [1]
    assert d.read_summary() is None and d.read_lost() == []

    code, out, _ = cli(monkeypatch, capsys, "train", "--resume", run)
    assert code == 0 and "resuming at epoch 2" in out  # the dead process's lock is gone
    s = d.read_summary()
    assert s.finished and s.epochs == 3
    records = check_energy_ledger(run, s)
    (lost,) = d.read_lost()
    assert lost.epoch == 2 and lost.how.startswith("estimated: elapsed time x mean power")
    assert lost.duration_s == beat.elapsed_s
    assert lost.kwh == pytest.approx(records[0].avg_power_w * beat.elapsed_s / 3.6e6)
    # The lost part is counted in epoch 2, the epoch it belongs to.
    assert records[1].cumulative_kwh == pytest.approx(
        records[0].cumulative_kwh + lost.kwh + records[1].energy_kwh)

    # Resuming a finished run again counts nothing twice.
    code, _, _ = cli(monkeypatch, capsys, "train", "--resume", run)
    assert code == 0
    assert d.read_lost() == [lost] and d.read_epochs() == records
    assert d.read_summary().total_kwh == pytest.approx(s.total_kwh)


def test_kill_9_in_the_first_epoch_is_estimated_from_the_redone_epoch(
        tiny_dataset, cache, tmp_path, monkeypatch, capsys):
    """No finished epoch to take the power from: the resume's redo of epoch 1 gives it."""
    run = tmp_path / "run"
    parked = tmp_path / "parked"
    proc = spawn([sys.executable, "-c", PARK_IN_EPOCH_2,
                  *train_args(tiny_dataset, cache, run, 2)],
                 GREENSED_TEST_PARKED=str(parked), GREENSED_TEST_PARK="validate:1")
    wait_for(parked.exists, proc)
    proc.kill()
    proc.communicate(timeout=60)
    d = RunDir(run)
    beat = d.read_heartbeat()
    assert beat.epoch == 1 and beat.elapsed_s > 0
    assert d.read_epochs(strict=True) == []

    code, _, _ = cli(monkeypatch, capsys, "train", "--resume", run)
    assert code == 0
    s = d.read_summary()
    assert s.finished and s.epochs == 2
    records = check_energy_ledger(run, s)
    (lost,) = d.read_lost()
    assert lost.epoch == 1 and lost.duration_s == beat.elapsed_s
    assert lost.how == "estimated: elapsed time x mean power of the redone epoch"
    assert lost.kwh == pytest.approx(records[0].avg_power_w * beat.elapsed_s / 3.6e6)
    assert records[0].cumulative_kwh == pytest.approx(lost.kwh + records[0].energy_kwh)
    assert s.lost_kwh == pytest.approx(lost.kwh)

    code, _, _ = cli(monkeypatch, capsys, "train", "--resume", run)  # nothing counted twice
    assert code == 0 and d.read_lost() == [lost]
    assert d.read_summary().total_kwh == pytest.approx(s.total_kwh)


def test_run_dir_locked_by_another_process_is_refused(tiny_dataset, cache, tmp_path,
                                                      monkeypatch, capsys):
    run = tmp_path / "run"
    run.mkdir()
    lock = RunDir(run).lock
    with open(lock, "a+") as holder:  # flock: per open file, even in one process
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        holder.write("pid 4242 on elsewhere\n")
        holder.flush()
        code, out, err = cli(monkeypatch, capsys, *train_args(tiny_dataset, cache, run, 1))
    assert code == 2 and out == ""
    assert err == (f"error: {run}: run directory is in use by pid 4242 on elsewhere; "
                   "wait for it or choose another --out\n")
    assert sorted(p.name for p in run.iterdir()) == [lock.name]
    assert lock.read_text() == "pid 4242 on elsewhere\n"
