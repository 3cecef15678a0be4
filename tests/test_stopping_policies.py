"""Stopping policies on synthetic histories: each policy, each edge case."""

from __future__ import annotations

import dataclasses
import math

import pytest

from greensed.errors import ConfigError
from greensed.runlog import EpochRecord
from greensed.stopping import (
    AllOf,
    AnyOf,
    Budget,
    Marginal,
    MaxEpochs,
    Plateau,
    Target,
)


def history(f1s, energies=None, key="teacher_f1"):
    """Epoch records as in docs/runlog.md; energies default to 0.01 kWh each."""
    energies = energies if energies is not None else [0.01] * len(f1s)
    out, cum = [], 0.0
    for i, (f1, e) in enumerate(zip(f1s, energies, strict=True)):
        cum = None if (e is None or cum is None) else cum + e
        out.append(EpochRecord(epoch=i + 1, metrics={key: f1}, energy_kwh=e, cumulative_kwh=cum))
    return out


def first_stop(policy, records):
    """The 1-based epoch after which the policy first says stop (None: never)."""
    for n in range(1, len(records) + 1):
        if policy.decide(records[:n]).stop:
            return n
    return None


# --- plateau ---------------------------------------------------------------


def test_plateau_stops_after_patience_epochs_without_improvement():
    p = Plateau(patience=3)
    rec = history([0.1, 0.2, 0.3, 0.29, 0.3, 0.25, 0.4])
    assert first_stop(p, rec) == 6  # epochs 4, 5, 6 fail to beat 0.3
    d = p.decide(rec[:6])
    assert d.policy == "plateau"
    assert "teacher_f1" in d.reason and "3 epochs" in d.reason and "at epoch 3" in d.reason
    assert "0.3" in d.reason


def test_plateau_ties_are_not_improvements():
    assert first_stop(Plateau(patience=2), history([0.5, 0.5, 0.5])) == 3


def test_plateau_min_delta_requires_strictly_more():
    p = Plateau(patience=2, min_delta=0.01)
    # +0.01 exactly is not enough, +0.02 is.
    assert first_stop(p, history([0.5, 0.51, 0.505])) == 3
    assert first_stop(p, history([0.5, 0.52, 0.53, 0.545])) is None
    assert "by more than 0.01" in p.decide(history([0.5, 0.51, 0.505])).reason


def test_plateau_reason_names_a_higher_value_below_min_delta():
    """0.51 beats 0.5 by only 0.01: the reference stays epoch 1, and the reason also
    names the highest value, the summary's best epoch."""
    d = Plateau(patience=2, min_delta=0.01).decide(history([0.5, 0.51, 0.505]))
    assert d.reason.endswith("(best 0.5 at epoch 1; highest 0.51 at epoch 2)")
    d = Plateau(patience=2, min_delta=0.01).decide(history([0.5, 0.49, 0.5]))
    assert d.reason.endswith("(best 0.5 at epoch 1)")  # a tie is not higher


def test_plateau_mode_min():
    p = Plateau(metric="loss", mode="min", patience=2)
    assert first_stop(p, history([3.0, 2.0, 2.5, 2.0], key="loss")) == 4
    assert first_stop(p, history([3.0, 2.0, 1.5, 1.0], key="loss")) is None


def test_plateau_warmup_epochs_are_ignored():
    # Without warm-up: stops at epoch 3. With 3 warm-up epochs, the high
    # warm-up value 0.9 is not the best to beat, and counting starts at epoch 4.
    rec = history([0.9, 0.1, 0.1, 0.2, 0.3, 0.3, 0.3])
    assert first_stop(Plateau(patience=2), rec) == 3
    assert first_stop(Plateau(patience=2, warmup_epochs=3), rec) == 7


def test_plateau_nan_and_none_count_as_no_improvement():
    p = Plateau(patience=2)
    assert not p.decide(history([0.5, float("nan")])).stop
    assert first_stop(p, history([0.5, float("nan"), None])) == 3
    # A NaN never becomes the best: a finite value after it is compared to 0.5.
    assert first_stop(p, history([0.5, float("nan"), 0.6, 0.55])) is None


def test_plateau_all_nan_reports_no_best():
    d = Plateau(patience=2).decide(history([None, float("nan")]))
    assert d.stop and "best none" in d.reason


def test_plateau_empty_history_continues():
    assert not Plateau(patience=1).decide([]).stop


# --- budget ----------------------------------------------------------------


def test_budget_stops_before_an_epoch_that_would_overrun():
    b = Budget(0.05)
    rec = history([0.1] * 10, [0.012] * 10)
    # After 3 epochs: 0.036 + 0.012 = 0.048 <= 0.05 -> go; after 4: 0.06 > 0.05.
    assert first_stop(b, rec) == 4
    d = b.decide(rec[:4])
    assert d.policy == "budget" and "0.05" in d.reason and "predicted" in d.reason
    spent_at_stop = rec[3].cumulative_kwh
    assert spent_at_stop <= 0.05


def test_budget_uses_max_of_last_three_epochs():
    # Last three 0.01, 0.03, 0.01: prediction 0.03 (not the last, 0.01).
    rec = history([0.1] * 4, [0.01, 0.01, 0.03, 0.01])
    assert Budget(0.08).decide(rec).stop  # 0.06 + 0.03 = 0.09 > 0.08
    assert not Budget(0.09).decide(rec).stop  # exactly on budget is allowed
    # The first epoch (0.01) is outside the last three.
    rec = history([0.1] * 4, [0.05, 0.01, 0.01, 0.01])
    assert not Budget(0.09).decide(rec).stop


def test_budget_exactly_hit_with_float_rounding():
    rec = history([0.1] * 3, [0.1, 0.1, 0.1])  # cumulative 0.30000000000000004
    assert rec[-1].cumulative_kwh > 0.3
    assert not Budget(0.4).decide(rec).stop  # 0.3 + 0.1 == 0.4 within rounding
    d = Budget(0.3).decide(rec)
    assert d.stop and "spent" in d.reason


def test_budget_smaller_than_one_epoch():
    b = Budget(0.001)
    assert not b.decide([]).stop  # nothing known before the first epoch
    d = b.decide(history([0.1], [0.01]))
    assert d.stop and d.policy == "budget"


def test_budget_uses_cumulative_including_lost_energy():
    rec = history([0.1, 0.1], [0.01, 0.01])
    # 0.03 kWh of a crashed partial epoch in the cumulative figure
    rec[-1] = dataclasses.replace(rec[-1], cumulative_kwh=0.05)
    assert Budget(0.055).decide(rec).stop
    assert not Budget(0.06).decide(rec).stop


def test_budget_energy_unavailable_stops_with_reason():
    rec = history([0.1, 0.2], [0.01, None])
    d = Budget(1.0).decide(rec)
    assert d.stop and d.policy == "budget"
    assert "unavailable" in d.reason and "epoch 2" in d.reason
    assert Budget(1.0).decide(history([0.1], [float("nan")])).stop
    assert Budget(1.0).requires_energy


@pytest.mark.parametrize("bad", [0.0, -1.0, math.inf, math.nan])
def test_budget_rejects_non_positive(bad):
    with pytest.raises(ConfigError, match=r"stop policy 'budget': kwh = .* must be"):
        Budget(bad)


# --- target ----------------------------------------------------------------


def test_target_stops_when_reached():
    t = Target(0.5)
    rec = history([0.3, 0.49, None, 0.5, 0.2])
    assert first_stop(t, rec) == 4
    d = t.decide(rec[:4])
    assert d.policy == "target" and "0.5" in d.reason and "epoch 4" in d.reason


def test_target_mode_min():
    t = Target(1.0, metric="loss", mode="min")
    assert first_stop(t, history([2.0, 1.5, 0.9], key="loss")) == 3


# --- marginal --------------------------------------------------------------


def test_marginal_stops_when_gain_per_kwh_falls_below():
    # window 2, 0.1 kWh per epoch: rate = gain over 2 epochs / 0.2 kWh.
    m = Marginal(0.1, window=2)
    f1s = [0.10, 0.30, 0.40, 0.45, 0.46, 0.465]
    rec = history(f1s, [0.1] * 6)
    # n=3: (0.40-0.10)/0.2=1.5; n=4: (0.45-0.30)/0.2=0.75; n=5: (0.46-0.40)/0.2=0.3;
    # n=6: (0.465-0.45)/0.2=0.075 < 0.1 -> stop.
    assert first_stop(m, rec) == 6
    d = m.decide(rec)
    assert d.policy == "marginal" and "per kWh" in d.reason and "0.075" in d.reason


def test_marginal_needs_window_plus_one_epochs():
    m = Marginal(10.0, window=3)
    flat = history([0.5] * 4, [0.1] * 4)
    assert not m.decide(flat[:3]).stop
    assert m.decide(flat).stop


def test_marginal_warmup():
    m = Marginal(10.0, window=1, warmup_epochs=3)
    rec = history([0.5] * 5, [0.1] * 5)
    assert first_stop(m, rec) == 4


def test_marginal_energy_unavailable():
    d = Marginal(0.1, window=1).decide(history([0.1, 0.2], [0.1, None]))
    assert d.stop and "unavailable" in d.reason


def test_marginal_ignores_nan_metric():
    m = Marginal(0.1, window=1)
    rec = history([0.2, float("nan"), 0.5], [0.1, 0.1, 0.1])
    assert not m.decide(rec).stop  # best 0.5 vs best-before 0.2: 3 F1/kWh
    assert not m.decide(history([None, 0.2], [0.1, 0.1])).stop  # no baseline yet


# --- max epochs and composition ------------------------------------------


def test_max_epochs():
    m = MaxEpochs(3)
    assert first_stop(m, history([0.1] * 5)) == 3
    assert m.decide(history([0.1] * 3)).reason == "max-epochs: reached the 3-epoch cap"


def test_max_epochs_uses_epoch_numbers_of_a_resumed_run():
    rec = history([0.1] * 3)
    assert MaxEpochs(3).decide(rec[2:]).stop  # one record, but it is epoch 3


def test_any_of_names_every_policy_that_fired():
    p = AnyOf([Plateau(patience=1), Target(0.5), MaxEpochs(10)])
    rec = history([0.6, 0.6])
    d = p.decide(rec)
    assert d.stop and d.policy == "plateau"
    assert "plateau:" in d.reason and "target:" in d.reason and "max-epochs" not in d.reason
    assert not p.decide(history([0.1, 0.2])).stop


def test_all_of_needs_every_vote_but_the_cap_stops_alone():
    p = AllOf([Plateau(patience=1), Target(0.5), MaxEpochs(4)])
    assert not p.decide(history([0.6, 0.7])).stop  # target yes, plateau no
    assert not p.decide(history([0.3, 0.3])).stop  # plateau yes, target no
    d = p.decide(history([0.6, 0.6]))
    assert d.stop and d.policy == "plateau+target"
    d = p.decide(history([0.1, 0.2, 0.3, 0.4]))
    assert d.stop and d.policy == "max-epochs"


def test_composites_require_energy_if_a_child_does():
    assert AnyOf([Plateau(), Budget(1.0)]).requires_energy
    assert not AllOf([Plateau(), MaxEpochs(3)]).requires_energy


def test_decisions_are_pure():
    """Same history, same decision, in any call order (resume/replay exactness)."""
    p = AnyOf([Plateau(patience=2), Budget(0.05), Marginal(0.5, window=2), MaxEpochs(9)])
    rec = history([0.1, 0.3, 0.35, 0.36, 0.36, 0.2, 0.4, 0.4], [0.004] * 8)
    forward = [p.decide(rec[:n]) for n in range(1, 9)]
    backward = [p.decide(rec[:n]) for n in range(8, 0, -1)][::-1]
    assert forward == backward


def test_plateau_gain_of_exactly_min_delta_is_not_an_improvement_despite_rounding():
    """0.14 - 0.12 is 0.020000000000000018 in floats: still not *more* than 0.02."""
    p = Plateau(patience=1, min_delta=0.02)
    starts = [round(0.01 * i, 2) for i in range(1, 97)]
    exact = [a for a in starts if not p.decide(history([a, round(a + 0.02, 2)])).stop]
    assert exact == []
    more = [a for a in starts if p.decide(history([a, round(a + 0.021, 3)])).stop]
    assert more == []  # a gain above min_delta is an improvement


def test_a_one_epoch_wait_reads_singular():
    from greensed.stopping.policies import Plateau

    hist = [EpochRecord(epoch=i + 1, metrics={"teacher_f1": v}) for i, v in
            enumerate([0.5, 0.4])]
    d = Plateau(metric="teacher_f1", patience=1).decide(hist)
    assert d.stop and " for 1 epoch (best " in d.reason
