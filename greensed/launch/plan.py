"""What `greensed reproduce` would do with each grid cell, and with what resources."""

from __future__ import annotations

import dataclasses
import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greensed import config, runlog
from greensed.errors import ConfigError
from greensed.launch.grid import Cell, Grid
from greensed.runlog import RunDir, RunStatus


@dataclass
class CellPlan:
    cell: Cell
    run_dir: Path
    # "skip" (finished), "resume" (a run log without a finished summary), "start".
    action: str

    @property
    def label(self) -> str:
        return f"bs{self.cell.batch_size}/seed{self.cell.seed}"


@dataclass
class Resources:
    """Per-cell resources. SLURM uses all of them; the local launcher uses
    max_parallel and cpus_per_run (threads per training)."""

    partition: str | None = None
    gpus_per_run: int = 0
    cpus_per_run: int | None = None
    time_min: int = 720
    # None: one at a time locally; as many as SLURM schedules (array limit 256).
    max_parallel: int | None = None


_SLURM_KEYS = {"partition": str, "gpus_per_run": int, "cpus_per_run": int, "time_min": int,
               "max_parallel": int}


def slurm_table(grid_path: str | Path) -> dict[str, Any]:
    """The optional ``[slurm]`` table of a grid recipe, checked strictly."""
    path = Path(grid_path)
    raw = tomllib.loads(path.read_text()).get("slurm", {})
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: [slurm] must be a table")
    for key, value in raw.items():
        typ = _SLURM_KEYS.get(key)
        if typ is None:
            raise ConfigError(f"{path} [slurm]: unknown key '{key}' "
                              f"(known: {', '.join(sorted(_SLURM_KEYS))})")
        if not isinstance(value, typ) or isinstance(value, bool):
            raise ConfigError(f"{path} [slurm]: key '{key}' = {value!r} has the wrong type "
                              f"(expected {typ.__name__})")
        if typ is int and value < (0 if key == "gpus_per_run" else 1):
            raise ConfigError(f"{path} [slurm]: key '{key}' = {value!r} is out of range")
    return raw


def resolve_resources(grid_path: str | Path, **flags: Any) -> Resources:
    """Flags (None: not given) over the grid's [slurm] table over defaults."""
    res = Resources()
    for key, value in {**slurm_table(grid_path),
                       **{k: v for k, v in flags.items() if v is not None}}.items():
        setattr(res, key, value)
    for key in ("max_parallel", "time_min"):
        if getattr(res, key) is not None and getattr(res, key) < 1:
            raise ConfigError(f"--{key.replace('_', '-')} {getattr(res, key)}: must be positive")
    if res.cpus_per_run is not None and res.cpus_per_run < 1:
        raise ConfigError(f"--cpus-per-run {res.cpus_per_run}: must be positive")
    if res.gpus_per_run < 0:
        raise ConfigError(f"--gpus-per-run {res.gpus_per_run}: must be 0 or more")
    return res


def is_finished(run_dir: Path) -> bool:
    summary = RunDir(run_dir).read_summary() if run_dir.is_dir() else None
    return summary is not None and summary.status is RunStatus.FINISHED


def has_run_log(run_dir: Path) -> bool:
    """A trainer got far enough to leave something to resume from."""
    d = RunDir(run_dir)
    return any(p.exists() for p in (d.epochs, d.config, d.last))


def action_for(run_dir: Path) -> str:
    if is_finished(run_dir):
        return "skip"
    return "resume" if has_run_log(run_dir) else "start"


def plan_grid(grid: Grid, out: str | Path, *, data: str | None = None,
              epochs: int | None = None, meter: str | None = None) -> list[CellPlan]:
    """Every cell with its resolved config (flags applied) and what to do with it."""
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs {epochs}: must be positive")
    flags = {"data": {"path": str(Path(data).expanduser().resolve())} if data else {},
             "train": {"epochs": epochs} if epochs is not None else {},
             "meter": {"spec": meter} if meter is not None else {}}
    plans = []
    for cell in grid.cells():
        cell = dataclasses.replace(cell, config=config.override(cell.config, flags, "command line"))
        run_dir = cell.run_dir(out).resolve()
        plans.append(CellPlan(cell, run_dir, action_for(run_dir)))
    return plans


def prepare(plan: CellPlan, launcher: str, *, job_id: str | None = None,
            log: str | None = None) -> None:
    """Write the cell's recipe and its launch marker before it is started or submitted."""
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    runlog.atomic_write_bytes(RunDir(plan.run_dir).cell_recipe,
                              config.to_toml(plan.cell.config).encode())
    mark(plan.run_dir, launcher=launcher, state="submitted", job_id=job_id,
         recipe=plan.cell.recipe, submitted_utc=utc_now(), error=None, log=log, replace=True)


def mark(run_dir: Path, *, replace: bool = False, **fields: Any) -> None:
    """Update ``launch.json`` (a :class:`greensed.runlog.LaunchRecord`: each field is
    checked, a state is a LaunchState)."""
    d = RunDir(run_dir)
    current = {} if replace else (d.read_object(d.launch) or {})
    runlog.LaunchRecord.from_json(fields, f"{d.launch} (update)")  # a bad value fails here
    runlog.atomic_write_json(d.launch, {**current, **fields})


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
