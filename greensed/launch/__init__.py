"""Launching a grid of trainings: `greensed reproduce` (local or SLURM).

Layering: this package starts trainings (it imports greensed.train) and reads
run logs through greensed.study; the CLI wires it; nothing here imports the CLI.
"""

from greensed.launch.cell import cell_action, run_cell
from greensed.launch.plan import CellPlan, Resources, plan_grid, slurm_table
from greensed.launch.reproduce import CellOutcome, ReproduceResult, reproduce

__all__ = ["CellOutcome", "CellPlan", "ReproduceResult", "Resources", "cell_action",
           "plan_grid", "reproduce", "run_cell", "slurm_table"]
