"""greensed's PSDS equals sed_scores_eval's (greensed.metrics.psds_reference) to 1e-9.

Three kinds of inputs: generated cases (short and empty clips, classes without
references, overlapping and touching references, one class, ties, 50 thresholds and the
exact all-threshold PSDS, several median windows); the data psds_eval ships for its own
tests (tests/fixtures/psds_eval, MIT licence: its single-clip cases, and DESED's 1,168-clip
validation set with the baseline's 50 operating points rebuilt into frame scores); and
generated DESED-sized workloads (benchmarks/psds_speed.py). The full-size ones are slow.
"""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from greensed.metrics.events import Events
from greensed.metrics.psds import psds_scores

pytest.importorskip("sed_scores_eval")
from greensed.metrics.psds_reference import psds_scores_reference  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "psds_eval"
TOL = 1e-9


def _speed_module():
    spec = importlib.util.spec_from_file_location("psds_speed",
                                                  ROOT / "benchmarks" / "psds_speed.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def assert_same(probs, truth, files, classes, **kw) -> dict:
    ours = psds_scores(probs, truth, files, classes, **kw)
    ref = psds_scores_reference(probs, truth, files, classes, **kw)
    for key in ("psds1", "psds2"):
        assert ours[key] == pytest.approx(ref[key], abs=TOL), (key, kw)
        for c in classes:
            a, b = ours[f"{key}_class"][c], ref[f"{key}_class"][c]
            assert (a is None) == (b is None), (key, c)
            if a is not None:
                assert a == pytest.approx(b, abs=TOL), (key, c, kw)
    for key in ("classes_without_ground_truth", "cross_triggers_scored", "n_thresholds"):
        assert ours[key] == ref[key]
    return ref


def _generated(seed: int, n_clips: int = 24, n_classes: int = 4, n_frames: int = 60):
    """Random references (some overlapping or touching, some clips and one class empty),
    smooth-ish probabilities with ties, and durations from 1.1 s to full length."""
    rng = np.random.default_rng(seed)
    frame_s = 0.064
    full = n_frames * frame_s
    durations = np.where(rng.random(n_clips) < 0.3, rng.uniform(1.1, full, n_clips), full)
    durations = np.round(durations, 3)
    rows = []
    for i in range(n_clips):
        if i % 7 == 3:
            continue  # an empty clip
        for k in range(n_classes - 1):  # the last class never has a reference
            for _ in range(int(rng.integers(0, 3))):
                on = float(np.round(rng.uniform(0, durations[i] * 0.8), 3))
                rows.append((i, k, on, float(min(on + rng.uniform(0.05, 2.0), durations[i]))))
    if rows:  # one touching pair
        i, k, on, off = rows[0]
        rows.append((i, k, off, min(off + 0.3, float(durations[i]))))
    truth = Events.from_tuples(rows)
    mask = np.zeros((n_clips, n_classes, n_frames))
    for i, k, on, off in rows:
        mask[i, (k + (1 if rng.random() < 0.15 else 0)) % n_classes,
             int(on / frame_s):int(np.ceil(off / frame_s))] = 1.0
    noise = rng.random(mask.shape)
    probs = np.clip(0.55 * mask + 0.5 * noise - 0.05, 0.0, 1.0)
    probs = np.round(probs, 2)  # ties between frames, clips and classes
    files = [f"g{seed}_{i}.wav" for i in range(n_clips)]
    return probs, truth, files, [f"k{k}" for k in range(n_classes)], durations


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_thresholds,window", [(50, 7), (None, 7), (None, 1), (10, 4)])
def test_generated_cases(seed, n_thresholds, window):
    probs, truth, files, classes, durations = _generated(seed)
    ref = assert_same(probs, truth, files, classes, durations_s=durations,
                      n_thresholds=n_thresholds, median_window=window)
    assert ref["classes_without_ground_truth"] == ["k3"]


def test_generated_one_class_and_single_clip():
    probs, truth, files, classes, durations = _generated(5, n_clips=6)
    m = truth.cls == 1
    one = Events(truth.clip[m], truth.cls[m] * 0, truth.onset_s[m], truth.offset_s[m])
    assert_same(probs[:, 1:2], one, files, ["k1"], durations_s=durations)
    assert_same(probs, one, files, classes, durations_s=durations, n_thresholds=None)
    assert_same(probs[:1], Events.from_tuples([(0, 2, 0.5, 1.5)]), files[:1], classes,
                durations_s=durations[:1], median_window=3)


def test_zero_length_reference_counts_as_sed_scores_eval_does():
    probs, truth, files, classes, durations = _generated(6, n_clips=8)
    extra = Events.from_tuples([(1, 0, 1.0, 1.0), (2, 1, 0.5, 0.5)])
    both = Events(np.r_[truth.clip, extra.clip], np.r_[truth.cls, extra.cls],
                  np.r_[truth.onset_s, extra.onset_s], np.r_[truth.offset_s, extra.offset_s])
    assert_same(probs, both, files, classes, durations_s=durations, n_thresholds=None)


# psds_eval's own test data (tests/data of audioanalytic/psds_eval, MIT): one clip each.
PSDS_EVAL_CASES = [("test_1.gt", "test_1.det"), ("test_1.gt", "test_1a.det"),
                   ("test_2.gt", "test_2.det"), ("test_3.gt", "test_3.det"),
                   ("test_4.gt", "test_4.det"),
                   ("Y23R6_ppquxs_247.000_257000.gt", "Y23R6_ppquxs_247.000_257000.det")]


def _table(name: str) -> list[dict[str, str]]:
    with open(FIXTURES / name) as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.mark.parametrize("gt_name,det_name", PSDS_EVAL_CASES)
def test_psds_eval_example_cases(gt_name, det_name):
    """Their references; their detections as frame scores of 10 ms: 0.8 inside a detection,
    0.2 outside, +0.1 where a reference lies (four score levels, so several operating
    points); every cut of a detection at a reference boundary is scored."""
    gt, det = _table(gt_name), _table(det_name)
    durations = {r["filename"]: float(r["duration"]) for r in _table("test.metadata")}
    (file,) = {r["filename"] for r in gt}
    classes = sorted({r["event_label"] for r in gt + det})
    frame_s = 0.01
    n = int(round(durations[file] / frame_s))
    probs = np.full((1, len(classes), n), 0.2)
    truth = Events.from_labelled([(file, r["event_label"], float(r["onset"]), float(r["offset"]))
                                  for r in gt], [file], classes)
    for r in det:
        a, b = (int(round(float(r[key]) / frame_s)) for key in ("onset", "offset"))
        probs[0, classes.index(r["event_label"]), a:b] = 0.8
    for _, k, on, off in truth.to_tuples():
        probs[0, k, int(round(on / frame_s)):int(round(off / frame_s))] += 0.1
    for n_thr in (None, 50):
        assert_same(probs, truth, [file], classes, durations_s=durations[file],
                    n_thresholds=n_thr, median_window=1, frame_s=frame_s)


def _desed_baseline(n_clips: int):
    """DESED's validation set and the DCASE baseline's 50 operating points from psds_eval's
    notebook cache, rebuilt into frame scores (tests/fixtures/psds_eval/README.md)."""
    speed = _speed_module()
    files, classes, truth, durations = speed.desed_validation()
    level = np.load(FIXTURES / "baseline_levels.npz")["level"][:n_clips]
    keep = truth.clip < n_clips
    truth = Events(truth.clip[keep], truth.cls[keep], truth.onset_s[keep], truth.offset_s[keep])
    # Level n: active at the n-th threshold (2n - 1) / 100 and below, so the score n / 50.
    return level / 50.0, truth, files[:n_clips], classes, durations[:n_clips]


def test_desed_baseline_operating_points_first_100_clips():
    probs, truth, files, classes, durations = _desed_baseline(100)
    for n_thr in (50, None):
        assert_same(probs, truth, files, classes, durations_s=durations, n_thresholds=n_thr,
                    median_window=1, frame_s=10.0 / 157)


@pytest.mark.slow
def test_desed_baseline_operating_points_all_1168_clips():
    probs, truth, files, classes, durations = _desed_baseline(1168)
    ref = assert_same(probs, truth, files, classes, durations_s=durations, median_window=1,
                      frame_s=10.0 / 157)
    assert 0.2 < ref["psds1"] < 0.6  # a discriminating case


def test_desed_sized_workload_first_60_clips():
    w = _speed_module().workload(60, seed=1)
    for n_thr in (50, None):
        assert_same(w["probs"], w["truth"], w["files"], w["classes"],
                    durations_s=w["durations"], n_thresholds=n_thr)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 2])
def test_desed_sized_workload_1168_clips(seed):
    """1,168 clips (100 shorter than 10 s), with empty clips, a class with no reference
    (its events removed) and overlapping references added."""
    w = _speed_module().workload(1168, seed=seed)
    t = w["truth"]
    keep = t.cls != 3
    extra = Events.from_tuples([(5, 0, 1.0, 3.0), (5, 0, 2.0, 4.0), (9, 1, 0.5, 1.0),
                                (9, 1, 1.0, 2.0)])
    truth = Events(np.r_[t.clip[keep], extra.clip], np.r_[t.cls[keep], extra.cls],
                   np.r_[t.onset_s[keep], extra.onset_s], np.r_[t.offset_s[keep], extra.offset_s])
    probs = w["probs"].copy()
    probs[100:110] = 0.0  # clips the model says nothing about
    for n_thr in (50, None):
        ref = assert_same(probs, truth, w["files"], w["classes"], durations_s=w["durations"],
                          n_thresholds=n_thr)
        assert ref["classes_without_ground_truth"] == [w["classes"][3]]


@pytest.mark.slow
def test_speed_benchmark_runs_and_finds_no_difference(tmp_path):
    import json
    import os
    import subprocess
    import sys

    out = tmp_path / "psds_speed.json"
    subprocess.run([sys.executable, "benchmarks/psds_speed.py", "--clips", "30", "--reps", "1",
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True, timeout=600,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    rep = json.loads(out.read_text())
    assert rep["clips"] == 30 and set(rep["modes"]) == {"50 thresholds", "exact"}
    for mode in rep["modes"].values():
        assert mode["max_abs_diff"] <= TOL and mode["ratio"] > 0 and mode["cpu_ratio"] > 0
