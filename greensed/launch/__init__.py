"""Launching a grid of trainings: `greensed reproduce` (local or SLURM).

Layering: ``reproduce`` -> {``local``, ``slurm``} -> {``outcome``, ``plan``,
``cell``} -> ``grid``; ``cell`` starts trainings (greensed.train). The package
reads run logs through greensed.runlog; the CLI wires it; nothing here imports
the CLI or greensed.study.
"""

from greensed.launch.cell import run_cell
from greensed.launch.outcome import CellOutcome
from greensed.launch.plan import CellPlan, Resources, plan_grid, slurm_table
from greensed.launch.reproduce import ReproduceResult, reproduce

__all__ = ["CellOutcome", "CellPlan", "ReproduceResult", "Resources", "plan_grid",
           "reproduce", "run_cell", "slurm_table"]
