"""What a stopping policy is: a pure function from the run history to a decision.

A policy keeps no state between calls. Everything it needs is read from the
epoch records (``docs/runlog.md``), so a resumed run and an offline replay of a
finished run's ``epochs.jsonl`` take exactly the same decisions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from greensed.runlog import metric as _metric

History = Sequence[Mapping[str, Any]]


@dataclass(frozen=True)
class Decision:
    """Whether to stop before the next epoch, which policy said so and why."""

    stop: bool
    # "plateau", "budget", "target", "marginal", "max-epochs"; "" when continuing.
    policy: str
    reason: str


CONTINUE = Decision(stop=False, policy="", reason="")


@runtime_checkable
class Policy(Protocol):
    name: str
    # True when the policy reads energy_kwh: the trainer must refuse an unavailable meter.
    requires_energy: bool

    def decide(self, history: History) -> Decision:
        """Called after each finished epoch: may another epoch start?"""
        ...

    def check_config(self) -> None:
        """Raise ConfigError on bad parameters (called before training)."""
        ...


def finite_metric(record: Mapping[str, Any], key: str) -> float | None:
    """The metric as a float, or None when it is missing, null or not finite."""
    value = _metric(record, key)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def finite_energy(record: Mapping[str, Any], key: str = "energy_kwh") -> float | None:
    """An energy field as a float, or None when unavailable (null, NaN, missing)."""
    value = record.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def epoch_number(history: History, index: int) -> int:
    """The record's 1-based ``epoch`` field, or its position when absent."""
    value = history[index].get("epoch")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return (index % len(history)) + 1


def better(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Strict improvement by more than ``min_delta``; ties are not improvements."""
    if best is None:
        return True
    if mode == "max":
        return value > best + min_delta
    return value < best - min_delta


def fmt(value: float | None, digits: int = 4) -> str:
    return "none" if value is None else f"{value:.{digits}g}"
