"""The forecast stopping policy and predict_run on synthetic histories."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from greensed.errors import ConfigError
from greensed.runlog import EpochRecord
from greensed.stopping import Forecast, predict_run
from greensed.stopping.curve_noise import forecast_best
from greensed.stopping.curves import MIN_POINTS, clear_cache, forecast_curve

KEY = "teacher_f1"


def history(f1s, energies=None, durations=None, key=KEY):
    """Epoch records as in docs/runlog.md; 0.005 kWh and 30 s per epoch by default."""
    n = len(f1s)
    energies = [0.005] * n if energies is None else energies
    durations = [30.0] * n if durations is None else durations
    out, cum = [], 0.0
    for i, (f1, e, d) in enumerate(zip(f1s, energies, durations, strict=True)):
        cum = None if (e is None or cum is None) else cum + e
        out.append(EpochRecord(epoch=i + 1, metrics={key: f1}, energy_kwh=e,
                               cumulative_kwh=cum, duration_s=d))
    return out


def saturating(n, asymptote=0.6, tau=10.0, sd=0.02, seed=1):
    """asymptote - 0.55 exp(-epoch / tau), plus Gaussian noise, in [0, 1]."""
    x = np.arange(1, n + 1)
    y = asymptote - 0.55 * np.exp(-x / tau)
    return list(np.clip(y + np.random.default_rng(seed).normal(0, sd, n), 0, 1))


def first_stop(policy, records):
    for n in range(1, len(records) + 1):
        if policy.decide(records[:n]).stop:
            return n
    return None


def values_of(records, key=KEY):
    return [r.epoch for r in records], [r.metrics[key] for r in records]


def test_name_and_energy_need():
    p = Forecast()
    assert p.name == "forecast" and p.requires_energy is True


def test_stops_a_saturated_noisy_curve_long_before_the_cap_near_its_asymptote():
    records = history(saturating(120))
    n = first_stop(Forecast(max_epochs=200), records)
    assert n is not None and 20 <= n <= 80
    true_now = 0.6 - 0.55 * math.exp(-n / 10)
    assert true_now > 0.6 * 0.98  # stopped within 2 % of the asymptote


def test_keeps_going_while_the_curve_still_rises():
    records = history(saturating(30, tau=80.0, sd=0.01))
    assert first_stop(Forecast(max_epochs=200), records) is None


def test_reason_gives_the_forecast_numbers():
    records = history(saturating(120))
    policy = Forecast(max_epochs=200, min_gain_per_kwh=0.0)
    n = first_stop(policy, records)
    d = policy.decide(records[:n])
    assert d.stop and d.policy == "forecast"
    fc = forecast_curve(*values_of(records[:n]), 200)
    best = forecast_best(*values_of(records[:n]), 200)
    assert d.reason.startswith(
        f"forecast: by epoch 200, best {KEY} observed {best.predicted_best:.3f} (95 % "
        f"{best.lo95:.3f}-{best.hi95:.3f}), curve {best.curve_at_horizon:.3f} (95 % "
        f"{best.curve_lo95:.3f}-{best.curve_hi95:.3f}) for ")
    assert f"{(200 - n) * 0.005:.2g} kWh more" in d.reason
    assert f"fitted now {fc.now_mean:.3f}" in d.reason
    assert f"P(curve > 1.01 x now) = {best.prob_curve_gain_above(0.01):.3f} < 0.05" in d.reason
    assert policy.forecasts(records[:n]) == best


def test_the_price_of_energy_decides():
    """A still rising curve: dear energy stops it, cheap energy does not."""
    records = history(saturating(30, tau=25.0, sd=0.01))
    dear = Forecast(max_epochs=200, min_prob=0.0, min_epochs=10)
    assert first_stop(dear, history(values_of(records)[1], energies=[5.0] * 30)) == 10
    assert first_stop(dear, history(values_of(records)[1], energies=[1e-4] * 30)) is None
    d = dear.decide(history(values_of(records)[1], energies=[5.0] * 30)[:10])
    assert "per kWh < 0.1" in d.reason and "by epoch 11 for 5 kWh" in d.reason


def test_gain_per_kwh_is_the_best_over_stopping_epochs_not_the_average_to_the_cap():
    """A curve about to saturate: the next epochs pay, the whole way to the cap does not."""
    records = history(saturating(14, tau=6.0, sd=0.005))
    fc = forecast_curve(*values_of(records), 200)
    curve = np.asarray(fc.curve)
    per_epoch = 0.005
    steps = np.arange(1, len(curve))
    rates = (curve[1:] - curve[0]) / (steps * per_epoch)
    to_cap, best = rates[-1], rates.max()
    assert best > 2 * to_cap  # the case this test is about
    between = Forecast(max_epochs=200, min_prob=0.0, min_gain_per_kwh=(to_cap + best) / 2)
    above = Forecast(max_epochs=200, min_prob=0.0, min_gain_per_kwh=1.01 * best)
    assert not between.decide(records).stop
    d = above.decide(records)
    assert d.stop and f"by epoch {fc.last_epoch + 1 + int(np.argmax(rates))} " in d.reason


def fuzz_histories():
    rng = np.random.default_rng(3)
    n = 20
    out = {
        "noise": list(rng.random(n)),
        "non-monotone": list(0.3 + 0.2 * np.sin(np.arange(n))),
        "falling": list(np.linspace(0.6, 0.1, n)),
        "constant": [0.42] * n,
        "zeros": [0.0] * n,
        "all-null": [None] * n,
        "nan-none-mix": [v if i % 3 else (None if i % 2 else math.nan)
                         for i, v in enumerate(saturating(n))],
        "short": saturating(4),
    }
    return out


@pytest.mark.parametrize("min_epochs", [1, 8, 15])
def test_never_stops_before_min_epochs_nor_on_odd_histories(min_epochs):
    """Thresholds that stop whenever allowed: the first stop is at min_epochs at the
    earliest, and never while the fit is not meaningful."""
    eager = Forecast(max_epochs=60, min_epochs=min_epochs, min_prob=1.0, rel_gain=10.0)
    for name, f1s in fuzz_histories().items():
        records = history(f1s)
        n = first_stop(eager, records)
        finite = [v for v in f1s if v is not None and math.isfinite(v)]
        if name in ("constant", "zeros", "all-null", "short"):
            assert n is None, name
            continue
        assert n is not None and n >= min_epochs, name
        meaningful_from = next(k for k in range(1, len(records) + 1)
                               if forecast_curve(*values_of(records[:k]), 60).meaningful)
        assert n == max(min_epochs, meaningful_from), name
        assert len(finite) >= MIN_POINTS


def test_never_stops_at_or_after_the_cap():
    records = history(saturating(30))
    eager = Forecast(max_epochs=25, min_epochs=1, min_prob=1.0, rel_gain=10.0)
    assert eager.decide(records[:24]).stop
    assert not eager.decide(records[:25]).stop and not eager.decide(records).stop


def test_pure_same_history_same_decision_and_history_untouched():
    records = history(saturating(30, tau=5.0))
    policy = Forecast(max_epochs=200, min_gain_per_kwh=0.0)
    before = copy.deepcopy(records)
    first = [policy.decide(records[:n]) for n in range(1, 31)]
    again = [policy.decide(records[:n]) for n in range(1, 31)]
    on_copy = [policy.decide(copy.deepcopy(records[:n])) for n in range(1, 31)]
    assert first == again == on_copy
    assert records == before
    assert any(d.stop for d in first)  # the comparison covers stop decisions too


@pytest.mark.slow  # 1-2 s: the whole suite only, so that make test-fast stays under a minute
def test_live_decisions_equal_replayed_decisions():
    """Live: one list grows and is asked after each epoch. Replay: prefixes of the
    log as read back from JSON, in another order, with the memo cleared."""
    f1s = saturating(24, tau=4.0, seed=4)
    f1s[7] = math.nan  # written as null, read back as None
    policies = [Forecast(max_epochs=200), Forecast(max_epochs=200, min_gain_per_kwh=0.0),
                Forecast(max_epochs=100, warmup_epochs=3, rel_gain=0.02)]
    full = history(f1s)
    live: list[EpochRecord] = []
    live_decisions = []
    for rec in full:
        live.append(rec)
        live_decisions.append([p.decide(live) for p in policies])
    text = "\n".join(json.dumps({"schema": 1, **r.to_json()}) for r in full).replace(
        "NaN", "null")
    replayed_log = [EpochRecord.from_json(json.loads(line)) for line in text.splitlines()]
    clear_cache()
    replay = {n: [p.decide(replayed_log[:n]) for p in policies] for n in range(24, 0, -1)}
    assert [replay[n] for n in range(1, 25)] == live_decisions
    assert any(d.stop for ds in live_decisions for d in ds)


def test_energy_unavailable_stops_only_when_energy_is_needed():
    f1s = saturating(30)
    no_energy = history(f1s, energies=[0.005] * 20 + [None] * 10)
    d = Forecast(max_epochs=200, min_prob=0.0).decide(no_energy)
    assert d.stop and "energy unavailable (no energy_kwh in the last 5 epochs)" in d.reason
    assert not Forecast(max_epochs=200, min_gain_per_kwh=0.0, min_prob=0.0).decide(no_energy).stop
    # One missing reading among the last five is priced from the other four.
    one_gap = history(f1s, energies=[0.005] * 29 + [None])
    assert "unavailable" not in Forecast(max_epochs=200).decide(one_gap).reason


def test_energy_per_epoch_is_the_recent_median():
    energies = [0.001] * 20 + [0.004, 0.004, 0.04, 0.004, 0.001]  # median of last 5: 0.004
    records = history(saturating(25), energies=energies)
    d = Forecast(max_epochs=200, min_gain_per_kwh=0.0, min_prob=1.0, rel_gain=10.0).decide(records)
    assert f"for {175 * 0.004:.2g} kWh more" in d.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("metric", ""),
        ("metric", None),
        ("mode", "min"),
        ("max_epochs", 0),
        ("max_epochs", 2.5),
        ("min_gain_per_kwh", -0.1),
        ("min_gain_per_kwh", math.nan),
        ("min_prob", 1.5),
        ("min_prob", -0.01),
        ("rel_gain", -0.01),
        ("rel_gain", math.inf),
        ("min_epochs", 0),
        ("min_epochs", 500),
        ("min_epochs", True),
        ("warmup_epochs", -1),
        ("energy_window", 0),
    ],
)
def test_bad_parameters_are_refused_in_one_line(field, value):
    with pytest.raises(ConfigError) as err:
        Forecast(**{field: value})
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("stop policy 'forecast': ")
    assert f"{field} = {value!r}" in msg


def test_the_edges_are_accepted():
    Forecast(min_gain_per_kwh=0.0, min_prob=0.0, rel_gain=0.0, min_epochs=200,
             max_epochs=200, warmup_epochs=0, energy_window=1)
    Forecast(min_prob=1.0, min_epochs=1, max_epochs=1)


# --- predict_run ---------------------------------------------------------------


def test_predict_run_before_any_epoch():
    p = predict_run([], metric=KEY, max_epochs=200)
    assert (p.epoch, p.epochs_left, p.remaining_kwh, p.metric_at_cap) == (0, 200, None, None)
    assert "200 left" in p.summary() and "energy unknown" in p.summary()
    json.dumps(p.as_dict(), allow_nan=False)


def test_predict_run_energy_and_time_from_recent_medians():
    durations = [30.0] * 7 + [30.0, 31.0, 200.0, 29.0, 30.0]  # median of last 5: 30
    energies = [0.002] * 7 + [0.002, 0.003, 0.02, 0.002, 0.002]  # median of last 5: 0.002
    records = history(saturating(12), energies=energies, durations=durations)
    p = predict_run(records, metric=KEY, max_epochs=200)
    assert p.epoch == 12 and p.epochs_left == 188
    assert p.remaining_kwh == pytest.approx(188 * 0.002)
    assert p.remaining_s == pytest.approx(188 * 30.0)
    fc = forecast_curve(*values_of(records), 200)
    assert (p.metric_at_cap, p.metric_std, p.metric_now) == (fc.value_mean, fc.value_std,
                                                             fc.now_mean)
    assert f"{fc.value_mean:.3f} ± {fc.value_std:.3f}" in p.summary()
    assert "94 min" in p.summary()  # as the epoch line says it (greensed.units)
    json.dumps(p.as_dict(), allow_nan=False)


def test_predict_run_says_why_there_is_no_metric_forecast():
    p = predict_run(history(saturating(3)), metric=KEY, max_epochs=60)
    assert p.metric_at_cap is None and "3 points" in p.why and "3 points" in p.summary()


def test_predict_run_never_raises_on_odd_histories():
    odd = [
        EpochRecord(epoch=1),
        EpochRecord(epoch=2, metrics={KEY: "x"}, energy_kwh=None, duration_s=None),
        EpochRecord(epoch=3, metrics={KEY: math.nan}, energy_kwh=math.inf, duration_s=None),
        EpochRecord(epoch=4, metrics={}, energy_kwh=None),
        EpochRecord(epoch=5, metrics={KEY: 0.3}, energy_kwh=-1.0, duration_s=10.0),
    ]
    for n in range(len(odd) + 1):
        for cap in (0, 1, 5, 200):
            p = predict_run(odd[:n], metric=KEY, max_epochs=cap)
            assert p.epochs_left >= 0
            p.summary()
            json.dumps(p.as_dict(), allow_nan=False)
    for rec in history(saturating(20)) + odd:
        Forecast(max_epochs=60, min_epochs=1).decide([rec])


def test_a_null_last_value_prices_the_epochs_after_the_last_record():
    f1s = saturating(20, tau=25.0, sd=0.005)
    f1s[-1] = None
    d = Forecast(max_epochs=200, min_prob=0.0).decide(history(f1s, energies=[5.0] * 20))
    assert d.stop and "by epoch 21 for 5 kWh" in d.reason
