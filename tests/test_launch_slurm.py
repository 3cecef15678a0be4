"""greensed reproduce through a real SLURM scheduler (.ci/slurm-up.sh starts one).

Skipped, with the reason, where `sinfo` is missing or no node answers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import epochs_of, lock_pid, spawn, write_grid
from typer.testing import CliRunner

from greensed import runlog
from greensed.cli import app
from greensed.study.status import status_table


def _slurm_state() -> str | None:
    """Why SLURM cannot be used here, or None when a node is up."""
    if shutil.which("sinfo") is None:
        return "sinfo not found (start a cluster with .ci/slurm-up.sh)"
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True,
                             timeout=10)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 10 s"
    states = out.stdout.split()
    # "comp": a node still completing the last job is up.
    if out.returncode or not any(s in ("idle", "mix", "alloc", "comp") for s in states):
        return f"no SLURM node up (sinfo: {(out.stderr or out.stdout).strip() or 'no nodes'})"
    return None


pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SLURM = '[slurm]\ncpus_per_run = 1\ntime_min = 10\n'


@pytest.fixture(scope="module", autouse=True)
def _need_slurm() -> None:
    why = _slurm_state()
    if why:
        pytest.skip(why)


@pytest.fixture(autouse=True)
def _cancel_what_the_test_left() -> Iterator[None]:
    """A failed test must not leave its jobs holding the CPUs of the next one."""
    before = set(_queue())
    yield
    left = [j for j in _queue() if j not in before]
    if left:
        subprocess.run(["scancel", *left], timeout=10)


def _queue() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True,
                         timeout=10)
    return out.stdout.split()


def _reproduce(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["reproduce", *args, "--launcher", "slurm"])
    return res.exit_code, res.output


def _rows(out: Path) -> dict[str, list[str]]:
    return {str(Path(r[0]).relative_to(out)): r[1:] for r in status_table([out]).rows}


def _job_id(run_dir: Path) -> str:
    return json.loads((run_dir / "launch.json").read_text())["job_id"]


def _squeue(job_id: str) -> str:
    """The job's state and reason ('' once it has left the queue)."""
    out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T %r"], capture_output=True,
                         text=True, timeout=10)
    return out.stdout.strip()


def _wait_gone(job_id: str, timeout_s: float = 120.0) -> None:
    t0 = time.monotonic()
    while _squeue(job_id):
        assert time.monotonic() - t0 < timeout_s, f"job {job_id} still queued: {_squeue(job_id)}"
        time.sleep(0.5)


# --- grid faults: each a row of docs/reliability.md (G1-G4) ---------------------------


def _energy_counted_once(run_dir: Path, epochs: int) -> list[runlog.LostEntry]:
    """The cell finished with epochs 1..N once each, and its records, ledger and summary
    agree: total = the records' energy + the lost parts, each lost part in exactly one
    record's cumulative_kwh. Returns the ledger."""
    d = runlog.RunDir(run_dir)
    summary, records, lost = d.read_summary(), d.read_epochs(strict=True), d.read_lost()
    assert summary is not None and summary.finished, summary
    assert [r.epoch for r in records] == list(range(1, epochs + 1))
    assert all(e.kwh is not None for e in lost), lost
    assert summary.lost_kwh == pytest.approx(sum(e.kwh for e in lost), rel=1e-9)
    assert summary.total_kwh == pytest.approx(
        sum(r.energy_kwh for r in records) + summary.lost_kwh, rel=1e-9)
    assert records[-1].cumulative_kwh == pytest.approx(summary.total_kwh, rel=1e-9)
    return lost


def _launch(run_dir: Path) -> dict:
    return json.loads((run_dir / "launch.json").read_text())


def _freeze_in_training(cells: list[Path]) -> dict[Path, int]:
    """SIGSTOP each cell's trainer once it has a checkpoint (a long step, mid-epoch: a
    signal then waits until SLURM's SIGCONT). Returns the trainers' pids."""
    pids: dict[Path, int] = {}
    t0 = time.monotonic()
    while len(pids) < len(cells):
        assert time.monotonic() - t0 < 180, f"no checkpoint in {set(cells) - set(pids)}"
        for cell in cells:
            if cell not in pids and epochs_of(cell) and (cell / "checkpoints/last.pt").exists():
                pids[cell] = lock_pid(cell)
                os.kill(pids[cell], signal.SIGSTOP)
        time.sleep(0.05)
    return pids


def _wait_for(what: str, ready, timeout_s: float = 120.0) -> None:  # noqa: ANN001
    t0 = time.monotonic()
    while not ready():
        assert time.monotonic() - t0 < timeout_s, f"not after {timeout_s} s: {what}"
        time.sleep(0.2)


def _interrupted(run_dir: Path) -> bool:
    summary = runlog.RunDir(run_dir).read_summary()
    return summary is not None and summary.status is runlog.RunStatus.INTERRUPTED


def _release(job_id: str, *extra: str) -> None:
    """Start a requeued job now (SLURM holds it back about two minutes)."""
    subprocess.run(["scontrol", "update", f"jobid={job_id}", "StartTime=now", *extra],
                   check=True, timeout=10)


def test_cells_cancelled_or_requeued_mid_epoch_resume_from_their_checkpoint(
        tiny_dataset: Path, tmp_path: Path) -> None:
    """G1: `scontrol requeue` of a running cell, followed by the waiting `reproduce`;
    `scancel` of another, which `reproduce` reports interrupted, then `scontrol requeue`."""
    grid = write_grid(tmp_path, tiny_dataset, seeds=[1, 2], epochs=4, slurm=SLURM)
    out = tmp_path / "runs"
    requeued, cancelled = out / "4" / "1", out / "4" / "2"
    proc = spawn([sys.executable, "-m", "greensed.cli", "reproduce", str(grid), "--out",
                  str(out), "--launcher", "slurm"])
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        _freeze_in_training([requeued, cancelled])
        jobs = {cell: _job_id(cell) for cell in (requeued, cancelled)}
        # SLURM sends SIGCONT and SIGTERM: the trainers stop cleanly, mid-epoch.
        subprocess.run(["scontrol", "requeue", jobs[requeued]], check=True, timeout=10)
        subprocess.run(["scancel", jobs[cancelled]], check=True, timeout=10)
        for cell in (requeued, cancelled):
            _wait_for(f"{cell} interrupted", lambda c=cell: _interrupted(c))
        _wait_for("the cancelled cell reported",
                  lambda: any("bs4/seed2 interrupted" in ln for ln in lines))
        assert _rows(out)["4/2"][0] == "interrupted"
        subprocess.run(["scontrol", "requeue", jobs[cancelled]], check=True, timeout=10)
        # Held back by SLURM (BeginTime) until released: `reproduce` sees it pending.
        _wait_for("the requeue reported", lambda: any(
            f"bs4/seed1: job {jobs[requeued]} stopped and requeued by SLURM" in ln
            for ln in lines))
        for job in jobs.values():
            _wait_for("the requeue", lambda j=job: _squeue(j).startswith("PENDING"))
            _release(job)
        proc.wait(timeout=240)
        reader.join(timeout=10)
    finally:
        proc.kill()
    # It followed the requeued task to its end; the cancelled one it left cancelled.
    output = "".join(lines)
    assert proc.returncode == 130, output + proc.stderr.read()
    assert "bs4/seed1 finished" in output
    _wait_gone(jobs[cancelled])
    for cell in (requeued, cancelled):
        lost = _energy_counted_once(cell, 4)
        # One cut, measured when it happened (none if it fell between two epochs).
        assert [e.how for e in lost] in ([], ["measured: partial epoch cut by a signal"])
        launch = _launch(cell)
        assert launch["job_id"] == jobs[cell] and launch["action"] == "resume"
        assert launch["state"] == "ended" and launch["status"] == "finished"
    assert {r[0] for r in _rows(out).values()} == {"finished"}


def test_cells_past_their_time_limit_or_preempted_resume(tiny_dataset: Path,
                                                        tmp_path: Path) -> None:
    """G2: SLURM's own warning before the time limit; G1b: a preempting scheduler's
    SIGUSR2 (by hand). Both stop mid-epoch and submitit requeues the task."""
    grid = write_grid(tmp_path, tiny_dataset, seeds=[1, 2], epochs=4, slurm=SLURM)
    out = tmp_path / "runs"
    timed_out, preempted = out / "4" / "1", out / "4" / "2"
    code, output = _reproduce(str(grid), "--out", str(out), "--no-wait")
    assert code == 0, output
    assert {r[0] for r in _rows(out).values()} <= {"queued", "running"}
    pids = _freeze_in_training([timed_out, preempted])
    jobs = {cell: _job_id(cell) for cell in (timed_out, preempted)}
    # The limit now falls within submitit's 90 s warning: SLURM sends SIGUSR2 (with a
    # SIGCONT) at its next check, about every 30 s, long before the 2 minutes are over.
    subprocess.run(["scontrol", "update", f"jobid={jobs[timed_out]}", "TimeLimit=2"],
                   check=True, timeout=10)
    subprocess.run(["scancel", "--signal=USR2", jobs[preempted]], check=True, timeout=10)
    os.kill(pids[preempted], signal.SIGCONT)
    for cell, job in jobs.items():
        _wait_for(f"{cell}: the requeue", lambda j=job: _squeue(j).startswith("PENDING"))
        assert _interrupted(cell)
    # submitit counts a SIGUSR2 within 10 minutes of a short limit as a time-out.
    logs = [(out / ".submitit" / f"{job}_0_log.out").read_text() for job in jobs.values()]
    assert all("this job is timed-out" in log and "(19 remaining timeouts)" in log
               for log in logs)
    _release(jobs[timed_out], "TimeLimit=10")  # the next allocation has its full time
    _release(jobs[preempted])
    for cell, job in jobs.items():
        _wait_gone(job)
        lost = _energy_counted_once(cell, 4)
        assert [e.how for e in lost] in ([], ["measured: partial epoch cut by a signal"])
        assert _launch(cell)["action"] == "resume" and _job_id(cell) == job


def test_failed_cells_are_named_and_a_rerun_redoes_only_the_unfinished(
        tiny_dataset: Path, tmp_path: Path) -> None:
    """G3 and G4: cells that fail for good, a killed cell and a finished one."""
    grid = write_grid(tmp_path, tiny_dataset, seeds=[1, 2], epochs=3, bad_cell=True,
                      slurm=SLURM)
    out = tmp_path / "runs"
    done, killed = out / "4" / "1", out / "4" / "2"
    code, output = _reproduce(str(grid), "--out", str(out), "--no-wait")
    assert code == 0, output
    # A crash: SIGKILL, no clean stop, no summary.
    os.kill(_freeze_in_training([killed])[killed], signal.SIGKILL)
    ids = [_job_id(out / b / s) for b in ("4", "8") for s in ("1", "2")]
    for job in ids:
        _wait_gone(job)
    # One array, one task per cell; submitit's logs under OUT/.submitit.
    assert len({i.split("_")[0] for i in ids}) == 1 and len(set(ids)) == 4
    assert list((out / ".submitit").glob("*_log.out"))
    error = "/nonexistent/desed: dataset path not found"
    res = CliRunner().invoke(app, ["status", str(out)])
    assert res.exit_code == 0, res.output
    rows = _rows(out)
    assert rows["4/1"][:2] == ["finished", "3/3"] and rows["4/2"][0] == "incomplete"
    assert [rows[k][0] for k in ("8/1", "8/2")] == ["failed"] * 2
    assert [rows[k][-1] for k in ("8/1", "8/2")] == [error] * 2
    assert res.output.count(error) == 2
    before = {p: p.stat().st_mtime_ns for p in done.iterdir() if p.is_file()}

    code, output = _reproduce(str(grid), "--out", str(out))
    assert code == 1, output  # the bad cells failed again; the others ran
    assert "4 cells" in output and "1 finished, 1 to resume, 2 to start" in output
    for label in ("bs8/seed1", "bs8/seed2"):
        assert f"{label} failed" in output
    assert output.count(f": {error}") >= 2 and "2 failed: bs8/seed1, bs8/seed2" in output
    # The finished cell was not submitted again: not one of its files was touched.
    assert _job_id(done) == ids[0]
    assert {p: p.stat().st_mtime_ns for p in done.iterdir() if p.is_file()} == before
    assert _launch(killed)["action"] == "resume" and _job_id(killed) not in ids
    lost = _energy_counted_once(killed, 3)
    assert [e.how.split(":")[0] for e in lost] in (["estimated"], [])
    _energy_counted_once(done, 3)
    hw = json.loads((done / "hardware.json").read_text())
    assert hw["hostname"] == os.uname().nodename

    rep = CliRunner().invoke(app, ["report", str(out), "--format", "csv", "--no-plots",
                                   "--out", str(tmp_path / "report")])
    assert rep.exit_code == 0, rep.output
    runs_csv = (tmp_path / "report" / "runs.csv").read_text().splitlines()
    assert len(runs_csv) == 1 + 2  # header + the two finished runs
