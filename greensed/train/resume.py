"""What a resume continues: the run's own config and the recipe name it started
with. The same rules for ``greensed train --resume`` and for a launcher that
resumes a cell (the ledger's rules for the epochs: greensed.runlog.ledger)."""

from __future__ import annotations

from pathlib import Path

from greensed import config
from greensed.errors import GreensedError
from greensed.runlog import RunDir


def resume_target(run_dir: Path, out: Path | None = None) -> RunDir:
    """The run directory to resume; a resumed run stays where it is."""
    if out is not None and out.resolve() != run_dir.resolve():
        raise GreensedError(f"--resume {run_dir} --out {out}: a resumed run stays in its "
                            "directory; give one of them")
    d = RunDir(run_dir)
    if not d.config.exists():
        raise GreensedError(f"{run_dir}: nothing to resume (no {d.config.name})")
    return d


def resumed_config(d: RunDir, recipe: Path | None = None) -> config.RunConfig:
    """The run's config.toml, with ``recipe``'s keys over it when one is given."""
    cfg = config.from_toml_text(d.read_config_text() or "", str(d.config))
    return config.load_recipe(recipe, cfg) if recipe is not None else cfg


def resumed_name(d: RunDir) -> str:
    """The recipe name the run started with: its summary's, else the launcher's, else
    the directory's name."""
    before = d.read_summary()
    if before is not None and before.recipe:
        return before.recipe
    launch = d.read_launch()
    return (launch.recipe if launch is not None else None) or d.root.name
