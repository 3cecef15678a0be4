"""`greensed reproduce`: run every cell of a grid recipe, skipping finished
cells and resuming unfinished ones, locally or through SLURM."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from greensed.errors import ConfigError
from greensed.launch.grid import load_grid
from greensed.launch.local import run_parallel, run_sequential
from greensed.launch.outcome import CellOutcome, Progress, Reporter
from greensed.launch.plan import CellPlan, Resources, plan_grid
from greensed.launch.slurm import run_slurm
from greensed.numbers import count

LAUNCHERS = ("local", "slurm")


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
    report(f"grid {grid.name}: {count(len(plans), 'cell')} -> {out_dir} | "
           f"{len(plans) - len(todo)} "
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
        result.outcomes += run_slurm(grid.name, todo, out_dir, res, progress, wait=wait)
    elif parallel > 1:
        result.outcomes += run_parallel(todo, res, progress)
    else:
        result.outcomes += run_sequential(todo, res, progress)
    return result
