"""greensed reproduce through a real SLURM scheduler (.ci/slurm-up.sh starts one).

Skipped, with the reason, where `sinfo` is missing or no node answers.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers import epochs_of, lock_pid, wait_for_epochs, write_grid
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
    if out.returncode or not any(s in ("idle", "mix", "alloc") for s in states):
        return f"no SLURM node up (sinfo: {(out.stderr or out.stdout).strip() or 'no nodes'})"
    return None


pytestmark = [pytest.mark.slurm, pytest.mark.slow]
SLURM = '[slurm]\ncpus_per_run = 1\ntime_min = 10\n'


@pytest.fixture(scope="module", autouse=True)
def _need_slurm() -> None:
    why = _slurm_state()
    if why:
        pytest.skip(why)


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


def test_grid_through_slurm_with_a_failing_cell(tiny_dataset: Path, tmp_path: Path) -> None:
    grid = write_grid(tmp_path, tiny_dataset, seeds=[1, 2], epochs=2, bad_cell=True,
                      slurm=SLURM)
    out = tmp_path / "runs"
    code, output = _reproduce(str(grid), "--out", str(out))
    assert code == 1, output  # the bad cells failed; the good ones still ran
    rows = _rows(out)
    assert [rows[k][:2] for k in ("4/1", "4/2")] == [["finished", "2/2"]] * 2
    for key in ("8/1", "8/2"):
        assert rows[key][0] == "failed"
        assert rows[key][-1] == "/nonexistent/desed: dataset path not found"
    assert "2 failed: bs8/seed1, bs8/seed2" in output
    # One array, one task per cell; submitit's logs under OUT/.submitit.
    ids = [_job_id(out / b / s) for b in ("4", "8") for s in ("1", "2")]
    assert len({i.split("_")[0] for i in ids}) == 1 and len(set(ids)) == 4
    assert list((out / ".submitit").glob("*_log.out"))
    hw = json.loads((out / "4" / "1" / "hardware.json").read_text())
    assert hw["hostname"] == os.uname().nodename

    rep = CliRunner().invoke(app, ["report", str(out), "--format", "csv", "--no-plots",
                                   "--out", str(tmp_path / "report")])
    assert rep.exit_code == 0, rep.output
    runs_csv = (tmp_path / "report" / "runs.csv").read_text().splitlines()
    assert len(runs_csv) == 1 + 2  # header + the two finished runs


def test_killed_and_preempted_cells_resume(tiny_dataset: Path, tmp_path: Path) -> None:
    grid = write_grid(tmp_path, tiny_dataset, seeds=[1, 2], epochs=6, slurm=SLURM)
    out = tmp_path / "runs"
    killed, preempted = out / "4" / "1", out / "4" / "2"
    code, output = _reproduce(str(grid), "--out", str(out), "--no-wait")
    assert code == 0, output
    assert {r[0] for r in _rows(out).values()} <= {"queued", "running"}

    wait_for_epochs(killed, 1)
    while not (killed / "checkpoints" / "last.pt").exists():
        time.sleep(0.05)
    # A crash: SIGKILL, no clean stop, no summary.
    os.kill(lock_pid(killed), signal.SIGKILL)
    # A preemption: SLURM's warning signal; the trainer stops cleanly, submitit requeues.
    wait_for_epochs(preempted, 1)
    subprocess.run(["scancel", "--signal=USR2", _job_id(preempted)], check=True, timeout=10)
    t0 = time.monotonic()
    while "BeginTime" not in _squeue(_job_id(preempted)) and _squeue(_job_id(preempted)):
        assert time.monotonic() - t0 < 60, _squeue(_job_id(preempted))
        time.sleep(0.2)
    # SLURM delays a requeued job by about two minutes; release it now.
    subprocess.run(["scontrol", "update", f"jobid={_job_id(preempted)}", "StartTime=now"],
                   check=True, timeout=10)
    _wait_gone(_job_id(killed))
    _wait_gone(_job_id(preempted))

    # The preempted cell finished on its own, its energy account exact across the requeue.
    summary = runlog.RunDir(preempted).read_summary()
    assert summary.finished and epochs_of(preempted) == [1, 2, 3, 4, 5, 6]
    lost = [json.loads(ln) for ln in (preempted / "lost.jsonl").read_text().splitlines()]
    assert [e["how"] for e in lost] == ["measured: partial epoch cut by a signal"]
    records = runlog.RunDir(preempted).read_epochs()
    assert summary.total_kwh == pytest.approx(
        sum(r.energy_kwh for r in records) + lost[0]["kwh"], rel=1e-9)

    assert not (killed / "summary.json").exists() and len(epochs_of(killed)) < 6
    assert _rows(out)["4/1"][0] == "incomplete"
    code, output = _reproduce(str(grid), "--out", str(out))
    assert code == 0, output
    assert "1 finished, 1 to resume, 0 to start" in output
    assert runlog.RunDir(killed).read_summary().finished
    assert epochs_of(killed) == [1, 2, 3, 4, 5, 6]
