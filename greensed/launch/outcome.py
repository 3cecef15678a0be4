"""What a grid cell came to, and the launcher's progress line; shared by the
local and SLURM launchers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from greensed.launch.plan import CellPlan
from greensed.runlog import LaunchRecord, LaunchState, RunDir, RunStatus
from greensed.units import fmt_clock

Reporter = Callable[[str], None]


@dataclass
class CellOutcome:
    plan: CellPlan
    # finished | skipped | failed | interrupted | diverged | submitted (SLURM, not waited for)
    state: str
    error: str | None = None
    duration_s: float | None = None


class Progress:
    """Cells done/total, the cell that just started or ended, and an ETA from
    the cells finished in this session (mean duration x cells left / parallel)."""

    def __init__(self, total: int, done: int, parallel: int, report: Reporter) -> None:
        self.total, self.done, self.parallel, self.report = total, done, parallel, report
        self.durations: list[float] = []
        self.t0 = time.monotonic()

    def eta(self) -> str:
        if not self.durations or self.done >= self.total:
            return ""
        left_s = (sum(self.durations) / len(self.durations)
                  * math.ceil((self.total - self.done) / self.parallel))
        return f" | ETA {fmt_clock(left_s)}"

    def started(self, plan: CellPlan, how: str = "") -> None:
        verb = "resuming" if plan.action == "resume" else "starting"
        self.report(f"[{self.done}/{self.total} done] {verb} {plan.label} -> {plan.run_dir}"
                    f"{how}{self.eta()}")

    def ended(self, outcome: CellOutcome) -> None:
        self.done += 1
        if outcome.state == "finished" and outcome.duration_s is not None:
            self.durations.append(outcome.duration_s)
        took = f" in {fmt_clock(outcome.duration_s)}" if outcome.duration_s is not None else ""
        why = f": {outcome.error}" if outcome.error else ""
        self.report(f"[{self.done}/{self.total} done] {outcome.plan.label} {outcome.state}"
                    f"{took}{why}{self.eta()}")


def outcome_from_dir(plan: CellPlan, duration_s: float, fallback_error: str | None = None
                     ) -> CellOutcome:
    """A cell's outcome from what it left: summary.json, else launch.json's error."""
    d = RunDir(plan.run_dir)
    summary = d.read_summary()
    launch = d.read_launch() or LaunchRecord()
    if launch.state is LaunchState.FAILED:
        return CellOutcome(plan, "failed", launch.error or fallback_error, duration_s)
    if launch.state is LaunchState.ENDED and summary is not None:
        err = summary.error if summary.status is not RunStatus.FINISHED else None
        return CellOutcome(plan, summary.status.value, err, duration_s)
    return CellOutcome(plan, "failed", fallback_error or "ended without a summary", duration_s)


def last_log_line(path: Path) -> str | None:
    """The last 'error:' line of a cell's log, else its last non-empty line."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return None
    errors = [ln for ln in lines if ln.startswith("error:")]
    return (errors or lines or [None])[-1]
