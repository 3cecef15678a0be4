"""The local launcher: cells one after another in this process, or side by
side as subprocesses (``--max-parallel N``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from greensed import runlog
from greensed.launch.cell import last_error_line, run_cell
from greensed.launch.plan import CellPlan, Resources, prepare
from greensed.launch.reproduce import CellOutcome, Progress
from greensed.study.status import LAUNCH_FILE

CELL_LOG = "launch.log"


def outcome_from_dir(plan: CellPlan, duration_s: float, fallback_error: str | None = None
                     ) -> CellOutcome:
    """A cell's outcome from what it left: summary.json, else launch.json's error."""
    summary = runlog.read_summary(plan.run_dir) or {}
    launch = runlog.read_json(plan.run_dir / LAUNCH_FILE) or {}
    if launch.get("state") == "failed":
        return CellOutcome(plan, "failed", launch.get("error") or fallback_error, duration_s)
    status = summary.get("status")
    if launch.get("state") == "ended" and status:
        err = summary.get("error") if status != "finished" else None
        return CellOutcome(plan, str(status), err, duration_s)
    return CellOutcome(plan, "failed", fallback_error or "ended without a summary", duration_s)


def run_sequential(plans: list[CellPlan], res: Resources, progress: Progress) -> list[CellOutcome]:
    outcomes = []
    for plan in plans:
        prepare(plan, "local")
        progress.started(plan)
        t0 = time.monotonic()
        try:
            run_cell(plan.run_dir, threads=res.cpus_per_run,
                     report=lambda text, p=plan: [progress.report(f"  [{p.label}] {line}")
                                                  for line in text.splitlines()])
            outcome = outcome_from_dir(plan, time.monotonic() - t0)
        except KeyboardInterrupt:
            outcome = CellOutcome(plan, "interrupted", None, time.monotonic() - t0)
        except Exception as exc:  # one failing cell must not stop the others
            outcome = CellOutcome(plan, "failed", last_error_line(exc), time.monotonic() - t0)
        progress.ended(outcome)
        outcomes.append(outcome)
        if outcome.state == "interrupted":  # Ctrl-C: stop the grid, not just this cell
            break
    return outcomes


def cell_command(run_dir: Path, threads: int | None) -> list[str]:
    cmd = [sys.executable, "-m", "greensed.launch", "run-cell", str(run_dir)]
    return cmd + (["--threads", str(threads)] if threads else [])


def run_parallel(plans: list[CellPlan], res: Resources, progress: Progress) -> list[CellOutcome]:
    """At most ``res.max_parallel`` cells at once, each a process logging to
    RUN_DIR/launch.log; threads per cell default to the CPUs shared out."""
    parallel = res.max_parallel or 1
    threads = res.cpus_per_run or max(1, (os.cpu_count() or 1) // parallel)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    queue = list(plans)
    running: dict[subprocess.Popen[bytes], tuple[CellPlan, float]] = {}
    outcomes: list[CellOutcome] = []
    try:
        while queue or running:
            while queue and len(running) < parallel:
                plan = queue.pop(0)
                prepare(plan, "local", log=str(plan.run_dir / CELL_LOG))
                with open(plan.run_dir / CELL_LOG, "ab") as log:
                    proc = subprocess.Popen(cell_command(plan.run_dir, threads), stdout=log,
                                            stderr=subprocess.STDOUT, env=env)
                running[proc] = (plan, time.monotonic())
                progress.started(plan, f" (pid {proc.pid}, log {CELL_LOG})")
            for proc in [p for p in running if p.poll() is not None]:
                plan, t0 = running.pop(proc)
                outcome = outcome_from_dir(plan, time.monotonic() - t0,
                                           last_log_line(plan.run_dir / CELL_LOG))
                progress.ended(outcome)
                outcomes.append(outcome)
            time.sleep(0.2)
    except KeyboardInterrupt:
        # Each trainer stops cleanly on SIGTERM (its run stays resumable).
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        for proc, (plan, t0) in running.items():
            proc.wait()
            outcomes.append(CellOutcome(plan, "interrupted", None, time.monotonic() - t0))
    return outcomes


def last_log_line(path: Path) -> str | None:
    """The last 'error:' line of a cell's log, else its last non-empty line."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines or [None])[-1]
