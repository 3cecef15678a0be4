"""The stopping policies. Each ``decide`` re-derives everything from the history.

Every policy is a frozen dataclass whose parameters (declared once, in
greensed.stopping.params) are checked when it is built: an invalid policy
cannot exist. Semantics, edge cases and examples: ``docs/policies.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from greensed.errors import ConfigError
from greensed.fields import PositiveInt, check_fields
from greensed.numbers import count
from greensed.stopping.base import (
    CONTINUE,
    Decision,
    History,
    Policy,
    Single,
    Watching,
    best_record,
    better,
    fmt,
)
from greensed.stopping.params import (
    BudgetParams,
    MarginalParams,
    PlateauParams,
    TargetParams,
    Watched,
)

# Budget comparisons forgive float rounding of summed kWh (0.1 + 0.2 != 0.3).
_REL_TOL = 1e-9


def _best(history: History, key: str, mode: str) -> float | None:
    """Best finite metric value; None when there is none."""
    rec = best_record(history, key, mode)
    return rec.metric(key) if rec is not None else None


def _required(policy: str, value: object, what: str) -> None:
    if value is None:
        raise ConfigError(f"stop policy '{policy}' needs {what}")


@dataclass(frozen=True)
class Plateau(Watched, PlateauParams, Watching):
    """Stop after ``patience`` epochs in a row without improvement (Lightning/Keras).

    Improvement means ``value > best + min_delta`` (mode max) or
    ``value < best - min_delta`` (mode min), beyond float rounding; ties are not
    improvements. A missing or non-finite value counts as an epoch without
    improvement (Lightning would stop at once). Epochs ``<= warmup_epochs`` are
    ignored entirely, as Keras' ``start_from_epoch``: they neither set the best
    value nor count.
    """

    name: ClassVar[str] = "plateau"
    requires_energy: ClassVar[bool] = False

    def __post_init__(self) -> None:
        check_fields(self, "stop policy 'plateau'")

    def decide(self, history: History) -> Decision:
        best: float | None = None  # the reference: the last value that beat min_delta
        best_epoch: int | None = None
        top: float | None = None  # the highest (mode max) value, improvement or not
        top_epoch: int | None = None
        wait = 0
        for rec in history:
            if rec.epoch <= self.warmup_epochs:
                continue
            value = rec.metric(self.metric)
            if value is not None and better(value, top, self.mode):
                top, top_epoch = value, rec.epoch
            if value is not None and better(value, best, self.mode, self.min_delta):
                best, best_epoch, wait = value, rec.epoch, 0
            else:
                wait += 1
        if wait < self.patience:
            return CONTINUE
        by = f" by more than {self.min_delta:g}" if self.min_delta > 0 else ""
        where = f" at epoch {best_epoch}" if best_epoch is not None else ""
        # With min_delta > 0 a later, smaller gain is not an improvement: name the
        # highest value too, so the reason agrees with the summary's best epoch.
        also = (f"; highest {fmt(top)} at epoch {top_epoch}"
                if top_epoch is not None and top_epoch != best_epoch else "")
        return Decision(
            True,
            self.name,
            f"plateau: {self.metric} did not improve{by} for {count(wait, 'epoch')} "
            f"(best {fmt(best)}{where}{also})",
        )


@dataclass(frozen=True)
class Budget(BudgetParams, Single):
    """Stop before an epoch whose predicted energy would overrun ``kwh``.

    Predicted next-epoch energy = the largest ``energy_kwh`` of the last
    ``lookback`` epochs (conservative: epochs with validation or a slower node
    cost more). Stop when ``cumulative_kwh + predicted > kwh`` or the budget is
    spent. Before the first epoch nothing is known, so the first epoch always
    runs (a budget smaller than one epoch is overrun by that epoch).
    """

    name: ClassVar[str] = "budget"
    requires_energy: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _required(self.name, self.kwh, "a budget: --budget-kwh X or [stop.budget] kwh")
        check_fields(self, "stop policy 'budget'")

    def decide(self, history: History) -> Decision:
        if not history:
            return CONTINUE
        energies = [r.metric("energy_kwh") for r in history]
        missing = [history[i].epoch for i, e in enumerate(energies) if e is None]
        if missing:
            return Decision(
                True,
                self.name,
                f"budget: energy unavailable (epoch {missing[0]} has no energy_kwh), "
                "cannot enforce",
            )
        known = [e for e in energies if e is not None]
        # cumulative_kwh also holds energy of partial epochs lost to crashes.
        spent = history[-1].metric("cumulative_kwh")
        if spent is None:
            spent = math.fsum(known)
        predicted = max(known[-self.lookback:])
        tol = _REL_TOL * self.kwh
        if spent + predicted <= self.kwh + tol and spent < self.kwh - tol:
            return CONTINUE
        if spent >= self.kwh - tol:
            why = f"{fmt(spent)} of {fmt(self.kwh)} kWh spent"
        else:
            why = (
                f"next epoch predicted {fmt(predicted)} kWh (max of last "
                f"{min(self.lookback, len(known))}) would exceed {fmt(self.kwh)} kWh "
                f"({fmt(spent)} kWh spent)"
            )
        return Decision(True, self.name, f"budget: {why}")


@dataclass(frozen=True)
class Target(Watched, TargetParams, Watching):
    """Stop as soon as the metric reaches ``value`` (>= for max, <= for min)."""

    name: ClassVar[str] = "target"
    requires_energy: ClassVar[bool] = False

    def __post_init__(self) -> None:
        _required(self.name, self.value, "a value: --target-f1 X or [stop.target] value")
        check_fields(self, "stop policy 'target'")
        v = float(self.value)  # type: ignore[arg-type]
        if self.metric.endswith("f1") and not 0.0 <= v <= 1.0:
            hint = f"; for {v:g} % use {v / 100:g}" if v <= 100 else ""
            raise ConfigError(f"stop policy 'target': {self.metric} is a fraction in [0, 1], "
                              f"got target {v:g}{hint}")

    def decide(self, history: History) -> Decision:
        for rec in history:
            value = rec.metric(self.metric)
            if value is None:
                continue
            if (value >= self.value) if self.mode == "max" else (value <= self.value):
                op = ">=" if self.mode == "max" else "<="
                return Decision(
                    True,
                    self.name,
                    f"target: {self.metric} reached {fmt(value)} {op} {fmt(self.value)} "
                    f"at epoch {rec.epoch}",
                )
        return CONTINUE


@dataclass(frozen=True)
class Marginal(Watched, MarginalParams, Watching):
    """Stop when the metric gain per kWh over the last ``window`` epochs is too small.

    gain = best over the whole history - best up to ``window`` epochs ago (sign
    flipped for mode min); energy = sum of ``energy_kwh`` over the last
    ``window`` epochs. Stop when gain / energy < ``min_f1_per_kwh``. Units:
    metric units per kWh; F1 as a fraction, so 0.1 means 0.1 F1 (10 points)
    per kWh. Decides only once ``window + 1`` epochs exist and after warm-up.
    """

    name: ClassVar[str] = "marginal"
    requires_energy: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _required(self.name, self.min_f1_per_kwh,
                  "a rate: --min-f1-per-kwh X or [stop.marginal] min_f1_per_kwh")
        check_fields(self, "stop policy 'marginal'")

    def decide(self, history: History) -> Decision:
        n = len(history)
        if n < self.window + 1 or history[n - 1].epoch <= self.warmup_epochs:
            return CONTINUE
        recent = history[n - self.window:]
        energies = [r.metric("energy_kwh") for r in recent]
        if any(e is None for e in energies):
            return Decision(
                True, self.name, "marginal: energy unavailable, cannot compute gain per kWh"
            )
        spent = math.fsum(e for e in energies if e is not None)
        before = _best(history[: n - self.window], self.metric, self.mode)
        now = _best(history, self.metric, self.mode)
        if before is None or now is None:
            return CONTINUE  # nothing finite to compare against yet
        gain = (now - before) if self.mode == "max" else (before - now)
        if spent > 0:
            rate = gain / spent
        else:
            rate = math.inf if gain > 0 else 0.0
        if rate >= self.min_f1_per_kwh:
            return CONTINUE
        return Decision(
            True,
            self.name,
            f"marginal: {self.metric} gained {fmt(gain)} over the last "
            f"{count(self.window, 'epoch')} "
            f"for {fmt(spent)} kWh ({fmt(rate)} per kWh < {fmt(self.min_f1_per_kwh)})",
        )


@dataclass(frozen=True)
class MaxEpochs(Single):
    """The fixed epoch cap (the paper trains 200 epochs); always present."""

    n: PositiveInt
    name: ClassVar[str] = "max-epochs"
    requires_energy: ClassVar[bool] = False
    # A cap, not a vote: it stops an AllOf on its own.
    is_cap: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_fields(self, "max epochs")

    def decide(self, history: History) -> Decision:
        if not history or history[-1].epoch < self.n:
            return CONTINUE
        return Decision(True, self.name, f"max-epochs: reached the {self.n}-epoch cap")


@dataclass(frozen=True)
class _Combined:
    """What any-of and all-of share: their children's energy needs and the check."""

    policies: Sequence[Policy]
    is_cap: ClassVar[bool] = False
    takes_cap: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if not self.policies:
            raise ConfigError("stop: no policies to combine")

    @property
    def watches(self) -> str | None:
        return None

    @property
    def children(self) -> Sequence[Policy]:
        return self.policies

    @property
    def requires_energy(self) -> bool:
        return any(p.requires_energy for p in self.policies)


@dataclass(frozen=True)
class AnyOf(_Combined):
    """Stop when any policy says stop. ``policy`` is the first that fired, in
    order; ``reason`` lists every one that fired."""

    name: ClassVar[str] = "any"

    def decide(self, history: History) -> Decision:
        fired = [d for d in (p.decide(history) for p in self.policies) if d.stop]
        if not fired:
            return CONTINUE
        return Decision(True, fired[0].policy, "; ".join(d.reason for d in fired))


@dataclass(frozen=True)
class AllOf(_Combined):
    """Stop when every policy says stop; ``policy`` joins their names with '+'.

    A cap (MaxEpochs) is not a vote: it stops the run on its own.
    """

    name: ClassVar[str] = "all"

    def decide(self, history: History) -> Decision:
        votes = [(p, p.decide(history)) for p in self.policies]
        for p, d in votes:
            if p.is_cap and d.stop:
                return d
        voters = [d for p, d in votes if not p.is_cap]
        if not voters or not all(d.stop for d in voters):
            return CONTINUE
        return Decision(
            True, "+".join(d.policy for d in voters), "; ".join(d.reason for d in voters)
        )

