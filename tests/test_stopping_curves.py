"""Learning-curve families and the ensemble forecast (greensed.stopping.curves).

Tolerances, on 60 epochs of a curve that has reached >= 97 % of its asymptote:
each family fitted to its own curve recovers the asymptote within 1e-4
without noise and within 0.015 with Gaussian noise of sd 0.01 (3 seeds); the
ensemble forecast at epoch 200 is within 0.005 of the true curve without noise
and within 0.02 with it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from greensed.stopping import curves
from greensed.stopping.curve_families import FAMILIES, FAMILY_NAMES
from greensed.stopping.curves import MIN_POINTS, fit_family, forecast_curve

# Known parameters per family, in its parametrisation (first = asymptote), chosen
# so the curve starts in [0, 1] and is near its asymptote by epoch 60.
TRUE = {
    "pow3": (0.70, 0.60, 1.2),
    "log_power": (0.65, math.log(6.0), 2.0),
    "exp3": (0.60, 0.55, 0.12),
    "janoschek": (0.62, 0.60, 0.05, 1.3),
    "weibull": (0.66, 0.60, 0.08, 1.4),
    "mmf": (0.64, 0.60, 0.15, 2.0),
    "ilog2": (0.75, 0.40),
}
BY_NAME = {f.name: f for f in FAMILIES}
X = np.arange(1, 61, dtype=float)


def curve(name: str, x: np.ndarray = X) -> np.ndarray:
    return BY_NAME[name].fn(x, *TRUE[name])


def noisy(name: str, seed: int, sd: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(curve(name) + rng.normal(0.0, sd, len(X)), 0.0, 1.0)


def test_every_family_has_known_parameters_here():
    assert set(TRUE) == set(FAMILY_NAMES)
    for name, params in TRUE.items():
        y = curve(name)
        assert len(params) == BY_NAME[name].n_params
        assert 0.0 <= y.min() and y.max() <= 1.0
        assert name == "ilog2" or y[-1] >= 0.97 * params[0]


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_fit_recovers_the_asymptote_without_noise(name):
    fit = fit_family(BY_NAME[name], X, curve(name))
    assert fit is not None
    assert fit.asymptote == pytest.approx(TRUE[name][0], abs=1e-4)


@pytest.mark.parametrize("name", FAMILY_NAMES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_recovers_the_asymptote_with_noise(name, seed):
    fit = fit_family(BY_NAME[name], X, noisy(name, seed))
    assert fit is not None
    assert fit.asymptote == pytest.approx(TRUE[name][0], abs=0.015)


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_ensemble_forecast_matches_the_true_curve_at_the_horizon(name):
    truth = float(curve(name, np.array([200.0]))[0])
    exact = forecast_curve(X, curve(name), 200)
    assert exact.meaningful
    assert exact.value_mean == pytest.approx(truth, abs=0.005)
    assert sum(w for _, w in exact.weights) == pytest.approx(1.0)
    fc = forecast_curve(X, noisy(name, 0), 200)
    assert fc.meaningful
    assert fc.value_mean == pytest.approx(truth, abs=0.02)
    # The stated uncertainty covers the error (3 sd, plus a little for the noise).
    assert abs(fc.value_mean - truth) <= 3 * fc.value_std + 0.005


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_NAMES)
def test_every_family_is_non_decreasing_within_its_bounds(family):
    """The forecast takes the best value up to the horizon as the value there."""
    rng = np.random.default_rng(7)
    lo, hi = np.asarray(family.lower), np.asarray(family.upper)
    x = np.arange(1, 501, dtype=float)
    for _ in range(200):
        p = lo + (hi - lo) * rng.random(len(lo))
        with np.errstate(all="ignore"):
            y = family.fn(x, *p)
        y = y[np.isfinite(y)]
        assert np.all(np.diff(y) >= -1e-12), p


@pytest.mark.parametrize("family", FAMILIES, ids=FAMILY_NAMES)
def test_analytic_jacobians_match_central_differences(family):
    rng = np.random.default_rng(9)
    lo, hi = np.asarray(family.lower), np.asarray(family.upper)
    x = np.array([1.0, 2.0, 7.0, 30.0, 200.0])
    for _ in range(20):
        # Inside the bounds, away from them by more than the step.
        p = lo + (hi - lo) * (0.05 + 0.9 * rng.random(len(lo)))
        jac = family.jac(x, *p)
        assert jac.shape == (len(x), len(p))
        for j in range(len(p)):
            h = 1e-6 * max(abs(p[j]), 1.0)
            up, down = p.copy(), p.copy()
            up[j] += h
            down[j] -= h
            diff = (family.fn(x, *up) - family.fn(x, *down)) / (2 * h)
            np.testing.assert_allclose(jac[:, j], diff, rtol=1e-4, atol=1e-7)


def test_janoschek_and_weibull_are_one_family_and_predict_alike():
    """The delta method does not depend on the parametrisation (why it was chosen)."""
    y = noisy("weibull", 3, sd=0.02)[:15]
    x = X[:15]
    jan = curves._predict(fit_family(BY_NAME["janoschek"], x, y), 1.0, 15, 60)
    wei = curves._predict(fit_family(BY_NAME["weibull"], x, y), 1.0, 15, 60)
    assert jan.at_horizon == pytest.approx(wei.at_horizon, abs=1e-4)
    assert math.sqrt(jan.var_horizon) == pytest.approx(math.sqrt(wei.var_horizon), rel=0.02)


def test_noise_and_uncertainty_are_estimated():
    y = np.clip(curve("exp3") + np.random.default_rng(5).normal(0, 0.02, 60), 0, 1)
    early, late = forecast_curve(X[:15], y[:15], 200), forecast_curve(X, y, 200)
    assert late.noise_std == pytest.approx(0.02, abs=0.005)
    assert late.value_std < early.value_std
    assert forecast_curve(X, curve("exp3"), 200).value_std < 1e-3
    # Cut to [0, 1]: a standard deviation of a fraction is at most 0.5.
    assert 0.0 <= early.value_std <= 0.5


def test_probabilities_are_probabilities_and_follow_the_level():
    fc = forecast_curve(X[:20], noisy("mmf", 1, sd=0.02)[:20], 200)
    levels = np.linspace(-0.5, 1.5, 41)
    probs = [fc.prob_best_above(level) for level in levels]
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert all(a >= b - 1e-12 for a, b in zip(probs, probs[1:], strict=False))
    assert probs[0] == pytest.approx(1.0) and probs[-1] == pytest.approx(0.0)
    gains = [fc.prob_gain_above(r) for r in (0.0, 0.01, 0.05, 0.2)]
    assert all(a >= b for a, b in zip(gains, gains[1:], strict=False))


def test_rising_curve_likely_gains_and_saturated_curve_does_not():
    rising = forecast_curve(X[:12], curve("exp3")[:12], 200)
    flat = forecast_curve(X, noisy("exp3", 2), 200)
    assert rising.gain_mean > 0.05 and rising.prob_gain_above(0.05) > 0.9
    assert flat.gain_mean < 0.005 and flat.prob_gain_above(0.05) < 0.05
    assert rising.now_mean == pytest.approx(float(curve("exp3")[11]), abs=0.005)
    assert rising.curve[0] == rising.now_mean and len(rising.curve) == 200 - 12 + 1


@pytest.mark.parametrize(
    ("epochs", "values", "horizon", "why"),
    [
        ([], [], 60, "0 points"),
        ([1, 2, 3], [0.1, 0.2, 0.3], 60, "3 points"),
        (list(range(1, 11)), [0.4] * 10, 60, "constant"),
        (list(range(1, 11)), [0.1 * i for i in range(1, 11)], 5, "horizon"),
        (list(range(1, 11)), [10.0 * i for i in range(1, 11)], 60, "outside [0, 1]"),
        (list(range(1, 11)), [math.nan] * 10, 60, "0 points"),
    ],
)
def test_odd_inputs_give_a_forecast_that_is_not_meaningful(epochs, values, horizon, why):
    fc = forecast_curve(epochs, values, horizon)
    assert not fc.meaningful and why in fc.why
    assert math.isnan(fc.value_mean) and math.isnan(fc.prob_best_above(0.5))
    assert math.isnan(fc.prob_gain_above(0.01))


def test_bad_pairs_are_left_out_and_epochs_sorted():
    y = noisy("janoschek", 4)[:12]
    clean = forecast_curve(X[:12], y, 60)
    messy_e = [5, 0, -3, *X[:12][::-1], 13]
    messy_v = [0.9, 0.9, 0.9, *y[::-1], None]
    # A repeated epoch keeps its last value: epoch 5's 0.9 is overwritten by y[4].
    messy = forecast_curve(messy_e, messy_v, 60)
    assert messy.meaningful and messy.n_points == 12
    assert messy.value_mean == clean.value_mean and messy.value_std == clean.value_std
    odd = forecast_curve([*X[:12], 13, 14, 15], [*y, math.inf, "x", math.nan], 60)
    assert odd.value_mean == clean.value_mean


def test_memoized_and_deterministic():
    y = tuple(noisy("log_power", 6)[:25])
    first = forecast_curve(X[:25], y, 100)
    assert forecast_curve(list(X[:25]), list(y), 100) is first  # a cache hit
    curves.clear_cache()
    again = forecast_curve(X[:25], y, 100)
    assert again is not first
    assert (again.value_mean, again.value_std, again.curve, again.weights) == (
        first.value_mean, first.value_std, first.curve, first.weights)
    assert again.prob_gain_above(0.01) == first.prob_gain_above(0.01)


def test_very_short_and_wild_inputs_never_raise():
    rng = np.random.default_rng(11)
    for n in range(MIN_POINTS, MIN_POINTS + 6):
        for _ in range(3):
            y = rng.random(n)
            fc = forecast_curve(np.arange(1, n + 1), y, 60)
            if fc.meaningful:
                assert 0.0 <= fc.value_mean <= 1.0 and math.isfinite(fc.value_std)
                assert 0.0 <= fc.prob_gain_above(0.01) <= 1.0
    spike = [0.0] * 9 + [1.0]
    assert forecast_curve(range(1, 11), spike, 60).n_points == 10


@pytest.mark.parametrize("name", ["exp3", "mmf"])
def test_delta_method_spread_matches_refits_on_fresh_noise(name):
    """The stated sd of a fitted value at the horizon is the scatter of that value
    over fits to new noise: within a factor 1.6 of 40 refits' sd."""
    x, n, sd = X[:20], 20, 0.02
    rng = np.random.default_rng(8)
    fam = BY_NAME[name]
    at_h, stated = [], []
    for _ in range(40):
        y = np.clip(curve(name)[:n] + rng.normal(0.0, sd, n), 0.0, 1.0)
        pred = curves._predict(fit_family(fam, x, y), 1.0, n, 60)
        at_h.append(pred.at_horizon)
        stated.append(math.sqrt(pred.var_horizon))
    ratio = float(np.median(stated)) / float(np.std(at_h))
    assert 1 / 1.6 < ratio < 1.6
