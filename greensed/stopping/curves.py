"""Learning-curve extrapolation: saturating curve families, an ensemble and its forecast.

After Domhan, Springenberg & Hutter, "Speeding up automatic hyperparameter
optimization of deep neural networks by extrapolation of learning curves",
IJCAI 2015: a metric's curve over epochs is fitted by several parametric
families that rise and saturate, and their combination is extrapolated to the
epoch cap. Where the paper samples the combination by MCMC, this module takes
the cheap route the stopping policies need (one least-squares fit per family,
``scipy.optimize.curve_fit``):

- weights: Akaike weights from the small-sample AICc (Burnham & Anderson,
  "Model Selection and Multimodel Inference", 2002, ch. 2 and 4; Hurvich
  & Tsai, Biometrika 1989). AICc prices the fourth parameter, so a 4-parameter
  family must fit clearly better than a 3-parameter one to take its weight,
  and the correction matters at the 6 to 20 points an early forecast has.
- uncertainty: the delta method (Bates & Watts, "Nonlinear Regression
  Analysis and Its Applications", 1988, ch. 2): with curve_fit's parameter
  covariance ``pcov`` (scaled by the residual variance) and the gradient g of
  the fitted value at an epoch, the value's variance is g' pcov g. Each family
  then predicts a normal distribution, cut to [0, 1] for a value, and the
  ensemble predicts their Akaike-weighted mixture. Unlike draws of the
  parameters, the delta method does not depend on how a family is written:
  Janoschek and Weibull are one family in two parametrisations, and 400 draws
  from their normal approximations gave 0.44 and 0.49 for the same fitted
  value of 0.52 (seed-1 F1 curve, 10 epochs). It needs no random numbers, so
  the same curve always gives the same forecast.

Every family is non-decreasing in the epoch under its bounds (tested), so the
best value the fitted curve reaches by the horizon is its value there.
Epochs are the records' 1-based numbers; values must lie in [0, 1] (F1 as a
fraction). Pure numpy and scipy, no torch. See ``docs/forecast.md``.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from scipy.special import ndtr
from scipy.stats import truncnorm

from greensed.stopping.curve_families import FAMILIES, Family

# Fewer points than this: no forecast (4 parameters need n >= k + 2 for AICc).
MIN_POINTS = 6
# Mean squared residual floor for AICc: a noise-free fit must not weigh -inf.
_MSE_FLOOR = 1e-12
# Least-squares budget per family: a fit that needs more does not converge well.
_MAX_NFEV = 400
# Memoized forecasts: a replay of 6 runs x 200 prefixes x a few warm-ups fits.
_CACHE_SIZE = 8192

@dataclass(frozen=True)
class FamilyFit:
    """One family's least-squares fit: parameters, their covariance and AICc."""

    family: Family
    params: tuple[float, ...]
    cov: tuple[tuple[float, ...], ...]
    rss: float
    aicc: float

    @property
    def asymptote(self) -> float:
        return float(self.family.asymptote(np.asarray(self.params)))

    def __call__(self, x: float | np.ndarray) -> np.ndarray:
        return self.family.fn(np.asarray(x, dtype=float), *self.params)


def _aicc(rss: float, n: int, k: int) -> float:
    """AICc of a least-squares fit with Gaussian errors (Hurvich & Tsai 1989)."""
    mse = max(rss / n, _MSE_FLOOR)
    return n * math.log(mse) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _clip_start(family: Family, p0: Sequence[float]) -> list[float]:
    lo, hi = np.asarray(family.lower), np.asarray(family.upper)
    # Strictly inside: trf refuses a start on a bound.
    span = hi - lo
    return list(np.clip(np.asarray(p0, dtype=float), lo + 1e-6 * span, hi - 1e-6 * span))


def fit_family(family: Family, x: np.ndarray, y: np.ndarray) -> FamilyFit | None:
    """Least-squares fit of one family (trust-region reflective, within its bounds).

    None when the fit fails, is not finite, or has too few points for AICc.
    """
    n, k = len(x), family.n_params
    if n < k + 2:
        return None
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        # An uncomputable covariance is reported as inf (checked below), not by a warning.
        warnings.simplefilter("ignore", OptimizeWarning)
        try:
            popt, pcov = curve_fit(
                family.fn, x, y, p0=_clip_start(family, family.start(x, y)),
                jac=family.jac, bounds=(family.lower, family.upper), method="trf",
                x_scale="jac", max_nfev=_MAX_NFEV,
            )
        except (RuntimeError, ValueError, np.linalg.LinAlgError):
            return None
        resid = y - family.fn(x, *popt)
    rss = float(np.dot(resid, resid))
    if not (np.all(np.isfinite(popt)) and np.all(np.isfinite(pcov)) and math.isfinite(rss)):
        return None
    return FamilyFit(
        family=family,
        params=tuple(float(p) for p in popt),
        cov=tuple(tuple(float(v) for v in row) for row in pcov),
        rss=rss,
        aicc=_aicc(rss, n, k),
    )


def akaike_weights(aiccs: Sequence[float]) -> np.ndarray:
    """Akaike weights: exp(-delta / 2), normalised; delta = AICc - min AICc."""
    a = np.asarray(aiccs, dtype=float)
    w = np.exp(-0.5 * (a - a.min()))
    return w / w.sum()


@dataclass(frozen=True)
class _Prediction:
    """One family's normal prediction of the fitted values now (n) and at the horizon (H)."""

    weight: float
    now: float
    at_horizon: float
    var_now: float
    var_horizon: float
    cov: float  # covariance of the two values: they share the parameters


def _predict(fit: FamilyFit, weight: float, last: int, horizon: int) -> _Prediction | None:
    at = np.array([float(last), float(horizon)])
    with np.errstate(all="ignore"):
        values = fit.family.fn(at, *fit.params)
        g = fit.family.jac(at, *fit.params)
    cov = g @ np.asarray(fit.cov) @ g.T
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(cov))):
        return None
    # A metric in [0, 1]: a fitted value leaving it (pow3 far below its data) is cut there.
    now, at_h = (float(np.clip(v, 0.0, 1.0)) for v in values)
    return _Prediction(weight, now, at_h, max(float(cov[0, 0]), 0.0),
                       max(float(cov[1, 1]), 0.0), float(cov[0, 1]))


def _prob_above(mean: float, var: float, level: float, low: float, high: float) -> float:
    """P(X > level) for X ~ N(mean, var) cut to [low, high] (untruncated if infinite)."""
    if var <= 0.0:
        return float(mean > level)
    sd = math.sqrt(var)
    lo, hi = ndtr((low - mean) / sd), ndtr((high - mean) / sd)
    if hi - lo <= 0.0:  # all its mass far outside [low, high]: at the nearer bound
        return float((high if mean > high else low) > level)
    at = ndtr((min(max(level, low), high) - mean) / sd)
    return float(np.clip((hi - at) / (hi - lo), 0.0, 1.0))


def _unit_moments(mean: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of N(mean, var) cut to [0, 1], elementwise (scipy's truncnorm).

    A family with a huge variance (an asymptote the data do not pin down) then
    says "anywhere in [0, 1]" (variance at most 1/12) instead of +- 7.
    """
    m, v = mean.astype(float).copy(), np.zeros_like(mean, dtype=float)
    wide = var > 0.0
    if np.any(wide):
        sd = np.sqrt(var[wide])
        tm, tv = truncnorm.stats((0.0 - mean[wide]) / sd, (1.0 - mean[wide]) / sd,
                                 loc=mean[wide], scale=sd, moments="mv")
        m[wide], v[wide] = tm, tv
    ok = np.isfinite(m) & np.isfinite(v)  # mass far outside [0, 1]: the point value
    return np.where(ok, m, mean), np.where(ok, np.maximum(v, 0.0), 0.0)


@dataclass(frozen=True)
class CurveForecast:
    """The ensemble's forecast of a curve at a horizon epoch.

    Values are of the fitted (noise-free) curve: one later epoch scatters
    around it by about ``noise_std`` more.

    - ``curve``: the Akaike-weighted average of the families' fitted curves
      (Burnham & Anderson's model averaging) at epochs ``last_epoch`` .. ``horizon``;
      ``now_mean`` is its first value, ``gain_mean`` its last minus its first.
    - ``value_mean``, ``value_std``: mean and standard deviation at the horizon
      of the Akaike-weighted mixture of the families' normal predictions, each
      cut to [0, 1]; the spread counts the families' disagreement too.
    - ``best_mean``, ``best_std``: the same for the best value up to the
      horizon, which for these non-decreasing families is the value there.

    When ``meaningful`` is False, ``why`` says why and the numbers are NaN.
    """

    meaningful: bool
    why: str
    n_points: int
    last_epoch: int
    horizon: int
    now_mean: float = math.nan
    value_mean: float = math.nan
    value_std: float = math.nan
    gain_mean: float = math.nan
    noise_std: float = math.nan
    curve: tuple[float, ...] = ()
    # (family name, Akaike weight) of the families that fitted; the weights sum to 1.
    weights: tuple[tuple[str, float], ...] = ()
    _predictions: tuple[_Prediction, ...] = ()

    @property
    def best_mean(self) -> float:
        return self.value_mean

    @property
    def best_std(self) -> float:
        return self.value_std

    def prob_best_above(self, level: float) -> float:
        """P(best fitted value up to the horizon > level); NaN when not meaningful."""
        if not self.meaningful:
            return math.nan
        return math.fsum(
            p.weight * _prob_above(p.at_horizon, p.var_horizon, level, 0.0, 1.0)
            for p in self._predictions
        )

    def prob_gain_above(self, rel_gain: float) -> float:
        """P(best up to the horizon > now x (1 + rel_gain)); NaN when not meaningful.

        Per family, best - (1 + rel_gain) x now is normal with the covariance of the
        two values, so the uncertainty they share (mostly the curve's level)
        cancels and that of the rise still to come is left.
        """
        if not self.meaningful:
            return math.nan
        k = 1.0 + rel_gain
        total = []
        for p in self._predictions:
            mean = p.at_horizon - k * p.now
            var = p.var_horizon + k * k * p.var_now - 2.0 * k * p.cov
            total.append(p.weight * _prob_above(mean, var, 0.0, -math.inf, math.inf))
        return math.fsum(total)


def _not_meaningful(why: str, n: int, last: int, horizon: int) -> CurveForecast:
    return CurveForecast(meaningful=False, why=why, n_points=n, last_epoch=last, horizon=horizon)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _fits(epochs: tuple[float, ...], values: tuple[float, ...]) -> tuple[FamilyFit, ...]:
    """Every family's fit; memoized apart from the horizon, which only the prediction reads."""
    x = np.asarray(epochs, dtype=float)
    y = np.asarray(values, dtype=float)
    return tuple(f for f in (fit_family(fam, x, y) for fam in FAMILIES) if f is not None)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _forecast(epochs: tuple[float, ...], values: tuple[float, ...], horizon: int) -> CurveForecast:
    x = np.asarray(epochs, dtype=float)
    y = np.asarray(values, dtype=float)
    n = len(x)
    last = int(x[-1]) if n else 0
    if n < MIN_POINTS:
        return _not_meaningful(f"{n} points, a forecast needs {MIN_POINTS}", n, last, horizon)
    if horizon < last:
        return _not_meaningful(f"horizon {horizon} is before epoch {last}", n, last, horizon)
    if np.min(y) < 0.0 or np.max(y) > 1.0:
        return _not_meaningful("values outside [0, 1]", n, last, horizon)
    if np.ptp(y) == 0.0:
        return _not_meaningful("constant values, no trend to extrapolate", n, last, horizon)
    fits = _fits(epochs, values)
    weights = akaike_weights([f.aicc for f in fits]) if fits else np.zeros(0)
    kept = [(f, p) for f, w in zip(fits, weights, strict=True)
            if (p := _predict(f, float(w), last, horizon)) is not None]
    if not kept:
        return _not_meaningful("no curve family could be fitted", n, last, horizon)
    # Renormalised over the families whose prediction is finite.
    total = math.fsum(p.weight for _, p in kept)
    preds = tuple(
        _Prediction(p.weight / total, p.now, p.at_horizon, p.var_now, p.var_horizon, p.cov)
        for _, p in kept
    )
    w = np.array([p.weight for p in preds])
    grid = np.arange(last, horizon + 1, dtype=float)
    with np.errstate(all="ignore"):
        curves = np.clip(np.stack([f.family.fn(grid, *f.params) for f, _ in kept]), 0.0, 1.0)
    curve = w @ curves
    # Non-decreasing families: the best up to the horizon is the value there.
    mean_h, var_h = _unit_moments(np.array([p.at_horizon for p in preds]),
                                  np.array([p.var_horizon for p in preds]))
    mean = float(w @ mean_h)
    mixture_var = float(w @ (var_h + (mean_h - mean) ** 2))
    top = max(kept, key=lambda fp: fp[1].weight)[0]
    return CurveForecast(
        meaningful=True,
        why="",
        n_points=n,
        last_epoch=last,
        horizon=horizon,
        now_mean=float(curve[0]),
        value_mean=mean,
        value_std=math.sqrt(max(mixture_var, 0.0)),
        gain_mean=float(curve[-1] - curve[0]),
        noise_std=math.sqrt(top.rss / max(n - top.family.n_params, 1)),
        curve=tuple(float(v) for v in curve),
        weights=tuple((f.family.name, p.weight) for (f, _), p in zip(kept, preds, strict=True)),
        _predictions=preds,
    )


def forecast_curve(
    epochs: Sequence[float], values: Sequence[float], horizon: int
) -> CurveForecast:
    """Fit the ensemble to (epoch, value) pairs and forecast it at ``horizon``.

    Pairs with a non-finite value or an epoch < 1 are left out; epochs are
    sorted, and a repeated epoch keeps its last value. Never raises on odd
    data: it returns a forecast with ``meaningful`` False and ``why`` instead.
    Memoized on the exact inputs (an offline replay asks for every prefix, once
    per policy setting).
    """
    return _forecast(*clean_pairs(epochs, values), int(horizon))


def clean_pairs(epochs: Sequence[float], values: Sequence[float]
                ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The finite (epoch >= 1, value) pairs, by epoch; a repeated epoch keeps its last."""
    pairs: dict[float, float] = {}
    for e, v in zip(epochs, values, strict=True):
        try:
            ef, vf = float(e), float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(ef) and ef >= 1.0 and math.isfinite(vf):
            pairs[ef] = vf
    xs = tuple(sorted(pairs))
    return xs, tuple(pairs[e] for e in xs)


def clear_cache() -> None:
    """Forget memoized fits and forecasts (tests; a long process wanting memory back)."""
    _forecast.cache_clear()
    _fits.cache_clear()
