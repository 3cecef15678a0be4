"""train.protocol: the baseline's weak split, steps per epoch, validation metrics,
best-epoch rule and model of record, and how configs of every age read it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import tweak
from test_metrics_intersection import _psds_eval_f1, _random_events

from greensed import config as C
from greensed.data.desed import Dataset, Subset
from greensed.errors import ConfigError, DataError
from greensed.metrics.events import Events
from greensed.model.crnn import CRNN
from greensed.recipes import recipe_path
from greensed.runlog import EpochRecord, RunStatus, Summary
from greensed.train import preflight
from greensed.train import protocol as P
from greensed.train.batches import DeviceData, batch_composition, steps_per_epoch
from greensed.train.messages import RunShape, banner, closing
from greensed.train.validate import (
    baseline_f1,
    baseline_weak_f1,
    validate,
    validation_tensors,
)

FIXTURE_CONFIG = Path(__file__).resolve().parent / "fixtures" / "schema1-run" / "config.toml"


# --- configs of every age ----------------------------------------------------------

def test_new_recipes_default_to_baseline_saved_configs_without_the_key_to_greensed():
    assert C.RunConfig().train.protocol == "baseline"
    assert C.load_recipe(recipe_path("paper/bs32.toml")).train.protocol == "baseline"
    assert C.load_recipe(recipe_path("quick.toml")).train.protocol == "greensed"
    # A run directory of an earlier greensed: no protocol key, trained the greensed way.
    old = C.from_toml_text(FIXTURE_CONFIG.read_text(), str(FIXTURE_CONFIG))
    assert old.train.protocol == "greensed"
    assert C.from_toml_text("[train]\nepochs = 3\n", "old").train.protocol == "greensed"
    assert C.from_toml_text("", "old").train.protocol == "greensed"
    # What this version writes says it, and reads back the same.
    for protocol in ("baseline", "greensed"):
        cfg = tweak(C.RunConfig(), **{"train.protocol": protocol})
        assert f'protocol = "{protocol}"' in C.to_toml(cfg)
        assert C.from_toml_text(C.to_toml(cfg), "round trip") == cfg


def test_protocol_is_checked_and_baseline_needs_its_resampler():
    with pytest.raises(ConfigError, match=r"key 'protocol' = 'dcase' is not one of baseline, "
                                          r"greensed"):
        tweak(C.RunConfig(), **{"train.protocol": "dcase"})
    with pytest.raises(ConfigError, match=r"resampler = 'torchaudio' is not the baseline's"):
        tweak(C.RunConfig(), **{"features.resampler": "torchaudio"})
    cfg = tweak(C.RunConfig(), **{"train.protocol": "greensed",
                                  "features.resampler": "torchaudio"})
    assert cfg.features.resampler == "torchaudio"


def test_relative_data_paths_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tweak(C.RunConfig(), **{"data.path": "DESED", "data.cache_dir": "~/c"})
    out = C.with_absolute_paths(cfg)
    assert out.data.path == str(tmp_path / "DESED")
    assert out.data.cache_dir == str(Path("~/c").expanduser())
    assert C.with_absolute_paths(C.RunConfig()).data.path is None  # the embedded set


def test_metrics_of_the_held_out_weak_clips_need_the_baseline_protocol():
    preflight.check_metric("objective", "baseline")
    preflight.check_metric("student_f1_05", "greensed")
    with pytest.raises(ConfigError, match=r"stop.metric = 'objective': computed on the "
                                          r"held-out weak clips, which only \[train\] protocol"):
        preflight.check_metric("objective", "greensed")
    with pytest.raises(ConfigError, match=r"did you mean 'student_weak_f1_heldout'"):
        preflight.check_metric("student_weak_f1_heldot")


def test_best_rule_and_model_of_record():
    base = C.RunConfig()
    assert P.best_rule(base) == ("objective", "max") and P.model_of_record(base) == "student"
    old = tweak(base, **{"train.protocol": "greensed", "stop.metric": "teacher_f1"})
    assert P.best_rule(old) == ("teacher_f1", "max") and P.model_of_record(old) == "teacher"
    assert P.model_of_record(old, "student_f1") == "student"
    lossy = tweak(old, **{"stop.metric": "loss.total", "stop.mode": "min"})
    assert P.best_rule(lossy) == ("loss.total", "min") and P.model_of_record(lossy) == "teacher"


# --- the weak split and the epoch length, through the trainer's own path ----------

def _subset(name: str, n: int, *, weak: bool = True) -> Subset:
    files = [f"Y{name}{i:05d}_0.000_10.000.wav" for i in range(n)]
    return Subset(name, files, np.zeros((n, 1, 1), np.float16),
                  None, np.zeros((n, 10), np.uint8) if weak else None, None,
                  tsv_rows=files if weak else None)


def _desed_sized() -> Dataset:
    """DESED 2022's subset sizes (10,000 strong, 1,578 weak, 14,412 unlabelled)."""
    strong = _subset("s", 10000)
    strong.strong = np.zeros((10000, 1, 1), np.uint8)
    return Dataset(Path("/x"), strong, _subset("w", 1578), _subset("u", 14412, weak=False),
                   _subset("v", 4), skipped_audio=[])


def test_weak_split_of_1578_holds_out_pandas_158_and_epochs_have_118_and_177_steps():
    ds = _desed_sized()
    cfg = tweak(C.RunConfig(), **{"train.seed": 42})
    sets = P.weak_sets(ds, cfg)
    df = pd.DataFrame({"filename": ds.weak.files})
    left_out = df.drop(df.sample(frac=0.9, random_state=42).index)["filename"]
    assert len(sets.heldout) == 158 and set(sets.heldout.files) == set(left_out)
    assert len(sets.train) == 1420 and not set(sets.train.files) & set(sets.heldout.files)
    for batch, steps in ((48, 118), (32, 177)):
        data = DeviceData.from_dataset(ds, torch.device("cpu"), sets.train)
        assert data.sizes() == (10000, 1420, 14412)
        assert steps_per_epoch(data.sizes(), batch_composition(batch)) == steps
    # greensed's protocol trains on every weak clip: 131 steps at batch 48.
    old = P.weak_sets(ds, tweak(cfg, **{"train.protocol": "greensed"}))
    assert old.heldout is None and len(old.train) == 1578
    sizes = DeviceData.from_dataset(ds, torch.device("cpu"), old.train).sizes()
    assert steps_per_epoch(sizes, batch_composition(48)) == 131
    # weak_split_seed, when set, draws the split instead of train.seed.
    other = P.weak_sets(ds, tweak(cfg, **{"data.weak_split_seed": 7}))
    assert set(other.heldout.files) != set(sets.heldout.files)
    assert "1420 weak clips train, 158 held out" in P.describe_split(sets, cfg)


def test_a_split_that_holds_nothing_out_is_one_line():
    ds = _desed_sized()
    ds.weak = _subset("w", 4)  # the tiny test sets: round(0.9 * 4) = 4 train, 0 held out
    with pytest.raises(DataError, match=r"^data.weak_split = 0.9: of 4 weak clips, 4 train and "
                                        r"0 are held out; the baseline protocol needs both"):
        P.weak_sets(ds, C.RunConfig())


# --- the baseline's validation metrics ---------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_baseline_f1_is_psds_eval_macro_f1_at_05(seed):
    det, gt = _random_events(np.random.default_rng(seed), 20)
    _, macro = _psds_eval_f1(det, gt, 20, 0.5, 0.5)
    assert baseline_f1(det, gt, 10.0) == pytest.approx(macro, abs=1e-12)


def test_baseline_f1_drops_classes_without_a_true_positive_and_is_0_without_any():
    gt = Events.from_tuples([(0, 0, 1.0, 3.0), (0, 1, 4.0, 6.0), (1, 2, 0.0, 2.0)])
    det = Events.from_tuples([(0, 0, 1.0, 3.0), (1, 2, 6.0, 8.0), (1, 3, 0.0, 1.0)])
    # Class 0 is perfect (F1 1); classes 1-3 have no TP: psds_eval's NaN, dropped.
    assert baseline_f1(det, gt, 10.0) == 1.0
    assert baseline_f1(Events.from_tuples([]), gt, 10.0) == 0.0


def test_baseline_weak_f1_is_torchmetrics_073_macro():
    labels = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 0]])
    probs = np.array([[0.5, 0.2, 0.1], [0.7, 0.4, 0.0], [0.9, 0.6, 0.3]], dtype=np.float32)
    # >= 0.5 predicts (torchmetrics): class 0 TP 2 FP 1 -> 0.8; class 1 TP 1 FN 1 -> 2/3;
    # class 2 no TP, FP or FN: left out of the macro.
    assert baseline_weak_f1(probs, labels) == pytest.approx((0.8 + 2 / 3) / 2)
    assert baseline_weak_f1(np.zeros((2, 3)), np.zeros((2, 3), int)) == 0.0


def _val_subset(n: int, events: list[tuple[int, int, float, float]]) -> Subset:
    rng = np.random.default_rng(0)
    strong = np.zeros((n, 10, 156), np.uint8)
    for c, k, on, off in events:
        strong[c, k, int(on * 15.625):int(np.ceil(off * 15.625))] = 1
    return Subset("validation", [f"{i}.wav" for i in range(n)],
                  (rng.random((n, 626, 128)) * 3).astype(np.float16), strong,
                  strong.max(axis=2), events, durations_s=[10.0, 4.0, 12.0][:n])


def test_validate_adds_the_held_out_weak_f1_and_the_objective(one_torch_thread):
    torch.manual_seed(0)
    student, teacher = CRNN(), CRNN()
    val = _val_subset(3, [(0, 1, 0.5, 3.0), (1, 4, 1.0, 4.0), (2, 8, 2.0, 9.0)])
    held = Subset("weak_validation", ["a.wav", "b.wav"],
                  np.random.default_rng(1).random((2, 626, 128)).astype(np.float16), None,
                  np.array([[1] + [0] * 9, [0] * 9 + [1]], np.uint8), None)
    cpu = torch.device("cpu")
    tensors = validation_tensors(val, cpu, clip_s=10.0, heldout=held)
    np.testing.assert_array_equal(tensors["durations"], [10.0, 4.0, 10.0])  # capped at clip_s
    out = validate(student, teacher, tensors, C.RunConfig())
    for who in ("student", "teacher"):
        for key in ("f1", "f1_05", "weak_f1", "weak_f1_heldout", "loss_strong"):
            assert np.isfinite(out[f"{who}_{key}"]), (who, key)
    assert out["objective"] == out["student_weak_f1_heldout"] + out["student_f1_05"]
    plain = validate(student, teacher, validation_tensors(val, cpu, clip_s=10.0),
                     C.RunConfig())
    assert "objective" not in plain and "student_weak_f1_heldout" not in plain
    assert plain["student_f1_05"] == out["student_f1_05"]
    assert student.training and teacher.training


# --- what the run log and the console say ------------------------------------------

def test_summary_fields_round_trip_and_old_summaries_read():
    s = Summary(status=RunStatus.FINISHED, best_metric="objective", protocol="baseline",
                model_of_record="student", left_out_audio={"missing": 2, "unreadable": 1},
                skipped_audio=1, clips={"weak_train": 1420, "weak_validation": 158})
    assert Summary.from_json(s.to_json()) == s
    old = Summary.from_json({"schema": 1, "status": "finished", "skipped_audio": 0})
    assert (old.protocol, old.model_of_record, old.left_out_audio, old.clips) == ("", "", {},
                                                                                 {})
    assert "model of record student" in closing(
        Summary(status=RunStatus.FINISHED, best_epoch=3, best_metric="objective",
                best_value=1.2, model_of_record="student"), Path("run"))


def test_banner_names_the_protocol_and_the_held_out_clips():
    shape = RunShape(Path("run"), "cpu", "constant:40", 32, (8, 8, 16), (10000, 1420, 14412),
                     2500, 177, protocol="baseline", n_heldout=158)
    line = banner(shape, resume_at=None)
    assert "protocol baseline" in line
    assert "strong/weak/unlabelled/val 10000/1420/14412/2500 + 158 held-out weak" in line
    assert EpochRecord(epoch=1, metrics={"objective": 1.25}).metric("objective") == 1.25


def test_resuming_an_old_run_under_the_baseline_protocol_is_refused(tmp_path, monkeypatch):
    from greensed.runlog import RunDir

    monkeypatch.chdir(tmp_path)
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    # An earlier greensed's config.toml: no protocol key, a relative data path.
    old = tweak(C.RunConfig(), **{"train.protocol": "greensed", "data.path": "DESED"})
    run.config.write_text(C.to_toml(old).replace('protocol = "greensed"\n', ""))
    again = C.from_toml_text(run.config.read_text(), str(run.config))
    preflight.check_resume_config(run, C.with_absolute_paths(again), force=False)
    with pytest.raises(ConfigError, match=r"train.protocol: 'greensed' -> 'baseline' "
                                          r"\(pass --force"):
        preflight.check_resume_config(run, tweak(again, **{"train.protocol": "baseline"}),
                                      force=False)
