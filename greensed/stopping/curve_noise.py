"""A forecast that knows its noise: the best value a run will have *observed* by its
cap, and the value of its underlying curve there, each with intervals.

``curves.py`` forecasts the fitted, noise-free curve. What a run keeps is an
observed epoch, and the observed values scatter around the curve with noise
that is autocorrelated (an epoch that scored high is followed by one that
scores high: the weights change little in one epoch). This module adds, to the
Akaike-weighted ensemble of ``curves.py``:

- an AR(1) model of the residuals y_t - curve(t) (lag-1 autocorrelation
  ``phi`` and marginal standard deviation ``noise_std``, from the residuals of
  the recent half of the points: the noise of the rise is not that of the
  plateau);
- the curve's uncertainty along the whole path to the horizon, by the delta
  method (parameter draws delta ~ N(0, pcov), path = curve + J(t) delta: the
  linearised draws do not depend on how a family is written), with ``pcov``
  scaled by (1 + phi) / (1 - phi): autocorrelated residuals carry less
  information than curve_fit's independent-error covariance assumes (the
  long-run variance of an AR(1), Box & Jenkins);
- Monte Carlo paths of curve + noise from the last epoch to the horizon, the
  noise starting from the last residual; the best observed by the horizon is
  max(best observed so far, the path's maximum).

``DRAWS`` draws from a fixed seed: the same history always gives the same
forecast (policies are pure functions of the history). Memoized as the fits.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import lfilter

from greensed.stopping.curves import MIN_POINTS, FamilyFit, _fits, akaike_weights

# Monte Carlo draws per forecast: the 2.5 % quantile from 1000 draws moves by
# about 0.1 of the interval's half-width between seeds.
DRAWS = 1000
_SEED = 20150725  # fixed: a pure function of the history
# Autocorrelation is estimated from a handful of residuals: capped so that one
# lucky run of residuals cannot claim a random walk.
_PHI_MAX = 0.9
# The recent residuals the noise model is estimated from (at least this many).
_NOISE_MIN_POINTS = 8
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class BestForecast:
    """The forecast of what a run will observe by ``horizon``.

    ``predicted_best`` and its intervals (``lo50``/``hi50``, ``lo95``/``hi95``,
    central) are of the best value observed by the horizon (never below
    ``observed_best``); ``curve_*`` of the underlying curve's value at the
    horizon. NaN and ``meaningful`` False (``why`` says why) on too few points,
    values outside [0, 1], a constant curve or no family fitted.
    """

    meaningful: bool
    why: str
    last_epoch: int
    horizon: int
    observed_best: float = math.nan
    predicted_best: float = math.nan
    lo50: float = math.nan
    hi50: float = math.nan
    lo95: float = math.nan
    hi95: float = math.nan
    curve_at_horizon: float = math.nan
    curve_lo50: float = math.nan
    curve_hi50: float = math.nan
    curve_lo95: float = math.nan
    curve_hi95: float = math.nan
    noise_std: float = math.nan
    noise_phi: float = math.nan
    _best: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    # The curve's draws now (last epoch) and at the horizon.
    _now: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    _end: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    def prob_gain_above(self, rel_gain: float) -> float:
        """P(best observed by the horizon > best observed now x (1 + rel_gain)); NaN
        when not meaningful. What a run would gain by going on, in its own checkpoints."""
        if not self.meaningful:
            return math.nan
        return float(np.mean(self._best > self.observed_best * (1.0 + rel_gain)))

    def prob_curve_gain_above(self, rel_gain: float) -> float:
        """P(curve at the horizon > curve now x (1 + rel_gain)): a gain of the
        underlying curve, not of the noise (what a test score would follow);
        NaN when not meaningful."""
        if not self.meaningful:
            return math.nan
        return float(np.mean(self._end > self._now * (1.0 + rel_gain)))


def _not_meaningful(why: str, last: int, horizon: int) -> BestForecast:
    return BestForecast(False, why, last, horizon)


def ar1(resid: np.ndarray) -> tuple[float, float]:
    """(marginal sd, lag-1 autocorrelation in [0, _PHI_MAX]) of residuals about 0
    (the marginal sd includes the autocorrelated part: the variance of an AR(1))."""
    sd = float(np.sqrt(np.mean(resid**2)))
    if sd == 0.0 or len(resid) < 3:
        return sd, 0.0
    m = len(resid)
    phi = float(np.dot(resid[1:], resid[:-1]) / np.dot(resid, resid))
    # The lag-1 estimate is biased low by about (1 + 3 phi) / m in short series
    # (Marriott & Pope, Biometrika 1954): corrected.
    phi += (1.0 + 3.0 * phi) / m
    return sd, min(max(phi, 0.0), _PHI_MAX)


def _finite(fits: Sequence[FamilyFit], x: np.ndarray, grid: np.ndarray
            ) -> list[tuple[FamilyFit, np.ndarray, np.ndarray, np.ndarray]]:
    """(fit, fitted values at x, path on grid, Jacobian on grid) of the finite fits."""
    out = []
    with np.errstate(all="ignore"):
        for f in fits:
            at_x = f(x)
            path = f(grid)
            jac = f.family.jac(grid, *f.params)
            if np.all(np.isfinite(at_x)) and np.all(np.isfinite(path)) \
                    and np.all(np.isfinite(jac)):
                out.append((f, at_x, path, jac))
    return out


def _draw_params(cov: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n draws of N(0, cov), cov made positive semi-definite (eigenvalues >= 0)."""
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2.0)
    root = vecs * np.sqrt(np.clip(vals, 0.0, None))
    return rng.standard_normal((n, len(vals))) @ root.T


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _forecast_best(epochs: tuple[float, ...], values: tuple[float, ...],
                   horizon: int) -> BestForecast:
    x = np.asarray(epochs, dtype=float)
    y = np.asarray(values, dtype=float)
    n = len(x)
    last = int(x[-1]) if n else 0
    if n < MIN_POINTS:
        return _not_meaningful(f"{n} points, a forecast needs {MIN_POINTS}", last, horizon)
    if horizon < last:
        return _not_meaningful(f"horizon {horizon} is before epoch {last}", last, horizon)
    if np.min(y) < 0.0 or np.max(y) > 1.0:
        return _not_meaningful("values outside [0, 1]", last, horizon)
    if np.ptp(y) == 0.0:
        return _not_meaningful("constant values, no trend to extrapolate", last, horizon)
    # The path from the last epoch (its value: the curve at the horizon when it is the last).
    grid = np.arange(last, horizon + 1, dtype=float)
    fits = _finite(_fits(epochs, values), x, grid)
    if not fits:
        return _not_meaningful("no curve family could be fitted", last, horizon)
    w = akaike_weights([f.aicc for f, *_ in fits])
    # One noise model for the ensemble: the residuals of its weighted fitted curve.
    fitted = w @ np.clip(np.stack([at_x for _, at_x, _, _ in fits]), 0.0, 1.0)
    recent = max(_NOISE_MIN_POINTS, n // 2)
    sd, phi = ar1((y - fitted)[-recent:])
    inflate = (1.0 + phi) / (1.0 - phi)
    rng = np.random.default_rng(_SEED)
    counts = rng.multinomial(DRAWS, w)
    curve = np.concatenate([
        np.clip(path[None, :] + _draw_params(np.asarray(f.cov) * inflate, int(k), rng) @ jac.T,
                0.0, 1.0)
        for (f, _, path, jac), k in zip(fits, counts, strict=True) if k > 0])
    observed = float(np.max(y))
    # AR(1) noise from the last residual: e_t = phi e_{t-1} + sqrt(1 - phi^2) sd eps_t.
    ahead = curve[:, 1:]
    eps = rng.standard_normal(ahead.shape) * (sd * math.sqrt(1.0 - phi * phi))
    e0 = float(y[-1] - fitted[-1])
    noise = lfilter([1.0], [1.0, -phi], eps, axis=1, zi=np.full((DRAWS, 1), phi * e0))[0]
    seen = np.clip(ahead + noise, 0.0, 1.0)
    best = np.maximum(observed, seen.max(axis=1)) if seen.shape[1] else np.full(DRAWS, observed)
    at_h = curve[:, -1]
    q = np.quantile(best, [0.5, 0.25, 0.75, 0.025, 0.975])
    c = np.quantile(at_h, [0.25, 0.75, 0.025, 0.975])
    return BestForecast(
        meaningful=True, why="", last_epoch=last, horizon=horizon, observed_best=observed,
        predicted_best=float(q[0]), lo50=float(q[1]), hi50=float(q[2]), lo95=float(q[3]),
        hi95=float(q[4]), curve_at_horizon=float(np.mean(at_h)), curve_lo50=float(c[0]),
        curve_hi50=float(c[1]), curve_lo95=float(c[2]), curve_hi95=float(c[3]),
        noise_std=sd, noise_phi=phi, _best=best, _now=curve[:, 0], _end=at_h)


def forecast_best(epochs: Sequence[float], values: Sequence[float], horizon: int
                  ) -> BestForecast:
    """The best value observed by ``horizon`` and the curve there, from (epoch, value)
    pairs; the pairs are cleaned as ``curves.forecast_curve`` does. Never raises."""
    pairs: dict[float, float] = {}
    for e, v in zip(epochs, values, strict=True):
        try:
            ef, vf = float(e), float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(ef) and ef >= 1.0 and math.isfinite(vf):
            pairs[ef] = vf
    xs = tuple(sorted(pairs))
    return _forecast_best(xs, tuple(pairs[e] for e in xs), int(horizon))


def clear_cache() -> None:
    _forecast_best.cache_clear()
