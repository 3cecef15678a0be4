"""`greensed reproduce`: run every cell of a grid recipe, skipping finished
cells and resuming unfinished ones, locally or through SLURM."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from greensed.errors import ConfigError
from greensed.launch.plan import CellPlan, Resources, plan_grid
from greensed.study.grid import load_grid

Reporter = Callable[[str], None]
LAUNCHERS = ("local", "slurm")


@dataclass
class CellOutcome:
    plan: CellPlan
    # finished | skipped | failed | interrupted | diverged | submitted (SLURM, not waited for)
    state: str
    error: str | None = None
    duration_s: float | None = None


@dataclass
class ReproduceResult:
    out: Path
    plans: list[CellPlan]
    outcomes: list[CellOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[CellOutcome]:
        return [o for o in self.outcomes if o.state in ("failed", "diverged")]

    @property
    def interrupted(self) -> bool:
        return any(o.state == "interrupted" for o in self.outcomes)


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
        return f" | ETA {fmt_s(left_s)}"

    def started(self, plan: CellPlan, how: str = "") -> None:
        verb = "resuming" if plan.action == "resume" else "starting"
        self.report(f"[{self.done}/{self.total} done] {verb} {plan.label} -> {plan.run_dir}"
                    f"{how}{self.eta()}")

    def ended(self, outcome: CellOutcome) -> None:
        self.done += 1
        if outcome.state == "finished" and outcome.duration_s is not None:
            self.durations.append(outcome.duration_s)
        took = f" in {fmt_s(outcome.duration_s)}" if outcome.duration_s is not None else ""
        why = f": {outcome.error}" if outcome.error else ""
        self.report(f"[{self.done}/{self.total} done] {outcome.plan.label} {outcome.state}"
                    f"{took}{why}{self.eta()}")


def fmt_s(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else (
        f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s} s")


def reproduce(grid_path: str | Path, *, out: str | Path | None = None, data: str | None = None,
              epochs: int | None = None, meter: str | None = None, launcher: str = "local",
              resources: Resources | None = None, dry_run: bool = False, wait: bool = True,
              report: Reporter = print) -> ReproduceResult:
    """Run (or, with ``dry_run``, only plan) every cell of a grid recipe into
    ``out/<batch>/<seed>/`` (default ``runs/<grid name>``)."""
    if launcher not in LAUNCHERS:
        raise ConfigError(f"--launcher {launcher!r}: choose from {', '.join(LAUNCHERS)}")
    grid = load_grid(grid_path)
    res = resources or Resources()
    out_dir = Path(out) if out is not None else Path("runs") / grid.name
    plans = plan_grid(grid, out_dir, data=data, epochs=epochs, meter=meter)
    result = ReproduceResult(out_dir, plans)
    todo = [p for p in plans if p.action != "skip"]
    report(f"grid {grid.name}: {len(plans)} cells -> {out_dir} | {len(plans) - len(todo)} "
           f"finished, {sum(p.action == 'resume' for p in todo)} to resume, "
           f"{sum(p.action == 'start' for p in todo)} to start | launcher {launcher}"
           + (f", {res.max_parallel} at a time" if res.max_parallel else ""))
    if dry_run:
        for p in plans:
            report(f"  {p.label:<14} {p.action:<6} {p.run_dir}")
        return result
    result.outcomes = [CellOutcome(p, "skipped") for p in plans if p.action == "skip"]
    if not todo:
        return result
    parallel = res.max_parallel or (len(todo) if launcher == "slurm" else 1)
    progress = Progress(len(plans), len(plans) - len(todo), parallel, report)
    if launcher == "slurm":
        from greensed.launch.slurm import run_slurm

        result.outcomes += run_slurm(grid.name, todo, out_dir, res, progress, wait=wait)
    elif parallel > 1:
        from greensed.launch.local import run_parallel

        result.outcomes += run_parallel(todo, res, progress)
    else:
        from greensed.launch.local import run_sequential

        result.outcomes += run_sequential(todo, res, progress)
    return result
