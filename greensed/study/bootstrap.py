"""Held-out means with bootstrap 95 % intervals, for the policy benchmark."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    """A held-out mean over runs and its bootstrap 95 % interval (NaN: not computable)."""

    mean: float
    lo: float
    hi: float


def bootstrap_mean(values: Sequence[float]) -> Interval:
    """Mean and percentile-bootstrap 95 % interval (scipy.stats.bootstrap, 2000 resamples
    of the runs, seed 0: the same corpus always gives the same interval)."""
    from scipy.stats import bootstrap

    mean = statistics.fmean(values)
    if len(values) < 2 or max(values) == min(values):
        return Interval(mean, mean, mean)  # no spread to resample
    ci = bootstrap((list(values),), statistics.fmean, n_resamples=2000, method="percentile",
                   confidence_level=0.95, random_state=0, vectorized=False).confidence_interval
    return Interval(mean, float(ci.low), float(ci.high))
