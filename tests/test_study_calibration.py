"""The forecast's calibration (greensed.study.calibration): the power of its AR(1)
factor is chosen per fold on the other seeds' forecasts and judged on the held-out
seed's, by hand arithmetic on hand-made checks."""

from __future__ import annotations

import pytest

from greensed.stopping.curve_noise import AUTOCORR_POWER
from greensed.study.calibration import (
    Check,
    calibration_tables,
    choose_power,
    coverage,
    miscalibration,
)


def checks(seed: int, in95: bool, split: float) -> list[Check]:
    """Two forecasts of one run of ``seed``: covered by the 95 % interval or not, with
    ``split`` of the realised value's mass in the central 50 %."""
    return [Check(f"run{seed}", seed, epoch, 20, in95, split > 0, split, 0.5, True)
            for epoch in (12, 16)]


# power 0: seeds 1 and 2 calibrated, seed 3 missed; power 1: wide everywhere
BY_POWER = {
    0.0: checks(1, True, 0.5) + checks(2, True, 0.5) + checks(3, False, 0.0),
    1.0: checks(1, True, 1.0) + checks(2, True, 1.0) + checks(3, True, 0.5),
}


def test_miscalibration_by_hand():
    assert miscalibration(BY_POWER[0.0][:4]) == pytest.approx(0.05)  # 100 % and 50 %
    assert miscalibration(BY_POWER[1.0][:4]) == pytest.approx(0.05 + 0.5)
    assert miscalibration([]) == float("inf")


def test_each_seed_is_judged_under_the_power_chosen_without_it():
    held = choose_power(BY_POWER)
    # seed 3 out (seeds 1, 2): power 0 misses by 0.05, power 1 by 0.55 -> 0
    # seed 1 out (seeds 2, 3): power 0: 95 % cover 50 %, 50 % cover 25 % -> 0.45 + 0.25;
    #   power 1: 100 % and 75 % -> 0.05 + 0.25 -> 1; seed 2 out: the same -> 1
    assert held.chosen == ((1, 1.0), (2, 1.0), (3, 0.0))
    assert [(c.seed, c.in50_split) for c in held.checks] == [
        (1, 1.0), (1, 1.0), (2, 1.0), (2, 1.0), (3, 0.0), (3, 0.0)]
    assert coverage(held.checks) == pytest.approx((4 / 6, 4 / 6, 4 / 6))
    # every run: power 0 misses by (0.95 - 2/3) + (0.5 - 1/3) = 0.45, power 1 by
    # 0.05 + (2.5/3 - 0.5) = 0.383 -> 1
    assert held.final == 1.0
    title = calibration_tables(held)[0].title
    assert "each seed held out once (power chosen without it: 1: 1; 2: 1; 3: 0)" in title


def test_one_seed_has_no_folds_and_keeps_the_shipped_power():
    one = {p: [c for c in cs if c.seed == 1] for p, cs in BY_POWER.items()}
    held = choose_power(one)
    assert held.chosen == () and held.final == AUTOCORR_POWER
    notes = calibration_tables(held)[0].notes
    assert any("one seed: no folds" in n for n in notes)
