"""One line per run directory: where each run stands (reads run logs only).

Besides the run log, a grid cell launched by `greensed reproduce` holds
``launch.json`` (written by the launcher, see docs/cluster.md): it makes a
cell visible before its run log exists (queued) and keeps the error of a cell
that failed before the trainer wrote anything.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from greensed import runlog
from greensed.runlog import RunDir, RunStatus
from greensed.study.runs import DEFAULT_METRIC, read_config, run_total_kwh
from greensed.study.tables import Table, decimals_for


def lock_held(run_dir: Path) -> bool | None:
    """Whether a trainer holds ``run_dir/lock`` now: True/False when the lock
    line ("pid N on HOST") names this host, None when that cannot be told (no
    such line, or another host). The file outlives its holder, so its
    existence says nothing; the kernel's flock table (/proc/locks) does."""
    path = RunDir(run_dir).lock
    try:
        words = path.read_text().split()
        inode = path.stat().st_ino
    except OSError:
        return None
    if len(words) != 4 or words[0] != "pid" or words[2] != "on" or not words[1].isdigit():
        return None
    if words[3] != socket.gethostname():
        return None
    try:
        locks = Path("/proc/locks").read_text().splitlines()
    except OSError:  # not Linux: fall back to whether the named process lives
        try:
            os.kill(int(words[1]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF": device:inode in field 6.
    return any(len(f) > 5 and f[1] == "FLOCK" and f[5].rsplit(":", 1)[-1] == str(inode)
               for f in (line.split() for line in locks))


def run_state(run: runlog.RunLog, launch: dict[str, Any] | None = None) -> str:
    """`running` (a live trainer holds the lock), `queued` (submitted by the
    launcher, not started yet), `failed` (summary or launcher error),
    `finished`, `interrupted`, `diverged` (from summary.json), else
    `incomplete` (a trainer died without a summary)."""
    alive = lock_held(run.run_dir)
    status = run.status
    if alive:
        return "running"
    launch = launch or {}
    # A resubmitted cell keeps its old summary until the new attempt ends.
    if launch.get("state") == "submitted" and status is not RunStatus.FINISHED:
        return "queued"
    if launch.get("state") == "failed" and status is not RunStatus.FINISHED:
        return "failed"
    if status:
        return status.value
    if alive is None and run.dir.lock.exists():
        return "running"  # a lock we cannot check (another host): trust it
    return "incomplete"


def find_cells(paths: Sequence[str | Path]) -> list[Path]:
    """Run directories (with a run log) and launched grid cells (with
    launch.json) at or below ``paths``, sorted."""
    launched = {p for p in map(Path, paths) if RunDir(p).launch.exists()}
    found = set(runlog.find_runs([p for p in paths if Path(p) not in launched])) | launched
    name = RunDir(Path(".")).launch.name
    for p in map(Path, paths):
        if p not in launched and p.is_dir():
            found.update(f.parent for f in p.rglob(name))
    return sorted(found)


def status_table(run_dirs: Sequence[str | Path], metric: str = DEFAULT_METRIC) -> Table:
    t = Table("Runs", ["Run", "State", "Epochs", "Best F1", "Last F1", "kWh", "Stop reason"])
    for path in find_cells(run_dirs):
        run = runlog.load_run(path, need_epochs=False)
        launch = run.dir.read_object(run.dir.launch) or {}
        state = run_state(run, launch)
        planned = read_config(run).get("train", {}).get("epochs")
        values = [(r.epoch, r.metric(metric)) for r in run.epochs]
        scored = [(v, e) for e, v in values if v is not None]
        best = max(scored, key=lambda ve: ve[0], default=None)
        last = values[-1][1] if values else None
        kwh = run_total_kwh(run) if run.epochs else None
        summary = run.summary
        error = summary.error if summary else None
        stop_reason = summary.stop_reason if summary else None
        if state == "failed":
            reason = launch.get("error") or error or stop_reason
        elif state == "queued":
            reason = f"job {launch['job_id']}" if launch.get("job_id") else "waiting"
        elif state == "running":
            reason = f"epoch {len(run.epochs) + 1}"
        else:
            reason = stop_reason or error
        t.add([str(path), state,
               f"{len(run.epochs)}/{planned}" if planned else str(len(run.epochs)),
               f"{best[0] * 100:.1f}% @{best[1]}" if best else "-",
               f"{last * 100:.1f}%" if last is not None else "-",
               f"{kwh:.{decimals_for(kwh, 2)}f}" if kwh is not None else "-",
               str(reason or "-")])
    return t
