"""A run directory's lock file: gone once its process ends the run, a killed
process's stale one still told apart from a held one, and a file removed by its
holder never shared by two later holders. No training: RunLock and RunRecorder."""

from __future__ import annotations

import builtins
import contextlib
import os
import socket
from pathlib import Path

import pytest

from greensed.energy import Reading
from greensed.errors import GreensedError
from greensed.library import RunRecorder
from greensed.runlog import RunDir, RunStatus, load_run
from greensed.runlog import lock as lock_module
from greensed.runlog.lock import RunLock
from greensed.study.collect import RunState, lock_held, state_of


def reading() -> Reading:
    return Reading(0.001, 10.0, {"cpu": 0.001}, {"cpu": "constant"}, "constant:360W")


def test_a_released_lock_leaves_no_file_whatever_the_end(tmp_path):
    run = RunDir(tmp_path)
    with RunLock(run):
        assert lock_held(tmp_path) is True
    assert not run.lock.exists() and lock_held(tmp_path) is False
    with pytest.raises(RuntimeError), RunLock(run):  # an error, not a fresh start
        raise RuntimeError("boom")
    assert not run.lock.exists()


def test_a_stale_lock_is_told_apart_and_taken_over(tmp_path):
    run = RunDir(tmp_path)
    run.lock.write_text(f"pid 999999 on {socket.gethostname()}\n")  # a killed trainer's
    assert lock_held(tmp_path) is False
    with RunLock(run):
        assert run.lock.read_text() == f"pid {os.getpid()} on {socket.gethostname()}\n"
        assert lock_held(tmp_path) is True
        with pytest.raises(GreensedError, match="run directory is in use by pid"):
            RunLock(run).__enter__()
    assert not run.lock.exists()


def test_a_lock_file_removed_by_its_holder_is_not_locked_by_two(tmp_path, monkeypatch):
    """B opens the lock file, its holder then ends (removes it, unlocks): B's flock
    succeeds on a file no longer at the path, where C would lock a new one. B must
    lock the file at the path instead."""
    run = RunDir(tmp_path)
    a = RunLock(run).__enter__()
    opened_before_release = open(run.lock, "a+")  # B's open, as A ends
    a.__exit__(None)
    assert not run.lock.exists()
    calls = []
    real_open = builtins.open

    def b_open(path, *args):
        calls.append(path)
        return opened_before_release if len(calls) == 1 else real_open(path, *args)

    monkeypatch.setattr(lock_module, "open", b_open, raising=False)
    b = RunLock(run).__enter__()
    assert len(calls) == 2  # the orphaned file was let go, the path's file locked
    assert os.fstat(b._fh.fileno()).st_ino == run.lock.stat().st_ino
    monkeypatch.undo()
    with pytest.raises(GreensedError, match="in use by"):  # C is refused
        RunLock(run).__enter__()
    b.__exit__(None)


@pytest.mark.parametrize("end", ["finished", "interrupted", "failed"])
def test_a_library_run_leaves_no_lock_file_and_status_reads_it(tmp_path, end):
    run_dir = tmp_path / "run"
    raised = {"interrupted": KeyboardInterrupt, "failed": RuntimeError}.get(end)
    with pytest.raises(raised) if raised else contextlib.nullcontext(), \
            RunRecorder(run_dir, metric="val_f1", max_epochs=2, hardware={"host": "here"},
                        device="cpu") as rec:
        rec.add(1, {"val_f1": 0.5}, reading())
        if end == "interrupted":
            raise KeyboardInterrupt
        if end == "failed":
            raise RuntimeError("boom")
    assert not RunDir(run_dir).lock.exists()
    assert rec.summary is not None and rec.summary.status is RunStatus(end)
    assert state_of(load_run(run_dir))[0] is RunState(end)


def test_a_killed_library_run_keeps_its_stale_lock_and_reads_incomplete(tmp_path: Path):
    run_dir = tmp_path / "run"
    rec = RunRecorder(run_dir, metric="val_f1", hardware={"host": "here"}, device="cpu").start()
    rec.add(1, {"val_f1": 0.5}, reading())
    assert state_of(load_run(run_dir))[0] is RunState.RUNNING
    # A kill -9: the kernel drops the flock, nothing removes the file.
    fh, rec._lock._fh = rec._lock._fh, None
    fh.close()
    assert RunDir(run_dir).lock.exists() and lock_held(run_dir) is False
    assert state_of(load_run(run_dir))[0] is RunState.INCOMPLETE
