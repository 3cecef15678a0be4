"""Grid recipes: cells, overrides, run-dir layout and strict errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from greensed.config import load_recipe
from greensed.errors import ConfigError
from greensed.launch.grid import cell_dir, load_grid, pending_cells

REPO = Path(__file__).resolve().parents[1]

BASE = """
[recipe]
name = "my-base"
[train]
epochs = 7
lr = 0.002
batch_size = 99
[stop]
policies = ["plateau"]
"""


def _grid(tmp_path: Path, text: str, base: str = BASE) -> Path:
    (tmp_path / "base.toml").write_text(base)
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def test_cells_from_base_axes_and_overrides(tmp_path: Path) -> None:
    g = load_grid(_grid(tmp_path, """
[grid]
name = "g"
base = "base.toml"
batch_size = [8, 4]
seed = [1, 2, 3]
[overrides]
train = { epochs = 3 }
stop = { policies = [] }
"""))
    cells = g.cells()
    assert [(c.batch_size, c.seed) for c in cells] == [
        (8, 1), (8, 2), (8, 3), (4, 1), (4, 2), (4, 3)]
    for c in cells:
        assert (c.config.train.batch_size, c.config.train.seed) == (c.batch_size, c.seed)
        assert c.config.train.epochs == 3  # override beats the base
        assert c.config.train.lr == 0.002  # from the base
        assert c.config.stop.policies == ()
        assert c.recipe == "my-base"
    assert cells[4].run_dir(tmp_path / "out") == tmp_path / "out" / "4" / "2"
    # Configs are frozen: no cell can change another's.
    with pytest.raises(dataclasses.FrozenInstanceError):
        cells[0].config.train.lr = 1.0  # type: ignore[misc]


def test_cells_from_per_batch_recipes(tmp_path: Path) -> None:
    for b in (4, 8):
        (tmp_path / f"bs{b}.toml").write_text(f"[train]\nbatch_size = {b}\nepochs = {b}\n")
    g = load_grid(_grid(tmp_path, '[grid]\nrecipes = ["bs4.toml", "bs8.toml"]\nseed = 5\n'))
    assert [(c.batch_size, c.seed, c.config.train.epochs, c.recipe) for c in g.cells()] == [
        (4, 5, 4, "bs4"), (8, 5, 8, "bs8")]
    assert g.name == "grid" and g.batch_sizes == [4, 8]


@pytest.mark.parametrize(("text", "message"), [
    ('[grid]\nbatch_size = [4]\nseed = [1]\nseeds = [2]\n', r"\[grid\]: unknown key 'seeds'"),
    ('[grid]\nbatch_size = [4]\nseed = "1"\n', r"key 'seed' = '1' must be a non-empty list"),
    ('[grid]\nbatch_size = [4, 4]\nseed = [1]\n', r"'batch_size' = \[4, 4\] has duplicates"),
    ('[grid]\nbatch_size = [0]\nseed = [1]\n', r"'batch_size' = \[0\] must be positive"),
    ('[grid]\nbatch_size = [4]\n', r"missing key 'seed'"),
    ('[grid]\nseed = [1]\n', r"missing key 'batch_size'"),
    ('[grid]\nbase = 3\nbatch_size = [4]\nseed = [1]\n', r"key 'base' = 3 has the wrong type"),
    ('[grid]\nbatch_size = [4]\nseed = [1]\n[overrides]\ntrain = { epoks = 3 }\n',
     r"\[overrides\] \[train\]: unknown key 'epoks' \(did you mean 'epochs'\?\)"),
    ('[grid]\nbatch_size = [4]\nseed = [1]\n[overrides]\ntrain = { epochs = "3" }\n',
     r"key 'epochs' = '3' has the wrong type"),
    ('[grid]\nbatch_size = [4]\nseed = [1]\n[overrides]\ntrain = { seed = 3 }\n',
     r"key 'seed' is set by the \[grid\] 'seed' axis"),
    ('[grid]\nbatch_size = [4]\nseed = [1]\n[train]\nepochs = 3\n', r"unknown section \[train\]"),
    ('[grid]\nbase = "base.toml"\nrecipes = ["base.toml"]\nseed = [1]\n',
     r"'recipes' excludes 'base'"),
    ('[grid]\nrecipes = ["base.toml", "base.toml"]\nseed = [1]\n', r"batch size 99 appears twice"),
    ('[grid]\nbase = "nope.toml"\nbatch_size = [4]\nseed = [1]\n', r"nope.toml: recipe not found"),
    ('[grid\n', r"invalid TOML"),
    ('name = "x"\n[grid]\nseed = [1]\nbatch_size = [4]\n', r"unknown key 'name'"),
    ('[recipe]\nname = "x"\n', r"missing \[grid\] table"),
])
def test_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = _grid(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as err:
        load_grid(path)
    assert "grid.toml" in str(err.value) or "nope.toml" in str(err.value)


def test_error_in_base_recipe_names_that_file(tmp_path: Path) -> None:
    path = _grid(tmp_path, '[grid]\nbase = "base.toml"\nbatch_size = [4]\nseed = [1]\n',
                 base="[train]\nepochz = 1\n")
    with pytest.raises(ConfigError, match=r"base.toml \[train\]: unknown key 'epochz'"):
        load_grid(path)


def test_pending_cells_skips_finished_runs(tmp_path: Path) -> None:
    g = load_grid(_grid(tmp_path, '[grid]\nbatch_size = [4, 8]\nseed = [1]\n'))
    out = tmp_path / "out"
    done = cell_dir(out, 4, 1)
    done.mkdir(parents=True)
    (done / "summary.json").write_text(json.dumps({"schema": 1, "status": "finished"}))
    interrupted = cell_dir(out, 8, 1)
    interrupted.mkdir(parents=True)
    (interrupted / "summary.json").write_text(json.dumps({"schema": 1, "status": "interrupted"}))
    assert [(c.batch_size, c.seed) for c in pending_cells(g, out)] == [(8, 1)]


def test_paper_recipes_match_the_paper() -> None:
    g = load_grid(REPO / "recipes" / "paper" / "grid.toml")
    cells = g.cells()
    assert len(cells) == 12
    assert sorted({c.batch_size for c in cells}) == [4, 8, 16, 32]
    assert sorted({c.seed for c in cells}) == [1, 2, 3]
    for c in cells:
        t, e = c.config.train, c.config.eval
        assert (t.epochs, t.lr, t.rampup_epochs, t.mixup_p, t.mixup_alpha) == (
            200, 1e-3, 50.0, 0.5, 0.2)
        assert (e.dtc, e.gtc, e.threshold, e.median_window) == (0.7, 0.7, 0.5, 7)
        assert c.config.stop.policies == () and t.max_steps_per_epoch == 0
        assert c.recipe == f"paper-bs{c.batch_size}"
    for b in (4, 8, 16, 32):
        assert load_recipe(REPO / "recipes" / "paper" / f"bs{b}.toml").train.batch_size == b


def test_toy_grid_is_cpu_sized() -> None:
    cells = load_grid(REPO / "recipes" / "toy-grid.toml").cells()
    assert 4 <= len(cells) <= 8
    for c in cells:
        assert c.config.data.path is None  # embedded synthetic data
        assert c.config.train.epochs <= 4 and 0 < c.config.train.max_steps_per_epoch <= 10
        assert c.config.stop.policies == ()
