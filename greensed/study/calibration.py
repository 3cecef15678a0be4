"""How well the forecast knows its noise, on a corpus of full-length runs: for every
run and every epoch from the forecast's ``min_epochs`` to the cap, the forecast of
the best value observed by the cap is set against the run's realised best
(``greensed bench-policies`` prints the table; docs/forecast.md).

The forecast has one parameter chosen on data, the power of the AR(1) variance
factor on its fitted curve's covariance (curve_noise.AUTOCORR_POWER): it is
chosen by leave-one-seed-out, as the policies are, so every run's forecasts are
judged under the power chosen on the other seeds' runs (the one that brings the
95 % and the atom-split 50 % coverage closest to their levels). Coverage counts
a forecast whose interval contains the realised best. Late in a
run the forecast puts an atom at "the best so far stays the best"; its central
50 % interval then holds that atom, and covers more than half the time by
construction; the "atom split" column counts instead the share of the atom's
probability mass that lies inside the central 50 % of the predicted
distribution (the expected coverage of the randomised PIT, Czado, Gneiting &
Held, Biometrics 2009). Reads run logs only.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from greensed.stopping import Forecast
from greensed.stopping.curve_noise import AUTOCORR_POWER, AUTOCORR_POWERS
from greensed.study.bench import CurveRun
from greensed.study.tables import Table

# Epoch ranges, as fractions of the cap, for the coverage rows.
RANGES = ((0.0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))
# Bins of the stated probability of a further gain.
PROB_BINS = ((0.0, 0.05), (0.05, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 1.0001))


@dataclass(frozen=True)
class Check:
    """One forecast against what the run then observed."""

    run: str
    seed: int | None
    epoch: int
    cap: int
    in95: bool
    in50: bool
    in50_split: float  # share of the realised value's PIT mass within [0.25, 0.75]
    prob_gain: float  # stated P(best by the cap > best now x (1 + rel_gain))
    gained: bool  # it did


def _split(lo: float, hi: float) -> float:
    if hi <= lo:
        return float(0.25 <= hi <= 0.75)
    return max(0.0, min(hi, 0.75) - max(lo, 0.25)) / (hi - lo)


def checks(runs: Sequence[CurveRun], metric: str, *, min_epochs: int = 10,
           warmup_epochs: int = 0, rel_gain: float = 0.01,
           max_forecasts: int = 2000, autocorr_power: float | None = None) -> list[Check]:
    """The forecasts of every run after ``min_epochs`` and before the cap: every epoch's,
    or every k-th epoch's where there would be more than ``max_forecasts`` (each costs
    its noise paths, tens of ms; neighbouring epochs' forecasts are alike)."""
    total = sum(max(r.epochs - min_epochs, 0) for r in runs)
    step = max(1, math.ceil(total / max_forecasts))
    out = []
    for run in runs:
        cap = run.epochs
        policy = Forecast(metric=metric, max_epochs=cap, min_epochs=min(min_epochs, cap),
                          warmup_epochs=warmup_epochs, rel_gain=rel_gain)
        values = [v for v in run.f1 if v is not None]
        realised = max(values)
        for i in range(1, cap, step):
            fc = policy.forecasts(run.records[:i], autocorr_power=autocorr_power)
            if fc is None:
                continue
            lo, hi = fc.cdf(realised)
            out.append(Check(run.label, run.seed, run.records[i - 1].epoch, cap,
                             fc.lo95 <= realised <= fc.hi95, fc.lo50 <= realised <= fc.hi50,
                             _split(lo, hi), fc.prob_gain_above(rel_gain),
                             realised > fc.observed_best * (1.0 + rel_gain)))
    return out


def coverage(cs: Sequence[Check]) -> tuple[float, float, float]:
    """(95 % coverage, 50 % coverage, 50 % coverage with the atom split)."""
    m = statistics.fmean
    return (m(float(c.in95) for c in cs), m(float(c.in50) for c in cs),
            m(c.in50_split for c in cs))


def miscalibration(cs: Sequence[Check]) -> float:
    """How far the 95 % and the 50 % (atom split) coverage are from their levels
    (infinite without a forecast)."""
    if not cs:
        return math.inf
    c95, _, c50 = coverage(cs)
    return abs(c95 - 0.95) + abs(c50 - 0.5)


@dataclass(frozen=True)
class HeldOut:
    """Every run's forecasts under the power chosen without its seed."""

    checks: tuple[Check, ...]
    chosen: tuple[tuple[int, float], ...]  # (held-out seed, power chosen on the others)
    final: float  # the power chosen on every run (what AUTOCORR_POWER should be)
    powers: tuple[float, ...] = (AUTOCORR_POWER,)  # the candidates compared


def choose_power(by_power: dict[float, Sequence[Check]]) -> HeldOut:
    """Leave-one-seed-out: for each seed, the power whose forecasts on the other seeds'
    runs are least miscalibrated (ties: the first given), judged on that seed's runs.
    With fewer than 2 seeds there are no folds: the shipped power's checks."""
    powers = list(by_power)
    first = by_power[powers[0]]
    seeds = sorted({c.seed for c in first if c.seed is not None})

    def best(keep: Callable[[Check], bool]) -> float:
        return min(powers, key=lambda p: miscalibration([c for c in by_power[p] if keep(c)]))

    if len(seeds) < 2:
        shipped = by_power.get(AUTOCORR_POWER, first)
        return HeldOut(tuple(shipped), (), AUTOCORR_POWER)
    held, chosen = [], []
    for seed in seeds:
        p = best(lambda c, s=seed: c.seed != s)
        chosen.append((seed, p))
        held += [c for c in by_power[p] if c.seed == seed]
    return HeldOut(tuple(held), tuple(chosen), best(lambda c: True), tuple(powers))


def held_out_checks(runs: Sequence[CurveRun], metric: str,
                    powers: Sequence[float] = AUTOCORR_POWERS, *, min_epochs: int = 10,
                    max_forecasts: int = 2000) -> HeldOut:
    """``checks`` under each power, chosen per fold (``choose_power``); with fewer than 2
    seeds (no folds) under the shipped power only."""
    if len({r.seed for r in runs if r.seed is not None}) < 2:
        powers = (AUTOCORR_POWER,)
    return choose_power({p: checks(runs, metric, autocorr_power=p, min_epochs=min_epochs,
                                   max_forecasts=max_forecasts) for p in powers})


def calibration_tables(held: HeldOut, rel_gain: float = 0.01) -> list[Table]:
    """Coverage by epoch range, and stated probabilities of a further gain against
    how often the gain came, on the held-out forecasts."""
    pct = "{:.0%}".format
    cs = held.checks
    folds = "; ".join(f"{s}: {p:g}" for s, p in held.chosen)
    t = Table(f"Forecast calibration on {len({c.run for c in cs})} runs ({len(cs)} forecasts "
              "after min_epochs): the best value observed by the cap"
              + (f", each seed held out once (power chosen without it: {folds})" if folds
                 else ""),
              ["Epochs (of the cap)", "Forecasts", "95 % interval covers", "50 % covers",
               "50 % (atom split)"])
    for lo, hi in (*RANGES, (0.0, 1.0)):
        sub = [c for c in cs if lo < c.epoch / c.cap <= hi]
        if sub:
            label = "all" if (lo, hi) == (0.0, 1.0) else f"{pct(lo)}-{pct(hi)}"
            t.add([label, str(len(sub)), *(pct(x) for x in coverage(sub))])
    if not cs:
        t.add(["all", "0", "n/a", "n/a", "n/a"])
        t.notes.append("No forecast: no run is longer than the forecast's min_epochs.")
    t.notes.append("Targets: 95 % intervals cover 85-99 %, 50 % intervals 40-60 %. Atom split: "
                   "the best so far staying the best is a point mass (docs/forecast.md).")
    if folds:
        t.notes.append(
            "Power: of the AR(1) factor (1 + phi) / (1 - phi) on the curve's covariance, "
            f"chosen among {', '.join(f'{p:g}' for p in held.powers)} per fold; on every "
            f"run {held.final:g}" + ("." if held.final == AUTOCORR_POWER else
                                     f" (greensed's forecast uses {AUTOCORR_POWER:g})."))
    else:
        t.notes.append(f"Power {AUTOCORR_POWER:g} of the AR(1) factor on the curve's "
                       "covariance (one seed: no folds to choose it on).")
    p = Table(f"Stated probability of a further gain (best by the cap > {1 + rel_gain:g} x "
              "best so far) and how often it came", ["Stated", "Forecasts", "Mean stated",
                                                     "Came true"])
    for lo, hi in PROB_BINS:
        sub = [c for c in cs if lo <= c.prob_gain < hi]
        if sub:
            p.add([f"{lo:g}-{min(hi, 1.0):g}", str(len(sub)),
                   f"{statistics.fmean(c.prob_gain for c in sub):.2f}",
                   f"{statistics.fmean(float(c.gained) for c in sub):.2f}"])
    return [t, p]
