"""Options declared once and shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

# Stopping options, declared once: `greensed train` and `greensed replay` share them.
StopOpt = Annotated[list[str] | None, typer.Option(
    "--stop", help="Stopping policy: plateau, budget, target, marginal, max-epochs "
                   "(repeatable or comma-separated)")]
PatienceOpt = Annotated[int | None, typer.Option("--patience", help="plateau: epochs without improvement")]
MinDeltaOpt = Annotated[float | None, typer.Option("--min-delta", help="plateau: minimum improvement")]
WarmupOpt = Annotated[int | None, typer.Option("--warmup", help="plateau/marginal: epochs the policies ignore (not the lr ramp-up)")]
BudgetOpt = Annotated[float | None, typer.Option("--budget-kwh", help="budget: kWh ceiling")]
TargetOpt = Annotated[float | None, typer.Option("--target-f1", help="target: stop when the metric reaches this (a fraction)")]
RateOpt = Annotated[float | None, typer.Option("--min-f1-per-kwh", help="marginal: minimum F1 gain per kWh")]
WindowOpt = Annotated[int | None, typer.Option("--window", help="marginal: epochs of the gain window")]
CombineOpt = Annotated[str | None, typer.Option("--combine", help="any | all")]
ModeOpt = Annotated[str | None, typer.Option("--mode", help="max | min (min for a loss metric)")]


