"""What a stopping policy is: a pure function from the run history to a decision.

A policy keeps no state between calls. Everything it needs is read from the
epoch records (``docs/runlog.md``), so a resumed run and an offline replay of a
finished run's ``epochs.jsonl`` take exactly the same decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from greensed.runlog import EpochRecord

History = Sequence[EpochRecord]


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


def finite_metric(record: EpochRecord, key: str) -> float | None:
    """The metric as a float, or None when it is missing, null or not finite."""
    return record.metric(key)


def finite_energy(record: EpochRecord, key: str = "energy_kwh") -> float | None:
    """An energy field (``energy_kwh``, ``cumulative_kwh``) as a float, or None when
    unavailable (null, NaN, missing)."""
    return record.metric(key)


def epoch_number(history: History, index: int) -> int:
    """The record's 1-based ``epoch`` field."""
    return history[index].epoch


def better(value: float, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Strict improvement by more than ``min_delta``; ties are not improvements.

    The gain is compared beyond float rounding: 0.12 + 0.02 is 0.13999..., and a
    gain of exactly ``min_delta`` must not count as more than it.
    """
    if best is None:
        return True
    gain = value - best if mode == "max" else best - value
    return gain > min_delta + 1e-9 * max(1.0, abs(value), abs(best))


def best_record(history: History, key: str, mode: str) -> EpochRecord | None:
    """The first record with the best finite value of ``key`` (ties: the earliest)."""
    best: EpochRecord | None = None
    best_v: float | None = None
    for rec in history:
        value = rec.metric(key)
        if value is not None and better(value, best_v, mode):
            best, best_v = rec, value
    return best


def fmt(value: float | None, digits: int = 4) -> str:
    return "none" if value is None else f"{value:.{digits}g}"
