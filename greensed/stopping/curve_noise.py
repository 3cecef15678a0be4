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
  scaled by ((1 + phi) / (1 - phi)) ** AUTOCORR_POWER: autocorrelated
  residuals carry less information than curve_fit's independent-error
  covariance assumes (power 1: the long-run variance of an AR(1), Box &
  Jenkins), but an imperfect curve's own misfit also looks autocorrelated, so
  the full factor over-widens; the power is chosen by the calibration's
  held-out folds (greensed.study.calibration, docs/forecast.md);
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

from greensed.stopping.curves import MIN_POINTS, FamilyFit, _fits, akaike_weights, clean_pairs

# Monte Carlo draws per forecast: the 2.5 % quantile from 1000 draws moves by
# about 0.1 of the interval's half-width between seeds.
DRAWS = 1000
_SEED = 20150725  # fixed: a pure function of the history
# Autocorrelation is estimated from a handful of residuals: capped so that one
# lucky run of residuals cannot claim a random walk.
_PHI_MAX = 0.9
# The recent residuals the noise model is estimated from (at least this many).
_NOISE_MIN_POINTS = 8
# The power of the AR(1) variance factor on the curve's covariance: the one the
# calibration's leave-one-seed-out choice picks on benchmarks/curves-v2 among
# AUTOCORR_POWERS (1.5 in four folds, 1 in one, 1.5 on all 20 runs;
# tests/test_curves_v2_corpus.py checks it). 1.5 and 2 joined the candidates when
# every fold chose the largest, 1, and the 95 % intervals covered 89 %.
AUTOCORR_POWERS = (0.0, 0.5, 1.0, 1.5, 2.0)
AUTOCORR_POWER = 1.5
_CACHE_SIZE = 4096


@dataclass(frozen=True)
class BestForecast:
    """The forecast of what a run will observe by ``horizon``.

    ``predicted_best`` (the median) and its central intervals (``lo50``/``hi50``,
    ``lo95``/``hi95``) are of the best value observed by the horizon (never below
    ``observed_best``); ``curve_*`` of the underlying curve's value at the
    horizon. NaN and ``meaningful`` False (``why`` says why) on too few points,
    values outside [0, 1], a constant curve or no family fitted. The noise paths
    behind the best value are drawn on first use (a policy deciding on the curve
    alone never pays for them) and memoized.
    """

    meaningful: bool
    why: str
    last_epoch: int
    horizon: int
    observed_best: float = math.nan
    curve_at_horizon: float = math.nan
    curve_lo50: float = math.nan
    curve_hi50: float = math.nan
    curve_lo95: float = math.nan
    curve_hi95: float = math.nan
    noise_std: float = math.nan
    noise_phi: float = math.nan
    # The curve's draws now (last epoch) and at the horizon.
    _now: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    _end: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    _key: tuple[tuple[float, ...], tuple[float, ...]] = field(default=((), ()), repr=False)
    _power: float = field(default=AUTOCORR_POWER, repr=False)

    @property
    def _best(self) -> np.ndarray:
        """Draws of the best value observed by the horizon."""
        if not self.meaningful:
            return np.full(1, math.nan)
        return _best_draws(*self._key, self.horizon, self._power)

    def _q(self, p: float) -> float:
        return math.nan if not self.meaningful else float(np.quantile(self._best, p))

    @property
    def predicted_best(self) -> float:
        return self._q(0.5)

    @property
    def lo50(self) -> float:
        return self._q(0.25)

    @property
    def hi50(self) -> float:
        return self._q(0.75)

    @property
    def lo95(self) -> float:
        return self._q(0.025)

    @property
    def hi95(self) -> float:
        return self._q(0.975)

    def prob_gain_above(self, rel_gain: float) -> float:
        """P(best observed by the horizon > best observed now x (1 + rel_gain)); NaN
        when not meaningful. What a run would gain by going on, in its own checkpoints."""
        if not self.meaningful:
            return math.nan
        return float(np.mean(self._best > self.observed_best * (1.0 + rel_gain)))

    def cdf(self, value: float) -> tuple[float, float]:
        """(P(best < value), P(best <= value)) of the best observed by the horizon: they
        differ at the atom where the best so far stays the best (for calibration)."""
        return float(np.mean(self._best < value)), float(np.mean(self._best <= value))

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


@dataclass(frozen=True)
class _Model:
    """The fitted ensemble and noise model of one history, and the curve's draws."""

    y: np.ndarray
    fitted_last: float
    sd: float
    phi: float
    curve: np.ndarray  # DRAWS x (horizon - last + 1), from the last epoch


def _model(epochs: tuple[float, ...], values: tuple[float, ...], horizon: int,
           power: float) -> _Model | str:
    """The model, or why there is none."""
    x = np.asarray(epochs, dtype=float)
    y = np.asarray(values, dtype=float)
    n = len(x)
    last = int(x[-1]) if n else 0
    if n < MIN_POINTS:
        return f"{n} points, a forecast needs {MIN_POINTS}"
    if horizon < last:
        return f"horizon {horizon} is before epoch {last}"
    if np.min(y) < 0.0 or np.max(y) > 1.0:
        return "values outside [0, 1]"
    if np.ptp(y) == 0.0:
        return "constant values, no trend to extrapolate"
    # The path from the last epoch (its value: the curve at the horizon when it is the last).
    grid = np.arange(last, horizon + 1, dtype=float)
    fits = _finite(_fits(epochs, values), x, grid)
    if not fits:
        return "no curve family could be fitted"
    w = akaike_weights([f.aicc for f, *_ in fits])
    # One noise model for the ensemble: the residuals of its weighted fitted curve.
    fitted = w @ np.clip(np.stack([at_x for _, at_x, _, _ in fits]), 0.0, 1.0)
    recent = max(_NOISE_MIN_POINTS, n // 2)
    sd, phi = ar1((y - fitted)[-recent:])
    inflate = ((1.0 + phi) / (1.0 - phi)) ** power
    rng = np.random.default_rng(_SEED)
    counts = rng.multinomial(DRAWS, w)
    curve = np.concatenate([
        np.clip(path[None, :] + _draw_params(np.asarray(f.cov) * inflate, int(k), rng) @ jac.T,
                0.0, 1.0)
        for (f, _, path, jac), k in zip(fits, counts, strict=True) if k > 0])
    return _Model(y, float(fitted[-1]), sd, phi, curve)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _forecast_best(epochs: tuple[float, ...], values: tuple[float, ...],
                   horizon: int, power: float) -> BestForecast:
    last = int(epochs[-1]) if epochs else 0
    m = _model(epochs, values, horizon, power)
    if isinstance(m, str):
        return _not_meaningful(m, last, horizon)
    at_h = m.curve[:, -1]
    c = np.quantile(at_h, [0.25, 0.75, 0.025, 0.975])
    return BestForecast(
        meaningful=True, why="", last_epoch=last, horizon=horizon,
        observed_best=float(np.max(m.y)), curve_at_horizon=float(np.mean(at_h)),
        curve_lo50=float(c[0]), curve_hi50=float(c[1]), curve_lo95=float(c[2]),
        curve_hi95=float(c[3]), noise_std=m.sd, noise_phi=m.phi,
        _now=m.curve[:, 0].astype(np.float32), _end=at_h.astype(np.float32),
        _key=(epochs, values), _power=power)


@functools.lru_cache(maxsize=_CACHE_SIZE // 4)
def _best_draws(epochs: tuple[float, ...], values: tuple[float, ...], horizon: int,
                power: float) -> np.ndarray:
    """Draws of the best value observed by the horizon: max(best so far, curve + AR(1)
    noise from the last residual, e_t = phi e_(t-1) + sqrt(1 - phi^2) sd eps_t)."""
    m = _model(epochs, values, horizon, power)
    assert not isinstance(m, str)
    observed = float(np.max(m.y))
    ahead = m.curve[:, 1:]
    if ahead.shape[1] == 0:
        return np.full(DRAWS, observed)
    rng = np.random.default_rng(_SEED + 1)
    eps = rng.standard_normal(ahead.shape) * (m.sd * math.sqrt(1.0 - m.phi * m.phi))
    e0 = float(m.y[-1] - m.fitted_last)
    noise = lfilter([1.0], [1.0, -m.phi], eps, axis=1, zi=np.full((DRAWS, 1), m.phi * e0))[0]
    return np.maximum(observed, np.max(ahead + noise, axis=1).clip(0.0, 1.0))


def forecast_best(epochs: Sequence[float], values: Sequence[float], horizon: int, *,
                  autocorr_power: float | None = None) -> BestForecast:
    """The best value observed by ``horizon`` and the curve there, from (epoch, value)
    pairs; the pairs are cleaned as ``curves.forecast_curve`` does. ``autocorr_power``
    (default AUTOCORR_POWER): the calibration's choices only. Never raises."""
    power = AUTOCORR_POWER if autocorr_power is None else float(autocorr_power)
    return _forecast_best(*clean_pairs(epochs, values), int(horizon), power)


def clear_cache() -> None:
    """Forget memoized forecasts (tests, benchmarks)."""
    _forecast_best.cache_clear()
    _best_draws.cache_clear()
