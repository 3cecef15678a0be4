"""The saturating learning-curve families of Domhan, Springenberg & Hutter (IJCAI
2015) that greensed's forecast fits: each with its curve, its analytic Jacobian,
bounds under which it is non-decreasing in the epoch, and a starting point.
See greensed.stopping.curves and docs/forecast.md."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Curve = Callable[..., np.ndarray]


@dataclass(frozen=True)
class Family:
    """A curve family: ``fn(x, *params)``, its Jacobian ``jac(x, *params)`` (shape
    (len(x), k)), its bounds and a starting point from data.

    ``asymptote`` gives the limit for x -> infinity from the parameters.
    """

    name: str
    fn: Curve
    jac: Curve
    lower: tuple[float, ...]
    upper: tuple[float, ...]
    start: Callable[[np.ndarray, np.ndarray], tuple[float, ...]]
    asymptote: Callable[[np.ndarray], np.ndarray]

    @property
    def n_params(self) -> int:
        return len(self.lower)


def _level(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Starting asymptote, rise and half-rise epoch, read off the data."""
    top = float(np.max(y))
    c0 = min(1.0, top + 0.02)
    rise = max(c0 - float(y[0]), 0.05)
    half = float(x[np.argmax(y >= float(y[0]) + 0.5 * (top - float(y[0])))])
    return c0, rise, max(half, 1.0)


# The families: pow3 c - a x^-alpha; log power a / (1 + (x / e^b)^-c) (the paper
# writes c < 0; Hill3 is the same family); exp3 c - a e^(-b x); Janoschek
# alpha - d e^(-kappa x^delta) (exp4 is the same family); Weibull
# alpha - d e^(-(kappa x)^delta); MMF alpha - d / (1 + (kappa x)^delta), with
# d = alpha - beta >= 0 so the curve rises; ilog2 c - a / ln(x + 1) (ln x is 0 at
# epoch 1). Left out: vapour pressure and log-log linear grow without bound, and
# an F1 curve saturates; pow4 c - (a x + b)^-alpha runs to its exp3 limit
# (a, b -> infinity) on these curves, at 20 to 100 ms a fit, 10x the others.


def _pow3(x: np.ndarray, c: float, a: float, alpha: float) -> np.ndarray:
    return c - a * x ** (-alpha)


def _log_power(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    return a / (1.0 + (x / np.exp(b)) ** (-c))


def _exp3(x: np.ndarray, c: float, a: float, b: float) -> np.ndarray:
    return c - a * np.exp(-b * x)


def _janoschek(x: np.ndarray, alpha: float, d: float, kappa: float, delta: float) -> np.ndarray:
    return alpha - d * np.exp(-kappa * x**delta)


def _weibull(x: np.ndarray, alpha: float, d: float, kappa: float, delta: float) -> np.ndarray:
    return alpha - d * np.exp(-((kappa * x) ** delta))


def _mmf(x: np.ndarray, alpha: float, d: float, kappa: float, delta: float) -> np.ndarray:
    return alpha - d / (1.0 + (kappa * x) ** delta)


def _ilog2(x: np.ndarray, c: float, a: float) -> np.ndarray:
    return c - a / np.log(x + 1.0)


# Analytic Jacobians: curve_fit would otherwise difference each parameter at
# every iteration, a fifth of a fit's time (tested against differences).


def _cols(x: np.ndarray, *cols: np.ndarray | float) -> np.ndarray:
    return np.stack([np.broadcast_to(c, np.shape(x)) for c in cols], axis=-1)


def _pow3_jac(x: np.ndarray, c: float, a: float, alpha: float) -> np.ndarray:
    t = x ** (-alpha)
    return _cols(x, 1.0, -t, a * t * np.log(x))


def _log_power_jac(x: np.ndarray, a: float, b: float, c: float) -> np.ndarray:
    lx = np.log(x) - b
    u = np.exp(-c * lx)
    q = a * u / (1.0 + u) ** 2
    return _cols(x, 1.0 / (1.0 + u), -c * q, lx * q)


def _exp3_jac(x: np.ndarray, c: float, a: float, b: float) -> np.ndarray:
    e = np.exp(-b * x)
    return _cols(x, 1.0, -e, a * x * e)


def _janoschek_jac(x: np.ndarray, alpha: float, d: float, kappa: float,
                   delta: float) -> np.ndarray:
    xd = x**delta
    e = np.exp(-kappa * xd)
    return _cols(x, 1.0, -e, d * xd * e, d * kappa * xd * np.log(x) * e)


def _weibull_jac(x: np.ndarray, alpha: float, d: float, kappa: float,
                 delta: float) -> np.ndarray:
    v = (kappa * x) ** delta
    e = np.exp(-v)
    return _cols(x, 1.0, -e, d * e * delta * v / kappa, d * e * v * np.log(kappa * x))


def _mmf_jac(x: np.ndarray, alpha: float, d: float, kappa: float, delta: float) -> np.ndarray:
    v = (kappa * x) ** delta
    q = d / (1.0 + v) ** 2
    return _cols(x, 1.0, -1.0 / (1.0 + v), q * delta * v / kappa, q * v * np.log(kappa * x))


def _ilog2_jac(x: np.ndarray, c: float, a: float) -> np.ndarray:
    return _cols(x, 1.0, -1.0 / np.log(x + 1.0))


def _first(p: np.ndarray) -> np.ndarray:
    return p[..., 0]


def _start_pow3(x: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    c0, rise, _ = _level(x, y)
    return c0, rise, 0.5


def _start_log_power(x: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    c0, _, half = _level(x, y)
    return c0, math.log(half), 1.0


def _start_exp3(x: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    c0, rise, half = _level(x, y)
    return c0, rise, math.log(2.0) / half


def _start_janoschek(x: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    c0, rise, half = _level(x, y)
    return c0, rise, math.log(2.0) / half, 1.0


def _start_weibull(x: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    c0, rise, half = _level(x, y)
    return c0, rise, math.log(2.0) / half, 1.0


def _start_mmf(x: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    c0, rise, half = _level(x, y)
    return c0, rise, 1.0 / half, 1.0


def _start_ilog2(x: np.ndarray, y: np.ndarray) -> tuple[float, ...]:
    c0, rise, _ = _level(x, y)
    return c0, rise * math.log(2.0)


# Bounds: asymptotes in [0, 1] (a fraction), rises and rates >= 0 so every curve
# is non-decreasing; rates and exponents are capped where the curve would jump
# from its start to its asymptote within the first epoch anyway.
FAMILIES: tuple[Family, ...] = (
    Family("pow3", _pow3, _pow3_jac, (0.0, 0.0, 0.0), (1.0, 10.0, 5.0), _start_pow3, _first),
    Family("log_power", _log_power, _log_power_jac, (0.0, -5.0, 0.0), (1.0, 10.0, 10.0),
           _start_log_power, _first),
    Family("exp3", _exp3, _exp3_jac, (0.0, 0.0, 0.0), (1.0, 10.0, 10.0), _start_exp3, _first),
    Family("janoschek", _janoschek, _janoschek_jac, (0.0, 0.0, 0.0, 0.0),
           (1.0, 2.0, 10.0, 5.0), _start_janoschek, _first),
    Family("weibull", _weibull, _weibull_jac, (0.0, 0.0, 0.0, 0.0), (1.0, 2.0, 10.0, 5.0),
           _start_weibull, _first),
    Family("mmf", _mmf, _mmf_jac, (0.0, 0.0, 0.0, 0.0), (1.0, 2.0, 10.0, 10.0), _start_mmf,
           _first),
    Family("ilog2", _ilog2, _ilog2_jac, (0.0, 0.0), (1.0, 10.0), _start_ilog2, _first),
)
FAMILY_NAMES = tuple(f.name for f in FAMILIES)
