"""One grid cell, started or resumed from what its run directory holds.

The same entry point serves every launcher: in-process (local, sequential),
a subprocess (``python -m greensed.launch run-cell RUN_DIR``, local parallel)
and a SLURM job (greensed.launch.slurm). It decides start/resume/skip when
the cell actually runs, not when it was submitted, so a job that SLURM or
submitit requeues resumes from the last checkpoint.
"""

from __future__ import annotations

import os
import socket
import traceback
from collections.abc import Callable
from pathlib import Path

from greensed import config
from greensed.errors import GreensedError
from greensed.launch.plan import action_for, mark, utc_now
from greensed.runlog import LaunchRecord, RunDir, RunStatus, Summary


def last_error_line(exc: BaseException) -> str:
    if isinstance(exc, GreensedError):
        return str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    lines = traceback.format_exception_only(type(exc), exc)
    return lines[-1].strip() if lines else type(exc).__name__


def run_cell(run_dir: str | Path, *, threads: int | None = None,
             report: Callable[[str], None] = print) -> Summary | None:
    """Train the cell in ``run_dir`` (its config is ``cell.toml`` there) and
    return its summary. Errors are recorded in ``launch.json`` and re-raised."""
    from greensed.train.loop import train  # heavy (torch): only where a cell runs

    run_dir = Path(run_dir)
    d = RunDir(run_dir)
    action = action_for(run_dir)
    if action == "skip":
        return d.read_summary()
    launch = d.read_launch() or LaunchRecord()
    mark(run_dir, state="started", started_utc=utc_now(), host=socket.gethostname(),
         pid=os.getpid(), action=action, error=None)
    try:
        recipe = d.cell_recipe
        if not recipe.exists():
            raise GreensedError(f"{recipe}: missing (the launcher writes it before a cell starts)")
        cfg = config.from_toml_text(recipe.read_text(), str(recipe))
        import torch

        # Intra-op threads beyond the CPUs a cell owns make torch spin and crawl
        # (10x slower seen with 2 threads on 2 shared cores).
        saved_threads = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        try:
            result = train(cfg, run_dir, resume=action == "resume", report=report,
                           recipe_name=launch.recipe or "")
        finally:
            torch.set_num_threads(saved_threads)
    except (KeyboardInterrupt, SystemExit):
        # Ctrl-C before training started, or submitit exiting after a requeue.
        mark(run_dir, state="ended", ended_utc=utc_now(), status=RunStatus.INTERRUPTED.value)
        raise
    except BaseException as exc:
        mark(run_dir, state="failed", ended_utc=utc_now(), error=last_error_line(exc))
        raise
    summary = result.summary
    if summary.status is RunStatus.FAILED:
        mark(run_dir, state="failed", ended_utc=utc_now(), error=summary.error)
    else:
        mark(run_dir, state="ended", ended_utc=utc_now(), status=summary.status.value)
    return summary
