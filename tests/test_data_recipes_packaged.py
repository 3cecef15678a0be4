"""Recipes are package data: present after a plain `pip install .`, not only in a checkout."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

import pytest

import greensed
from greensed.cli import train as cli
from greensed.errors import ConfigError
from greensed.recipes import RECIPES_DIR, recipe_path, shipped_recipes

REPO = Path(__file__).resolve().parent.parent
PACKAGE = Path(greensed.__file__).resolve().parent


def test_every_recipe_is_matched_by_the_package_data_globs():
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["greensed.recipes"]
    names = shipped_recipes()
    assert {"quick.toml", "paper/grid.toml", "paper/bs32.toml"} <= set(names)
    unmatched = [n for n in names if not any(fnmatch.fnmatchcase(n, g) for g in globs)]
    assert unmatched == []
    # Every file but the helper module is a recipe (nothing else would be shipped).
    others = [p.name for p in RECIPES_DIR.rglob("*") if p.is_file()
              and p.suffix != ".toml" and p.name != "__init__.py" and "__pycache__" not in p.parts]
    assert others == []


def test_cli_default_recipe_lives_in_the_package_and_checkout_symlink_points_there():
    assert RECIPES_DIR == PACKAGE / "recipes"
    assert cli.DEFAULT_RECIPE == RECIPES_DIR / "quick.toml" and cli.DEFAULT_RECIPE.is_file()
    assert (REPO / "recipes").resolve() == RECIPES_DIR
    assert (REPO / "recipes/paper/bs32.toml").is_file()  # README commands still work


def test_recipe_path():
    assert recipe_path("paper/bs32.toml") == RECIPES_DIR / "paper" / "bs32.toml"
    assert recipe_path("recipes/quick.toml") == RECIPES_DIR / "quick.toml"
    with pytest.raises(ConfigError, match=r"paper/bs64\.toml: no such shipped recipe \(have: "):
        recipe_path("paper/bs64.toml")
