"""Held-out test scores (``[eval] test``): kept in EpochRecord.test, apart from the
validation metrics, and read by no decision: no policy, forecast, objective or
best-epoch rule changes when only the test scores change."""

from __future__ import annotations

import dataclasses
import math

import pytest

from greensed.runlog import EpochRecord
from greensed.runlog.flat import flat_epoch
from greensed.stopping import best_record, make_policy, predict_run

SPECS = ("plateau:patience=3", "plateau:patience=2,min_delta=0.01", "budget:kwh=0.2",
         "target:f1=0.55", "marginal:rate=0.5", "forecast", "default", "max-epochs")
WATCHED = ("teacher_f1", "student_f1", "objective")
N = 30


def history(test_of=None) -> list[EpochRecord]:
    """A rising, then flat, noisy validation curve; the test scores from ``test_of``."""
    out = []
    for e in range(1, N + 1):
        v = 0.6 * (1 - math.exp(-e / 6)) + 0.01 * math.sin(3 * e)
        metrics = {"teacher_f1": v, "student_f1": v - 0.02, "objective": v + 0.5}
        out.append(EpochRecord(epoch=e, steps=10 * e, metrics=metrics, duration_s=60.0,
                               energy_kwh=0.01, cumulative_kwh=0.01 * e,
                               test=test_of(e, v) if test_of else {}))
    return out


def adversarial(e: int, v: float) -> dict[str, float]:
    # Test scores that would change every decision if read: the opposite curve,
    # under the very names the policies watch.
    return {"teacher_f1": 1.0 - v, "student_f1": 1.0 - v, "objective": 2.0 - v,
            "cumulative_kwh": 100.0 * e, "energy_kwh": 50.0}


def decisions(spec: str, metric: str, hist: list[EpochRecord]) -> list[tuple]:
    policy = make_policy(spec, max_epochs=N, metric=metric)
    return [dataclasses.astuple(policy.decide(hist[:k])) for k in range(1, N + 1)]


@pytest.mark.parametrize("metric", WATCHED)
def test_no_policy_forecast_or_best_epoch_rule_reads_the_test_scores(metric):
    plain, scored = history(), history(adversarial)
    for spec in SPECS:
        assert decisions(spec, metric, scored) == decisions(spec, metric, plain), spec
    assert best_record(scored, metric, "max").epoch == best_record(plain, metric, "max").epoch
    assert best_record(scored, metric, "min").epoch == best_record(plain, metric, "min").epoch
    for k in (5, 15, N):
        assert predict_run(scored[:k], metric=metric, max_epochs=N).as_dict() == \
            predict_run(plain[:k], metric=metric, max_epochs=N).as_dict()


def test_a_key_only_in_test_is_no_metric():
    rec = EpochRecord(epoch=1, test={"teacher_f1": 0.9, "student_psds1": 0.4})
    for key in ("teacher_f1", "student_psds1", "test.teacher_f1", "test"):
        assert rec.metric(key) is None
    assert best_record([rec], "teacher_f1", "max") is None


def test_the_record_keeps_test_scores_and_old_logs_read():
    rec = EpochRecord(epoch=3, metrics={"teacher_f1": 0.5},
                      test={"student_f1": 0.4, "teacher_f1": 0.45}, test_s=2.5)
    back = EpochRecord.from_json(rec.to_json())
    assert back.test == {"student_f1": 0.4, "teacher_f1": 0.45} and back.test_s == 2.5
    old = EpochRecord.from_json({"schema": 1, "epoch": 1, "metrics": {"teacher_f1": 0.5}})
    assert old.test == {} and old.test_s is None
    row = flat_epoch(back)  # epochs.csv: their own columns, never a metric's
    assert (row["test_student_f1"], row["test_teacher_f1"], row["test_s"]) == (0.4, 0.45, 2.5)
    assert row["teacher_f1"] == 0.5
