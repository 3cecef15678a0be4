"""``[eval] test``: after every epoch both models are scored on the held-out test
subset into record.test, and the run trains exactly as it would without."""

from __future__ import annotations

import pytest
from helpers import quiet, tiny_config, tweak

from greensed import runlog
from greensed.data.synth import SynthPreset, generate
from greensed.errors import GreensedError
from greensed.train.loop import train
from greensed.train.validate import TEST_PSDS, TEST_SCORES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def with_test(tmp_path_factory):
    preset = SynthPreset(n_strong=4, n_weak=4, n_unlabelled=4, n_validation=4, n_test=4)
    return generate(tmp_path_factory.mktemp("with-test") / "dataset", preset, seed=0)


def test_test_scores_each_epoch_and_training_unchanged(with_test, tmp_path, one_torch_thread):
    cfg = tiny_config(with_test, tmp_path / "cache")
    train(cfg, tmp_path / "plain", report=quiet)
    train(tweak(cfg, **{"eval.test": True}), tmp_path / "scored", report=quiet)
    plain = runlog.RunDir(tmp_path / "plain").read_epochs()
    scored = runlog.RunDir(tmp_path / "scored").read_epochs()
    for p, s in zip(plain, scored, strict=True):
        assert p.test == {} and p.test_s is None
        assert set(s.test) == set(TEST_SCORES) == {"student_f1", "teacher_f1"}
        assert all(0.0 <= v <= 1.0 for v in s.test.values()) and s.test_s > 0
        # Same steps, losses and validation metrics: scoring the test set changes nothing.
        assert (s.steps, s.loss, s.metrics) == (p.steps, p.loss, p.metrics)
    csv = (tmp_path / "scored" / "epochs.csv").read_text().splitlines()[0].split(",")
    assert {"test_student_f1", "test_teacher_f1", "test_s"} <= set(csv)


def test_without_a_test_subset_it_is_one_error_before_training(tiny_dataset, tmp_path):
    cfg = tweak(tiny_config(tiny_dataset, tmp_path / "cache"), **{"eval.test": True})
    with pytest.raises(GreensedError, match=r"\[eval\] test = true.*no test subset"):
        train(cfg, tmp_path / "run", report=quiet)
    assert not (tmp_path / "run" / "epochs.jsonl").exists()


def test_a_run_scoring_psds_scores_it_on_the_test_subset_too(with_test, tmp_path,
                                                             one_torch_thread):
    cfg = tweak(tiny_config(with_test, tmp_path / "cache"),
                **{"eval.test": True, "validate.psds": True, "train.epochs": 1})
    train(cfg, tmp_path / "run", report=quiet)
    (record,) = runlog.RunDir(tmp_path / "run").read_epochs()
    assert set(record.test) == set(TEST_SCORES) | set(TEST_PSDS)
    assert all(0.0 <= record.test[k] <= 1.0 for k in TEST_PSDS)
    assert record.metric("teacher_psds1") == record.metrics["teacher_psds1"]  # validation's
