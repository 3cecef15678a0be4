"""Each stopping policy's parameters, declared once: type, range and default on the
field. Recipes set them in ``[stop.<policy>]`` tables (``StopConfig``, the
recipe's ``[stop]`` section), ``greensed train`` and ``greensed replay`` by flags
or ``--policy NAME:KEY=VALUE``, and the policies inherit them (docs/policies.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from greensed.fields import (
    Mode,
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

    metric: str = DEFAULT_METRIC
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
class StopConfig(Watched):
    # Policies besides the max-epochs cap: "plateau", "budget", "target", "marginal".
    policies: tuple[str, ...] = ()
    combine: Literal["any", "all"] = "any"
    # Each policy's own parameters, in [stop.<policy>] tables.
    plateau: PlateauParams = PlateauParams()
    budget: BudgetParams = BudgetParams()
    target: TargetParams = TargetParams()
    marginal: MarginalParams = MarginalParams()
