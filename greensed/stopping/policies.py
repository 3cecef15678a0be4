"""The stopping policies. Each ``decide`` re-derives everything from the history.

Semantics, edge cases and examples: ``docs/policies.md``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from greensed.errors import ConfigError
from greensed.stopping.base import (
    CONTINUE,
    Decision,
    History,
    Policy,
    best_record,
    better,
    epoch_number,
    finite_energy,
    finite_metric,
    fmt,
)

MODES = ("max", "min")
# Budget comparisons forgive float rounding of summed kWh (0.1 + 0.2 != 0.3).
_REL_TOL = 1e-9


def _check_mode(policy: str, mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"stop policy '{policy}': mode = {mode!r} must be 'max' or 'min'")


def _check_metric(policy: str, metric: str) -> None:
    if not isinstance(metric, str) or not metric.strip():
        raise ConfigError(f"stop policy '{policy}': metric = {metric!r} must name a metric")


def _check_number(policy: str, name: str, value: float, *, low: float, strict: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = value > low if strict else value >= low
    if not ok:
        rel = ">" if strict else ">="
        raise ConfigError(f"stop policy '{policy}': {name} = {value!r} must be {rel} {low:g}")


def _best(history: History, key: str, mode: str) -> float | None:
    """Best finite metric value; None when there is none."""
    rec = best_record(history, key, mode)
    return rec.metric(key) if rec is not None else None


@dataclass(frozen=True)
class Plateau:
    """Stop after ``patience`` epochs in a row without improvement (Lightning/Keras).

    Improvement means ``value > best + min_delta`` (mode max) or
    ``value < best - min_delta`` (mode min); ties are not improvements. A
    missing or non-finite value counts as an epoch without improvement (Lightning
    would stop at once). Epochs ``<= warmup_epochs`` are ignored entirely, as
    Keras' ``start_from_epoch``: they neither set the best value nor count.
    """

    metric: str = "teacher_f1"
    mode: str = "max"
    patience: int = 10
    min_delta: float = 0.0
    warmup_epochs: int = 0
    name: str = field(default="plateau", init=False)
    requires_energy: bool = field(default=False, init=False)

    def check_config(self) -> None:
        _check_metric(self.name, self.metric)
        _check_mode(self.name, self.mode)
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) \
                or self.patience < 1:
            raise ConfigError(f"stop policy 'plateau': patience = {self.patience!r} must be >= 1")
        _check_number(self.name, "min_delta", self.min_delta, low=0.0, strict=False)
        if isinstance(self.warmup_epochs, bool) or not isinstance(self.warmup_epochs, int) \
                or self.warmup_epochs < 0:
            raise ConfigError(
                f"stop policy 'plateau': warmup_epochs = {self.warmup_epochs!r} must be >= 0"
            )

    def decide(self, history: History) -> Decision:
        best: float | None = None  # the reference: the last value that beat min_delta
        best_epoch: int | None = None
        top: float | None = None  # the highest (mode max) value, improvement or not
        top_epoch: int | None = None
        wait = 0
        for i, rec in enumerate(history):
            if epoch_number(history, i) <= self.warmup_epochs:
                continue
            value = finite_metric(rec, self.metric)
            if value is not None and better(value, top, self.mode):
                top, top_epoch = value, epoch_number(history, i)
            if value is not None and better(value, best, self.mode, self.min_delta):
                best, best_epoch, wait = value, epoch_number(history, i), 0
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
            f"plateau: {self.metric} did not improve{by} for {wait} epochs "
            f"(best {fmt(best)}{where}{also})",
        )


@dataclass(frozen=True)
class Budget:
    """Stop before an epoch whose predicted energy would overrun ``budget_kwh``.

    Predicted next-epoch energy = the largest ``energy_kwh`` of the last 3
    epochs (conservative: epochs with validation or a slower node cost more).
    Stop when ``cumulative_kwh + predicted > budget_kwh`` or the budget is
    spent. Before the first epoch nothing is known, so the first epoch always
    runs (a budget smaller than one epoch is overrun by that epoch).
    """

    budget_kwh: float
    lookback: int = 3
    name: str = field(default="budget", init=False)
    requires_energy: bool = field(default=True, init=False)

    def check_config(self) -> None:
        if self.budget_kwh is None:
            raise ConfigError("stop policy 'budget' needs budget_kwh (--budget-kwh)")
        _check_number(self.name, "budget_kwh", self.budget_kwh, low=0.0, strict=True)
        if self.lookback < 1:
            raise ConfigError(f"stop policy 'budget': lookback = {self.lookback!r} must be >= 1")

    def decide(self, history: History) -> Decision:
        if not history:
            return CONTINUE
        energies = [finite_energy(r) for r in history]
        missing = [epoch_number(history, i) for i, e in enumerate(energies) if e is None]
        if missing:
            return Decision(
                True,
                self.name,
                f"budget: energy unavailable (epoch {missing[0]} has no energy_kwh), "
                "cannot enforce",
            )
        known = [e for e in energies if e is not None]
        # cumulative_kwh also holds energy of partial epochs lost to crashes.
        spent = finite_energy(history[-1], "cumulative_kwh")
        if spent is None:
            spent = math.fsum(known)
        predicted = max(known[-self.lookback:])
        tol = _REL_TOL * self.budget_kwh
        if spent + predicted <= self.budget_kwh + tol and spent < self.budget_kwh - tol:
            return CONTINUE
        if spent >= self.budget_kwh - tol:
            why = f"{fmt(spent)} of {fmt(self.budget_kwh)} kWh spent"
        else:
            why = (
                f"next epoch predicted {fmt(predicted)} kWh (max of last "
                f"{min(self.lookback, len(known))}) would exceed {fmt(self.budget_kwh)} kWh "
                f"({fmt(spent)} kWh spent)"
            )
        return Decision(True, self.name, f"budget: {why}")


@dataclass(frozen=True)
class Target:
    """Stop as soon as the metric reaches ``value`` (>= for max, <= for min)."""

    value: float
    metric: str = "teacher_f1"
    mode: str = "max"
    name: str = field(default="target", init=False)
    requires_energy: bool = field(default=False, init=False)

    def check_config(self) -> None:
        if self.value is None:
            raise ConfigError("stop policy 'target' needs target_f1 (--target-f1)")
        _check_metric(self.name, self.metric)
        _check_mode(self.name, self.mode)
        _check_number(self.name, "target", self.value, low=-math.inf, strict=True)
        if self.metric.endswith("f1") and not 0.0 <= self.value <= 1.0:
            hint = f"; for {self.value:g} % use {self.value / 100:g}" if self.value <= 100 else ""
            raise ConfigError(
                f"stop policy 'target': {self.metric} is a fraction in [0, 1], "
                f"got target {self.value:g}{hint}")

    def decide(self, history: History) -> Decision:
        for i, rec in enumerate(history):
            value = finite_metric(rec, self.metric)
            if value is None:
                continue
            if (value >= self.value) if self.mode == "max" else (value <= self.value):
                op = ">=" if self.mode == "max" else "<="
                return Decision(
                    True,
                    self.name,
                    f"target: {self.metric} reached {fmt(value)} {op} {fmt(self.value)} "
                    f"at epoch {epoch_number(history, i)}",
                )
        return CONTINUE


@dataclass(frozen=True)
class Marginal:
    """Stop when the metric gain per kWh over the last ``window`` epochs is too small.

    gain = best over the whole history - best up to ``window`` epochs ago (sign
    flipped for mode min); energy = sum of ``energy_kwh`` over the last
    ``window`` epochs. Stop when gain / energy < ``min_gain_per_kwh``. Units:
    metric units per kWh; F1 as a fraction, so 0.1 means 0.1 F1 (10 points)
    per kWh. Decides only once ``window + 1`` epochs exist and after warm-up.
    """

    min_gain_per_kwh: float
    metric: str = "teacher_f1"
    mode: str = "max"
    window: int = 5
    warmup_epochs: int = 0
    name: str = field(default="marginal", init=False)
    requires_energy: bool = field(default=True, init=False)

    def check_config(self) -> None:
        if self.min_gain_per_kwh is None:
            raise ConfigError("stop policy 'marginal' needs min_f1_per_kwh (--min-f1-per-kwh)")
        _check_metric(self.name, self.metric)
        _check_mode(self.name, self.mode)
        _check_number(self.name, "min_f1_per_kwh", self.min_gain_per_kwh, low=0.0, strict=False)
        if isinstance(self.window, bool) or not isinstance(self.window, int) or self.window < 1:
            raise ConfigError(f"stop policy 'marginal': window = {self.window!r} must be >= 1")
        if self.warmup_epochs < 0:
            raise ConfigError(
                f"stop policy 'marginal': warmup_epochs = {self.warmup_epochs!r} must be >= 0"
            )

    def decide(self, history: History) -> Decision:
        n = len(history)
        if n < self.window + 1 or epoch_number(history, n - 1) <= self.warmup_epochs:
            return CONTINUE
        recent = history[n - self.window:]
        energies = [finite_energy(r) for r in recent]
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
        if rate >= self.min_gain_per_kwh:
            return CONTINUE
        return Decision(
            True,
            self.name,
            f"marginal: {self.metric} gained {fmt(gain)} over the last {self.window} epochs "
            f"for {fmt(spent)} kWh ({fmt(rate)} per kWh < {fmt(self.min_gain_per_kwh)})",
        )


@dataclass(frozen=True)
class MaxEpochs:
    """The fixed epoch cap (the paper trains 200 epochs); always present."""

    n: int
    name: str = field(default="max-epochs", init=False)
    requires_energy: bool = field(default=False, init=False)
    # A cap, not a vote: it stops an AllOf on its own.
    is_cap: bool = field(default=True, init=False)

    def check_config(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(f"max epochs = {self.n!r} must be >= 1")

    def decide(self, history: History) -> Decision:
        if not history or epoch_number(history, len(history) - 1) < self.n:
            return CONTINUE
        return Decision(True, self.name, f"max-epochs: reached the {self.n}-epoch cap")


def _is_cap(policy: Policy) -> bool:
    return bool(getattr(policy, "is_cap", False))


@dataclass(frozen=True)
class _Combined:
    """What any-of and all-of share: their children's energy needs and checks."""

    policies: Sequence[Policy]

    @property
    def requires_energy(self) -> bool:
        return any(p.requires_energy for p in self.policies)

    def check_config(self) -> None:
        if not self.policies:
            raise ConfigError("stop: no policies to combine")
        for p in self.policies:
            p.check_config()


@dataclass(frozen=True)
class AnyOf(_Combined):
    """Stop when any policy says stop. ``policy`` is the first that fired, in
    order; ``reason`` lists every one that fired."""

    policies: Sequence[Policy]
    name: str = field(default="any", init=False)

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

    policies: Sequence[Policy]
    name: str = field(default="all", init=False)

    def decide(self, history: History) -> Decision:
        votes = [(p, p.decide(history)) for p in self.policies]
        for p, d in votes:
            if _is_cap(p) and d.stop:
                return d
        voters = [d for p, d in votes if not _is_cap(p)]
        if not voters or not all(d.stop for d in voters):
            return CONTINUE
        return Decision(
            True, "+".join(d.policy for d in voters), "; ".join(d.reason for d in voters)
        )
