"""Grid recipes: a batch-size x seed study, one training run per cell.

A grid recipe is a TOML file with a ``[grid]`` table and an optional
``[overrides]`` table (same shape as a run recipe, applied to every cell)::

    [grid]
    name = "paper"
    base = "bs16.toml"          # optional run recipe, relative to this file
    batch_size = [4, 8, 16, 32]
    seed = [1, 2, 3]
    # or, instead of base + batch_size, one run recipe per batch size:
    # recipes = ["bs4.toml", "bs8.toml", "bs16.toml", "bs32.toml"]

    [overrides]
    train = { epochs = 200 }

Each cell's config is: defaults <- run recipe <- [overrides] <- the cell's
batch size and seed. Its run directory is ``OUT/<batch>/<seed>/``.
This module reads files only; greensed.launch.plan turns the cells into plans.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greensed.config import RunConfig, load_recipe, override, read_toml
from greensed.errors import ConfigError
from greensed.runlog import RunDir

_GRID_KEYS = {"name", "description", "base", "batch_size", "seed", "recipes"}


@dataclass
class Cell:
    batch_size: int
    seed: int
    config: RunConfig
    # Name for grouping in reports: the cell recipe's [recipe] name, else its stem.
    recipe: str
    recipe_path: Path | None = None

    def run_dir(self, out: str | Path) -> Path:
        return cell_dir(out, self.batch_size, self.seed)


def cell_dir(out: str | Path, batch_size: int, seed: int) -> Path:
    """Run directory of one grid cell: ``out/<batch>/<seed>/``."""
    return Path(out) / str(batch_size) / str(seed)


@dataclass
class Grid:
    path: Path
    name: str
    seeds: list[int]
    # One (batch size, recipe path or None, recipe name) per grid column.
    columns: list[tuple[int, Path | None, str]]
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def batch_sizes(self) -> list[int]:
        return [b for b, _, _ in self.columns]

    def cells(self) -> list[Cell]:
        """Every (batch size, seed) cell, batch-major, with its resolved config."""
        cells = []
        for batch, recipe_path, recipe_name in self.columns:
            column_cfg = override(load_recipe(recipe_path) if recipe_path else RunConfig(),
                                  self.overrides, f"{self.path} [overrides]")
            for seed in self.seeds:
                cfg = override(column_cfg, {"train": {"batch_size": batch, "seed": seed}},
                               f"{self.path} [grid]")
                cells.append(Cell(batch, seed, cfg, recipe_name, recipe_path))
        return cells


def load_grid(path: str | Path) -> Grid:
    """Read a grid recipe strictly: unknown keys, wrong types and colliding
    cells are a ConfigError naming the file and key. Also loads every run
    recipe it names, so a broken cell fails before any training starts."""
    path = Path(path)
    raw = read_toml(path, "grid recipe")

    # [slurm]: launcher resources, read by greensed.launch (docs/cluster.md).
    extra = set(raw) - {"grid", "overrides", "recipe", "slurm"}
    if extra:
        first = sorted(extra)[0]
        what = f"section [{first}]" if isinstance(raw[first], dict) else f"key '{first}'"
        raise ConfigError(f"{path}: unknown {what} (a grid recipe has [grid] and [overrides])")
    grid = raw.get("grid")
    if not isinstance(grid, dict):
        raise ConfigError(f"{path}: missing [grid] table")
    unknown = set(grid) - _GRID_KEYS
    if unknown:
        raise ConfigError(f"{path} [grid]: unknown key '{sorted(unknown)[0]}' "
                          f"(known: {', '.join(sorted(_GRID_KEYS))})")

    name = _get(grid, "name", str, path, default=path.stem)
    description = _get(grid, "description", str, path, default="")
    seeds = _int_list(grid, "seed", path, required=True)
    overrides = raw.get("overrides", {})
    if not isinstance(overrides, dict):
        raise ConfigError(f"{path}: [overrides] must be a table")
    for section, key in (("train", "batch_size"), ("train", "seed")):
        if isinstance(overrides.get(section), dict) and key in overrides[section]:
            raise ConfigError(f"{path} [overrides] [{section}]: key '{key}' is set by the "
                              f"[grid] '{key}' axis, not by overrides")

    columns: list[tuple[int, Path | None, str]] = []
    if "recipes" in grid:
        if "base" in grid or "batch_size" in grid:
            raise ConfigError(f"{path} [grid]: 'recipes' excludes 'base' and 'batch_size' "
                              "(each recipe sets its own train.batch_size)")
        recipes = grid["recipes"]
        if not (isinstance(recipes, list) and recipes and all(isinstance(r, str) for r in recipes)):
            raise ConfigError(f"{path} [grid]: key 'recipes' must be a non-empty list of paths")
        for rel in recipes:
            rpath = path.parent / rel
            cfg = load_recipe(rpath)
            columns.append((cfg.train.batch_size, rpath, _recipe_name(rpath)))
    else:
        batches = _int_list(grid, "batch_size", path, required=True)
        base = _get(grid, "base", str, path, default=None)
        bpath = path.parent / base if base else None
        if bpath is not None:
            load_recipe(bpath)
        rname = _recipe_name(bpath) if bpath else name
        columns = [(b, bpath, rname) for b in batches]

    batches = [b for b, _, _ in columns]
    dup = sorted({b for b in batches if batches.count(b) > 1})
    if dup:
        raise ConfigError(f"{path} [grid]: batch size {dup[0]} appears twice "
                          "(cells would share a run directory)")
    g = Grid(path, name, seeds, columns, overrides, description)
    g.cells()  # resolve every cell now: bad overrides fail at load, naming the file
    return g


def pending_cells(grid: Grid, out: str | Path) -> list[Cell]:
    """Cells whose run directory has no finished run (summary status 'finished')."""
    todo = []
    for cell in grid.cells():
        d = cell.run_dir(out)
        summary = RunDir(d).read_summary() if d.is_dir() else None
        if not (summary and summary.finished):
            todo.append(cell)
    return todo


def _recipe_name(rpath: Path) -> str:
    try:
        meta = tomllib.loads(rpath.read_text()).get("recipe", {})
    except (OSError, tomllib.TOMLDecodeError):
        meta = {}
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) and name else rpath.stem


def _get(table: dict[str, Any], key: str, typ: type, path: Path, default: Any) -> Any:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, typ):
        raise ConfigError(f"{path} [grid]: key '{key}' = {value!r} has the wrong type "
                          f"(expected {typ.__name__})")
    return value


def _int_list(table: dict[str, Any], key: str, path: Path, required: bool) -> list[int]:
    if key not in table:
        if required:
            raise ConfigError(f"{path} [grid]: missing key '{key}' (a list of integers)")
        return []
    value = table[key]
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not (isinstance(value, list) and value
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise ConfigError(f"{path} [grid]: key '{key}' = {value!r} must be a non-empty "
                          "list of integers")
    if key == "batch_size" and any(v <= 0 for v in value):
        raise ConfigError(f"{path} [grid]: key 'batch_size' = {value!r} must be positive")
    if len(set(value)) != len(value):
        raise ConfigError(f"{path} [grid]: key '{key}' = {value!r} has duplicates")
    return value
