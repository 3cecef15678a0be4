"""What a stopping policy is: a pure function from the run history to a decision.

A policy keeps no state between calls. Everything it needs is read from the
epoch records (``docs/runlog.md``), so a resumed run and an offline replay of a
finished run's ``epochs.jsonl`` take exactly the same decisions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from greensed.runlog import EpochRecord

History = Sequence[EpochRecord]


@dataclass(frozen=True)
class Decision:
    """Whether to stop before the next epoch, which policy said so and why."""

    stop: bool
    # The policy's name ("plateau", "budget", "target", "marginal", "forecast",
    # "max-epochs"; an all-of joins its voters' with "+"), "" when continuing. A run's
    # summary also takes the end's own values here ("interrupted", "diverged",
    # "failed": greensed.train.outcome.RunEnd).
    policy: str
    reason: str


CONTINUE = Decision(stop=False, policy="", reason="")


@runtime_checkable
class Policy(Protocol):
    name: str
    # True when the policy reads energy_kwh: the trainer must refuse an unavailable meter.
    requires_energy: bool
    # A cap (the epoch limit), not a vote: it stops an all-of on its own.
    is_cap: bool
    # The builder gives it the run's epoch cap as ``max_epochs``.
    takes_cap: bool

    @property
    def watches(self) -> str | None:
        """The metric it reads (None: it reads none)."""
        ...

    @property
    def children(self) -> Sequence[Policy]:
        """The policies it combines (none for a single policy)."""
        ...

    def decide(self, history: History) -> Decision:
        """Called after each finished epoch: may another epoch start?"""
        ...


class Single:
    """What a single policy declares unless it says otherwise: no cap, no children,
    no metric watched."""

    is_cap: ClassVar[bool] = False
    takes_cap: ClassVar[bool] = False
    children: ClassVar[tuple[Policy, ...]] = ()

    @property
    def watches(self) -> str | None:
        return None


class Watching(Single):
    """A single policy that watches its ``metric`` (greensed.stopping.params.Watched)."""

    metric: str

    @property
    def watches(self) -> str | None:
        return self.metric


def watchers(policy: Policy) -> list[str]:
    """Names of the policies in ``policy`` that watch a metric."""
    return [w.name for w in watching(policy)]


def watching(policy: Policy) -> list[Policy]:
    """The policies in ``policy`` that watch a metric."""
    if policy.children:
        return [w for c in policy.children for w in watching(c)]
    return [policy] if policy.watches is not None else []


def watched_metrics(policy: Policy) -> list[str]:
    """The metrics the policies in ``policy`` watch, each once, in order."""
    return list(dict.fromkeys(w.watches for w in watching(policy) if w.watches is not None))


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
