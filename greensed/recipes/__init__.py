"""The recipes shipped with greensed.

They are package data (pyproject.toml ``[tool.setuptools.package-data]``), so they
exist after a plain ``pip install .``; the top-level ``recipes`` folder of the
source tree is a symlink to this one, so ``recipes/paper/bs32.toml`` works from a
checkout.
"""

from __future__ import annotations

from pathlib import Path

from greensed.errors import ConfigError

RECIPES_DIR = Path(__file__).resolve().parent


def shipped_recipes() -> list[str]:
    """Names of the shipped recipes relative to RECIPES_DIR ('quick.toml', 'paper/bs32.toml')."""
    return sorted(p.relative_to(RECIPES_DIR).as_posix() for p in RECIPES_DIR.rglob("*.toml"))


def recipe_path(name: str) -> Path:
    """The installed file of a shipped recipe, e.g. ``recipe_path("paper/bs32.toml")``.

    A leading ``recipes/`` is accepted, as README commands spell them.
    """
    rel = name.removeprefix("recipes/")
    path = RECIPES_DIR / rel
    if not path.is_file():
        raise ConfigError(f"{name}: no such shipped recipe (have: {', '.join(shipped_recipes())})")
    return path
