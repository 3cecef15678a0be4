"""Tiny grid recipes for the launcher tests (local and SLURM)."""

from __future__ import annotations

import json
import time
from pathlib import Path


def write_grid(folder: Path, data: Path, *, seeds: list[int], epochs: int,
               bad_cell: bool = False, slurm: str = "") -> Path:
    """A grid of tiny cells: batch 4 on ``data`` (1 step per epoch, meter
    constant:40: no CodeCarbon start-up) and, with ``bad_cell``, a batch-8
    column whose data path does not exist."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "good.toml").write_text(f'[data]\npath = "{data}"\n[train]\nbatch_size = 4\n')
    (folder / "bad.toml").write_text('[data]\npath = "/nonexistent/desed"\n'
                                     '[train]\nbatch_size = 8\n')
    recipes = '["good.toml", "bad.toml"]' if bad_cell else '["good.toml"]'
    grid = folder / "grid.toml"
    grid.write_text(f"""[grid]
name = "tiny"
recipes = {recipes}
seed = {seeds}

[overrides]
data = {{ cache_dir = "{folder / 'cache'}" }}
train = {{ epochs = {epochs}, max_steps_per_epoch = 1, warmup_epochs = 1.0 }}
meter = {{ spec = "constant:40" }}
{slurm}""")
    return grid


def epochs_of(run_dir: Path) -> list[int]:
    path = run_dir / "epochs.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip()]


def wait_for_epochs(run_dir: Path, n: int, timeout_s: float = 120.0) -> None:
    t0 = time.monotonic()
    while len(epochs_of(run_dir)) < n:
        assert time.monotonic() - t0 < timeout_s, f"{run_dir}: no epoch {n} after {timeout_s} s"
        time.sleep(0.1)


def lock_pid(run_dir: Path) -> int:
    """The trainer's pid from its lock line 'pid N on HOST'."""
    return int((run_dir / "lock").read_text().split()[1])
