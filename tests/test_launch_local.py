"""greensed reproduce with the local launcher: plan, run, skip, resume, fail."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import epochs_of, lock_pid, wait_for_epochs, write_grid
from typer.testing import CliRunner

from greensed import runlog
from greensed.cli import app
from greensed.errors import ConfigError
from greensed.launch import plan_grid, reproduce
from greensed.launch.grid import load_grid
from greensed.launch.plan import prepare, resolve_resources, slurm_table
from greensed.study.status import status_table

# Trains or spawns trainers: left out of `make test-fast`.
pytestmark = pytest.mark.slow



def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["reproduce", *args])
    return res.exit_code, res.output


def _rows(out: Path) -> dict[str, list[str]]:
    return {str(Path(r[0]).relative_to(out)): r[1:] for r in status_table([out]).rows}


def test_dry_run_plans_skip_resume_start_and_writes_nothing(tmp_path: Path) -> None:
    grid = write_grid(tmp_path, tmp_path / "data", seeds=[1, 2, 3], epochs=1)
    out = tmp_path / "runs"
    for seed in "12":
        (out / "4" / seed).mkdir(parents=True)
    runlog.atomic_write_json(out / "4" / "1" / "summary.json", {"schema": 1, "status": "finished"})
    (out / "4" / "2" / "epochs.jsonl").write_text('{"schema": 1, "epoch": 1}\n')
    runlog.atomic_write_json(out / "4" / "2" / "summary.json",
                             {"schema": 1, "status": "interrupted"})
    before = sorted(p for p in tmp_path.rglob("*"))
    code, output = _cli(str(grid), "--out", str(out), "--dry-run", "--data", str(tmp_path))
    assert code == 0, output
    lines = {ln.split()[0]: ln.split()[1:] for ln in output.splitlines() if ln.startswith("  bs")}
    assert lines == {"bs4/seed1": ["skip", str((out / "4" / "1").resolve())],
                     "bs4/seed2": ["resume", str((out / "4" / "2").resolve())],
                     "bs4/seed3": ["start", str((out / "4" / "3").resolve())]}
    assert "1 finished, 1 to resume, 1 to start" in output
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_plan_applies_flags_to_every_cell(tmp_path: Path) -> None:
    grid = write_grid(tmp_path, tmp_path / "data", seeds=[1, 2], epochs=1, bad_cell=True)
    plans = plan_grid(load_grid(grid), tmp_path / "o", data="d", epochs=7, meter="constant:5")
    assert [(p.cell.batch_size, p.cell.seed) for p in plans] == [(4, 1), (4, 2), (8, 1), (8, 2)]
    assert {p.cell.config.data.path for p in plans} == {str(Path("d").resolve())}
    assert {(p.cell.config.train.epochs, p.cell.config.meter.spec) for p in plans} == {
        (7, "constant:5")}
    assert {p.cell.recipe for p in plans} == {"good", "bad"}


def test_slurm_table_and_flags(tmp_path: Path) -> None:
    grid = write_grid(tmp_path, tmp_path, seeds=[1], epochs=1,
                      slurm='[slurm]\npartition = "gpu"\ngpus_per_run = 1\nmax_parallel = 3\n')
    load_grid(grid)  # the grid loader accepts the [slurm] table
    res = resolve_resources(grid, partition=None, max_parallel=2, time_min=None)
    assert (res.partition, res.gpus_per_run, res.max_parallel, res.time_min) == ("gpu", 1, 2, 720)
    (tmp_path / "bad.toml").write_text('[grid]\nseed = [1]\n[slurm]\ngpus = 1\n')
    with pytest.raises(ConfigError, match=r"bad.toml \[slurm\]: unknown key 'gpus'"):
        slurm_table(tmp_path / "bad.toml")
    with pytest.raises(ConfigError, match="--max-parallel 0"):
        resolve_resources(grid, max_parallel=0)


def test_sequential_failing_cell_then_rerun_skips_finished(tiny_dataset: Path,
                                                           tmp_path: Path) -> None:
    grid = write_grid(tmp_path, tiny_dataset, seeds=[1], epochs=2, bad_cell=True)
    out = tmp_path / "runs"
    code, output = _cli(str(grid), "--out", str(out), "--cpus-per-run", "1")
    assert code == 1, output  # the bad cell fails, after the good one ran
    rows = _rows(out)
    assert rows["4/1"][:2] == ["finished", "2/2"]
    assert rows["8/1"][0] == "failed" and "/nonexistent/desed" in rows["8/1"][-1]
    assert "1 failed: bs8/seed1" in output
    summary = runlog.RunDir(out / "4" / "1").read_summary()
    assert summary.recipe == "good" and summary.batch_size == 4
    assert json.loads((out / "4" / "1" / "hardware.json").read_text())["cpu_count"] >= 1
    mtime = (out / "4" / "1" / "summary.json").stat().st_mtime_ns

    result = reproduce(grid, out=out, report=lambda line: None)
    assert [(o.plan.label, o.state) for o in result.outcomes] == [
        ("bs4/seed1", "skipped"), ("bs8/seed1", "failed")]
    assert (out / "4" / "1" / "summary.json").stat().st_mtime_ns == mtime


def test_parallel_runs_cells_side_by_side(tiny_dataset: Path, tmp_path: Path) -> None:
    grid = write_grid(tmp_path, tiny_dataset, seeds=[1, 2], epochs=1)
    out = tmp_path / "runs"
    code, output = _cli(str(grid), "--out", str(out), "--max-parallel", "2",
                        "--cpus-per-run", "1")
    assert code == 0, output
    assert [r[:2] for r in _rows(out).values()] == [["finished", "1/1"]] * 2
    # Both started before either ended.
    events = [ln.split("] ")[1].split()[0] for ln in output.splitlines() if "done] " in ln]
    assert events[:2] == ["starting", "starting"]
    # Both good cells ran as their own processes, logging to launch.log.
    pids = {json.loads((out / "4" / s / "launch.json").read_text())["pid"] for s in "12"}
    assert len(pids) == 2 and os.getpid() not in pids
    assert "epoch   1" in (out / "4" / "1" / "launch.log").read_text()


def test_killed_cell_is_resumed(tiny_dataset: Path, tmp_path: Path) -> None:
    grid = write_grid(tmp_path, tiny_dataset, seeds=[1], epochs=4)
    out = tmp_path / "runs"
    run_dir = out / "4" / "1"
    plans = plan_grid(load_grid(grid), out)
    prepare(plans[0], "local")
    proc = subprocess.Popen([sys.executable, "-m", "greensed.launch", "run-cell",
                             str(run_dir.resolve()), "--threads", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_epochs(run_dir, 1)
        # Not between epochs.jsonl and the first last.pt: see the report of this change.
        while not (run_dir / "checkpoints" / "last.pt").exists():
            time.sleep(0.05)
        os.kill(lock_pid(run_dir), signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    done = len(epochs_of(run_dir))
    assert 1 <= done < 4 and not (run_dir / "summary.json").exists()
    assert _rows(out)["4/1"][0] == "incomplete"  # its trainer is gone

    result = reproduce(grid, out=out, report=lambda line: None,
                       resources=resolve_resources(grid, cpus_per_run=1))
    assert [(o.plan.action, o.state) for o in result.outcomes] == [("resume", "finished")]
    assert epochs_of(run_dir) == [1, 2, 3, 4]
    assert runlog.RunDir(run_dir).read_summary().epochs == 4


def test_status_of_launched_cells(tmp_path: Path) -> None:
    import fcntl
    import socket

    def cell(name: str, launch: dict | None = None, epochs: int = 0) -> Path:
        d = tmp_path / name
        d.mkdir()
        if launch is not None:
            runlog.atomic_write_json(d / "launch.json", launch)
        if epochs:
            (d / "epochs.jsonl").write_text("".join(
                json.dumps({"schema": 1, "epoch": e, "metrics": {"teacher_f1": 0.1}}) + "\n"
                for e in range(1, epochs + 1)))
        return d

    cell("queued", {"state": "submitted", "job_id": "7_0"})
    cell("failed", {"state": "failed", "error": "/x: dataset path not found"})
    # Resubmitted after an interruption: queued again, not its old summary's state.
    old = cell("requeued", {"state": "submitted", "job_id": "8_1"}, epochs=1)
    runlog.atomic_write_json(old / "summary.json", {"schema": 1, "status": "interrupted"})
    running = cell("running", {"state": "started"}, epochs=2)
    dead = cell("dead", {"state": "started"}, epochs=1)
    (dead / "lock").write_text(f"pid 999999 on {socket.gethostname()}\n")
    with open(running / "lock", "w") as fh:
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rows = {Path(r[0]).name: (r[1], r[-1]) for r in status_table([tmp_path]).rows}
    after = {Path(r[0]).name: r[1] for r in status_table([tmp_path]).rows}
    assert rows == {"queued": ("queued", "job 7_0"),
                    "failed": ("failed", "/x: dataset path not found"),
                    "requeued": ("queued", "job 8_1"),
                    "running": ("running", "epoch 3"),
                    "dead": ("incomplete", "no summary.json and no trainer: killed and never "
                             "resumed (greensed train --resume finishes it)")}
    assert after["running"] == "incomplete"  # the lock file stays; its holder is gone
