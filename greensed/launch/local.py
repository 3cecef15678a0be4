"""The local launcher: cells one after another in this process, or side by
side as subprocesses (``--max-parallel N``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from greensed.launch.cell import last_error_line, run_cell
from greensed.launch.outcome import CellOutcome, Progress, last_log_line, outcome_from_dir
from greensed.launch.plan import CellPlan, Resources, prepare
from greensed.runlog import RunDir


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
                log_path = RunDir(plan.run_dir).cell_log
                prepare(plan, "local", log=str(log_path))
                with open(log_path, "ab") as log:
                    proc = subprocess.Popen(cell_command(plan.run_dir, threads), stdout=log,
                                            stderr=subprocess.STDOUT, env=env)
                running[proc] = (plan, time.monotonic())
                progress.started(plan, f" (pid {proc.pid}, log {log_path.name})")
            for proc in [p for p in running if p.poll() is not None]:
                plan, t0 = running.pop(proc)
                outcome = outcome_from_dir(plan, time.monotonic() - t0,
                                           last_log_line(RunDir(plan.run_dir).cell_log))
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
