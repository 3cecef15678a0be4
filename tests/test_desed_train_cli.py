"""A participant's DESED folder, trained and evaluated as README and
docs/reproducing.md say: `greensed train --data ROOT --recipe recipes/paper/bs32.toml`
with no TOML map, then `greensed evaluate RUN` on the recorded validation set.

The tree has DESED_task 2022's folder and file names, its tsv formats, 44.1 kHz folders
beside their `_16k` copies (the unlabelled clips only at 44.1 kHz, so they are
resampled), clips shorter than 10 s, a clip listed only with an empty row and files
listed but missing on disk; enough clips for the batch-32 shares (8 strong, 8 weak,
16 unlabelled) after the baseline's 90/10 weak split.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_data_desed_layout import (
    STRONG_HEADER,
    SYNTH,
    SYNTH_VAL,
    TEST,
    TEST_DUR,
    TEST_TSV,
    UNLAB,
    VAL_DUR,
    WEAK,
    WEAK_TSV,
    _both,
    _durations_tsv,
    _write,
)

from greensed.data.spec import CLASSES
from greensed.runlog import RunDir
from greensed.train.validate import METRICS, PSDS_METRICS

# Trains and evaluates in subprocesses: left out of `make test-fast`.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
N_WEAK = 20  # 18 train, 2 held out by weak_df.sample(frac=0.9)
WEAK_MISSING = "Yweak07_30.000_40.000.wav"  # its _16k copy was never written
TEST_MISSING = "Ytest9_0.000_10.000.wav"


def build_tree(root: Path) -> Path:
    meta = root / "metadata/train/synthetic21_train"
    meta.mkdir(parents=True)
    rows = []
    for i in range(10):
        seconds = (10.0, 6.0, 3.5)[i % 3]
        _both(root, SYNTH, f"{i}.wav", seconds, i)
        rows.append(f"{i}.wav\t0.5\t{seconds - 0.5}\t{CLASSES[i]}\n")
    _both(root, SYNTH, "10.wav", 10.0, 10)
    rows.append("10.wav\t\t\t\n")  # listed only with an empty row: dropped
    (meta / "soundscapes.tsv").write_text(STRONG_HEADER + "".join(rows))
    weak_rows = []
    for i in range(N_WEAK):
        name = f"Yweak{i:02d}_30.000_40.000.wav"
        _write(root / WEAK, name, 3.0, 44100, 20 + i)
        if name != WEAK_MISSING:
            _write(root / f"{WEAK}_16k", name, 3.0, 16000, 20 + i)
        weak_rows.append(f"{name}\t{CLASSES[i % 10]},{CLASSES[(i + 3) % 10]}\n")
    (root / WEAK_TSV).write_text("filename\tevent_labels\n" + "".join(weak_rows))
    for i in range(16):  # only at 44.1 kHz: resampled with kaiser_best
        _write(root / UNLAB, f"Yunlab{i:02d}_0.000_10.000.wav", 2.0, 44100, 50 + i)
    val_meta = root / "metadata/validation/synthetic21_validation"
    val_meta.mkdir(parents=True)
    val_rows = []
    for i, seconds in enumerate((3.25, 10.0, 7.0, 10.0)):
        _write(root / f"{SYNTH_VAL}_16k", f"{i}.wav", seconds, 16000, 70 + i)
        val_rows.append(f"{i}.wav\t0.2\t{seconds - 0.2:.2f}\t{CLASSES[2 * i]}\n")
    (val_meta / "soundscapes.tsv").write_text(STRONG_HEADER + "".join(val_rows))
    _durations_tsv(root / VAL_DUR, root / f"{SYNTH_VAL}_16k")
    test = {"Ytest0_0.000_10.000.wav": (10.0, "Dog"), "Ytest1_30.000_34.270.wav": (4.27, "Cat"),
            "Ytest2_0.000_5.000.wav": (5.0, "Speech")}
    for i, (name, (seconds, _)) in enumerate(test.items()):
        _both(root, TEST, name, seconds, 80 + i)
    (root / TEST_TSV).write_text(STRONG_HEADER + "".join(
        f"{name}\t0.5\t{seconds - 0.5:.2f}\t{label}\n"
        for name, (seconds, label) in test.items()) + f"{TEST_MISSING}\t0.0\t1.0\tDishes\n")
    _durations_tsv(root / TEST_DUR, root / f"{TEST}_16k")
    return root


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "greensed.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_real_desed_layout_trains_with_the_paper_recipe_and_evaluates(tmp_path):
    root = build_tree(tmp_path / "DESED")
    train = ["train", "--data", "DESED", "--recipe", "recipes/paper/bs32.toml",
             "--epochs", "1", "--max-steps-per-epoch", "1", "--meter", "constant:40",
             "--cache-dir", "cache", "--out", "run"]
    # Missing files stop everything, in one line naming them and the flag.
    bare = _cli(tmp_path, *train)
    assert bare.returncode == 2, bare.stderr
    (error,) = [ln for ln in bare.stderr.splitlines() if ln.startswith("error: ")]
    assert f"weak: 1 of {N_WEAK} listed audio files not found in {root / WEAK}_16k " \
           f"({WEAK_MISSING})" in error
    assert f"test: 1 of 4 listed audio files not found in {root / TEST}_16k " \
           f"({TEST_MISSING})" in error
    assert error.endswith("(set skip_bad_audio, --skip-bad-audio, to train without them)")
    assert not (tmp_path / "run" / "epochs.jsonl").exists()

    res = _cli(tmp_path, *train, "--skip-bad-audio")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = res.stdout
    assert (f"data: DESED 2022 layout at {root}: strong {SYNTH}_16k, weak {WEAK}_16k, "
            f"unlabelled {UNLAB}, validation {SYNTH_VAL}_16k (durations {VAL_DUR}), "
            f"test {TEST}_16k (durations {TEST_DUR})") in out
    assert "strong: 1 clips listed only with empty rows dropped" in out
    assert "left out (skip_bad_audio)" in out
    assert "protocol baseline: weak split 0.9 (seed 1): " in out
    assert "protocol baseline | device cpu" in out

    run = RunDir(tmp_path / "run")
    s = run.read_summary()
    assert s.finished and s.protocol == "baseline" and s.model_of_record == "student"
    assert s.best_metric == "objective" and s.best_epoch == 1 and s.best_value is not None
    assert s.left_out_audio == {"missing": 2, "unreadable": 0} and s.skipped_audio == 0
    assert s.clips["strong"] == 10 and s.clips["unlabelled"] == 16
    assert s.clips["weak_train"] + s.clips["weak_validation"] == N_WEAK - 1
    assert s.clips["weak_validation"] >= 1 and s.steps_per_epoch == 1 and s.steps == 1
    (record,) = run.read_epochs()
    m = record.metrics
    # Every name stop.metric may take, PSDS aside (it is scored with [validate] psds).
    assert {k for k, v in m.items() if not isinstance(v, list)} == \
        set(METRICS) - set(PSDS_METRICS)
    assert m["objective"] == pytest.approx(m["student_weak_f1_heldout"] + m["student_f1_05"])
    assert record.lr == pytest.approx(1e-3)  # the baseline's first step: the full lr
    config = run.config.read_text()
    assert f'path = "{root}"' in config and f'cache_dir = "{tmp_path / "cache"}"' in config

    # From another folder: the run directory names its data absolutely.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ev = _cli(elsewhere, "evaluate", str(run.root), "--meter", "constant:40")
    assert ev.returncode == 0, ev.stdout[-3000:] + ev.stderr[-3000:]
    assert "evaluate: scoring the test set (3 clips, durations from tsv)" in ev.stderr
    assert "test set, 3 clips, epoch 1 (best by objective), model of record student" in ev.stdout
    psds = json.loads(run.psds.read_text())
    assert psds["subset"] == "test" and psds["n_clips"] == 3 and psds["durations_from"] == "tsv"
    assert psds["model"] == psds["model_of_record"] == "student"
    assert psds["checkpoint_metric"] == "objective" and psds["data"] == str(root)
    for who in ("student", "teacher"):
        scores = psds["models"][who]
        for key in ("psds1", "psds2", "f1", "f1_05"):
            assert 0.0 <= scores[key] <= 1.0, (who, key)
    assert psds["psds1"] == psds["models"]["student"]["psds1"]
    assert set(psds["classes_without_ground_truth"]) == set(CLASSES) - {"Dog", "Cat", "Speech"}
