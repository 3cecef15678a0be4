"""The recipes shipped with greensed.

They are package data (pyproject.toml ``[tool.setuptools.package-data]``), so they
exist after a plain ``pip install .``; the top-level ``recipes`` folder of the
source tree is a symlink to this one, so ``recipes/paper/bs32.toml`` works from a
checkout.
"""

from __future__ import annotations

import tomllib
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


def recipe_name(path: str | Path) -> str:
    """The name a run of the recipe at ``path`` records (summary.json ``recipe``, the
    default run directory's name) and the launcher files its cells under: its
    ``[recipe] name``, else the file's stem. A name that cannot name a folder is one
    ConfigError line. (The rest of ``[recipe]`` is free-form metadata.)"""
    path = Path(path)
    try:
        meta = tomllib.loads(path.read_text(encoding="utf-8")).get("recipe", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return path.stem  # the config loader reports what is wrong with the file
    name = meta.get("name", path.stem) if isinstance(meta, dict) else path.stem
    if not isinstance(name, str) or not name.strip() or "/" in name or "\\" in name \
            or name.startswith("."):
        raise ConfigError(f"{path} [recipe]: name = {name!r} must be a folder-safe "
                          "name (not empty, no slashes), e.g. \"my-recipe\"")
    return name
