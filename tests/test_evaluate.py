"""`greensed evaluate`: PSDS via sed_scores_eval on a tiny trained model."""

from __future__ import annotations

import json

import pytest
from helpers import quiet, tiny_config

from greensed.train.evaluate import evaluate
from greensed.train.loop import train

# Trains or spawns trainers: left out of `make test-fast`.
pytestmark = pytest.mark.slow



def test_evaluate_best_checkpoint_writes_psds(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(tiny_dataset, tmp_path / "cache", epochs=1), run, report=quiet)
    res = evaluate(run)
    # greensed protocol watching teacher_f1: the teacher is the model of record.
    assert res["model"] == res["model_of_record"] == "teacher" and res["checkpoint_epoch"] == 1
    # No test subset in the synthetic layout: the validation set, said so; both models.
    assert res["subset"] == "validation" and set(res["models"]) == {"student", "teacher"}
    assert res["psds1"] == res["models"]["teacher"]["psds1"]
    assert 0.0 <= res["models"]["student"]["f1_05"] <= 1.0
    for key in ("psds1", "psds2", "f1"):
        assert 0.0 <= res[key] <= 1.0
    assert res["n_clips"] == 4 and set(res["class_f1"]) and len(res["class_f1"]) == 10
    assert res["eval_energy"]["energy_kwh"] > 0
    assert res["eval_energy"]["energy_methods"] == {"cpu": "constant-power model"}
    assert json.loads((run / "psds.json").read_text())["psds1"] == res["psds1"]
