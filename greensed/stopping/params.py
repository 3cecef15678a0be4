"""Each stopping policy's parameters, declared once: type, range and default on the
field. Recipes set them in ``[stop.<policy>]`` tables (``StopConfig``, the
recipe's ``[stop]`` section), ``greensed train`` and ``greensed replay`` by flags
or ``--policy NAME:KEY=VALUE``, and the policies inherit them (docs/policies.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from greensed.fields import (
    Fraction,
    Mode,
    Name,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
)

# The metric the policies watch unless told (the paper's per-epoch metric).
DEFAULT_METRIC = "teacher_f1"


@dataclass(frozen=True)
class Watched:
    """What the policies that watch a metric share (set in ``[stop]``)."""

    metric: Name = DEFAULT_METRIC
    mode: Mode = "max"
    # Epochs the policies ignore entirely (Keras' start_from_epoch); not the lr ramp-up.
    warmup_epochs: NonNegativeInt = 0


@dataclass(frozen=True)
class PlateauParams:
    patience: PositiveInt = 10
    min_delta: NonNegativeFloat = 0.0


@dataclass(frozen=True)
class BudgetParams:
    kwh: PositiveFloat | None = None  # required when the policy is used
    # Next-epoch energy is predicted as the largest of this many last epochs.
    lookback: PositiveInt = 3


@dataclass(frozen=True)
class TargetParams:
    value: float | None = None  # required when the policy is used


@dataclass(frozen=True)
class MarginalParams:
    min_f1_per_kwh: NonNegativeFloat | None = None  # required when the policy is used
    window: PositiveInt = 5


@dataclass(frozen=True)
class ForecastParams:
    """See docs/forecast.md. A threshold of 0 turns its test off."""

    # Stop when no epoch up to the cap is predicted to gain this much metric per kWh.
    min_gain_per_kwh: NonNegativeFloat = 0.1
    # ... or when P(curve at the cap > curve now x (1 + rel_gain)) is below min_prob.
    min_prob: Fraction = 0.05
    rel_gain: NonNegativeFloat = 0.01
    # Never before this epoch (the fit needs points), nor while the fit is not meaningful.
    min_epochs: PositiveInt = 10
    # Energy per epoch ahead: median energy_kwh of this many last epochs.
    energy_window: PositiveInt = 5


@dataclass(frozen=True)
class StopConfig(Watched):
    # Policies besides the max-epochs cap: plateau, budget, target, marginal, forecast.
    policies: tuple[str, ...] = ()
    combine: Literal["any", "all"] = "any"
    # Each policy's own parameters, in [stop.<policy>] tables.
    plateau: PlateauParams = PlateauParams()
    budget: BudgetParams = BudgetParams()
    target: TargetParams = TargetParams()
    marginal: MarginalParams = MarginalParams()
    forecast: ForecastParams = ForecastParams()
