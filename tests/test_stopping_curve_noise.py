"""The forecast that knows its noise (greensed.stopping.curve_noise) on hand-built,
paper-like curves with AR(1) noise: its intervals cover what the runs then observe."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import lfilter

from greensed.stopping.curve_noise import ar1, forecast_best


def paper_like(n: int, rng: np.random.Generator, phi: float, rel_sd: float = 0.015
               ) -> tuple[np.ndarray, np.ndarray]:
    """(curve, observed): a saturating F1 curve reaching 95 % of its top within about
    15-50 % of the run (as the paper's), plus AR(1) noise of sd ``rel_sd`` x its top."""
    t = np.arange(1, n + 1)
    top, tau, shape = rng.uniform(0.45, 0.65), n * rng.uniform(0.06, 0.2), rng.uniform(0.6, 1.2)
    curve = top * (1.0 - 0.9 * np.exp(-((t / tau) ** shape)))
    sd = rel_sd * curve.max()
    noise = lfilter([1.0], [1.0, -phi], rng.standard_normal(n) * sd * math.sqrt(1 - phi**2))
    return curve, np.clip(curve + noise, 0.0, 1.0)


def test_ar1_recovers_the_autocorrelation_of_long_series():
    rng = np.random.default_rng(5)
    for phi in (0.0, 0.5, 0.8):
        e = lfilter([1.0], [1.0, -phi], rng.standard_normal(4000) * math.sqrt(1 - phi**2))
        sd, est = ar1(e)
        assert sd == pytest.approx(1.0, abs=0.1) and est == pytest.approx(phi, abs=0.06)


def test_intervals_cover_the_realised_best_on_paper_like_curves():
    rng = np.random.default_rng(11)
    hits95, hits50, n_fc = 0, 0, 0
    for i in range(8):
        n = 100
        _, y = paper_like(n, rng, phi=(0.0, 0.4, 0.7)[i % 3])
        epochs = np.arange(1, n + 1)
        for k in range(15, n, 12):
            fc = forecast_best(epochs[:k], y[:k], n)
            assert fc.meaningful
            assert fc.observed_best == y[:k].max() and fc.lo95 >= fc.observed_best
            assert fc.lo95 <= fc.lo50 <= fc.predicted_best <= fc.hi50 <= fc.hi95
            assert fc.curve_lo95 <= fc.curve_lo50 <= fc.curve_hi50 <= fc.curve_hi95
            hits95 += fc.lo95 <= y.max() <= fc.hi95
            hits50 += fc.lo50 <= y.max() <= fc.hi50
            n_fc += 1
    # 64 forecasts: a calibrated 95 % interval misses 3 of them on average
    assert 0.85 <= hits95 / n_fc <= 1.0, hits95 / n_fc
    assert 0.35 <= hits50 / n_fc <= 0.75, hits50 / n_fc


def test_white_noise_alone_would_be_too_sure(monkeypatch):
    """Autocorrelated noise widens both intervals: with phi forced to 0 (white noise)
    the same history gives narrower ones."""
    from greensed.stopping import curve_noise

    rng = np.random.default_rng(2)
    _, y = paper_like(100, rng, phi=0.8)
    e = np.arange(1, 101)
    fc = forecast_best(e[:40], y[:40], 100)
    assert fc.noise_phi > 0.3
    width = fc.hi95 - fc.lo95  # drawn now, before the patch
    monkeypatch.setattr(curve_noise, "_PHI_MAX", 0.0)
    curve_noise.clear_cache()
    white = forecast_best(e[:40], y[:40], 100)
    curve_noise.clear_cache()
    assert white.noise_phi == 0.0
    assert white.curve_hi95 - white.curve_lo95 < fc.curve_hi95 - fc.curve_lo95
    assert white.hi95 - white.lo95 < width


def test_probabilities_and_determinism():
    rng = np.random.default_rng(4)
    _, y = paper_like(100, rng, phi=0.4)
    e = np.arange(1, 101)
    early, late = forecast_best(e[:12], y[:12], 100), forecast_best(e[:95], y[:95], 100)
    assert 0.0 <= late.prob_gain_above(0.01) <= early.prob_gain_above(0.01) <= 1.0
    assert early.prob_curve_gain_above(0.01) > 0.5 > late.prob_curve_gain_above(0.01)
    again = forecast_best(list(e[:12]), list(y[:12]), 100)
    assert again == early and np.array_equal(again._best, early._best)


@pytest.mark.parametrize("values,why", [([0.1] * 3, "3 points"), ([0.3] * 8, "constant"),
                                        ([1.5] * 8, "outside [0, 1]")])
def test_odd_inputs_say_why(values, why):
    fc = forecast_best(range(1, len(values) + 1), values, 50)
    assert not fc.meaningful and why in fc.why and math.isnan(fc.prob_gain_above(0.0))


def test_at_the_horizon_the_best_is_what_was_observed():
    rng = np.random.default_rng(3)
    _, y = paper_like(30, rng, phi=0.3)
    fc = forecast_best(range(1, 31), y, 30)
    assert fc.lo95 == fc.hi95 == fc.predicted_best == y.max()
