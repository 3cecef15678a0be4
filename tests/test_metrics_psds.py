"""PSDS1/PSDS2: behaviour, edge cases and the baseline's psds_eval procedure (equality with
sed_scores_eval on many inputs: tests/test_metrics_psds_exact.py)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from greensed.metrics.events import Events, decode
from greensed.metrics.psds import _snap_to_grid, psds_scores, threshold_grid

pytest.importorskip("sed_scores_eval")
pd = pytest.importorskip("pandas")

CLASSES = ["a", "b", "c"]
FRAME_S = 0.064


def _case(seed: int, n_clips: int = 16, signal: float = 0.5, spread: float = 0.7):
    """Block references on the frame grid, their 0/1 frame mask, and noisy probabilities."""
    rng = np.random.default_rng(seed)
    files = [f"clip{i}.wav" for i in range(n_clips)]
    mask = np.zeros((n_clips, len(CLASSES), 156))
    gt = []
    for i in range(n_clips):
        for k in range(len(CLASSES)):
            if rng.random() < 0.6:
                s = int(rng.integers(0, 120))
                e = s + int(rng.integers(5, 36))
                gt.append((i, k, s * FRAME_S, e * FRAME_S))
                mask[i, k, s:e] = 1.0
    noisy = np.clip(mask * signal + rng.random(mask.shape) * spread - 0.1, 0.0, 1.0)
    return files, Events.from_tuples(gt), mask, noisy, rng


def test_perfect_beats_random_and_values_in_range():
    files, gt, mask, noisy, rng = _case(0)
    perfect = psds_scores(mask * 0.9 + 0.05, gt, files, CLASSES)
    random = psds_scores(rng.random(mask.shape), gt, files, CLASSES)
    middle = psds_scores(noisy, gt, files, CLASSES)
    for res in (perfect, random, middle):
        for key in ("psds1", "psds2"):
            assert 0.0 <= res[key] <= 1.0
            assert set(res[f"{key}_class"]) == set(CLASSES)
    assert perfect["psds1"] > middle["psds1"] > random["psds1"]
    assert perfect["psds2"] > random["psds2"]
    assert perfect["psds1"] > 0.9


def test_snapping_keeps_exactly_the_grid_operating_points():
    rng = np.random.default_rng(1)
    grid = threshold_grid(50)
    np.testing.assert_allclose(grid[[0, 1, -1]], [0.01, 0.03, 0.99])
    probs = np.concatenate([rng.random(5000), grid, np.nextafter(grid, 1.0), [0.0, 1.0]])
    snapped = _snap_to_grid(probs, grid)
    for t in grid:
        np.testing.assert_array_equal(snapped >= t, probs > t)
    assert set(np.unique(snapped)) <= set(grid) | {0.0}


def _psds_eval_auc(x, y, max_x=None, decreasing_y=False):
    """Rectangle area under a staircase up to max_x, as psds_eval's PSDSEval._auc.

    psds_eval 0.5.3's own version calls int() on a 2-D array, an error under numpy 2.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    max_x = x.max() if max_x is None else max_x
    if max_x not in x:
        i = int(np.searchsorted(x, max_x))
        x = np.insert(x, i, max_x)
        y = np.insert(y, i, y[i - 1])
    keep = x <= max_x
    return float(np.sum(np.diff(x[keep]) * y[keep][:-1]))


@pytest.mark.slow  # 1-2 s: the whole suite only, so that make test-fast stays under a minute
def test_equals_baseline_psds_eval_over_50_thresholds(monkeypatch):
    psds_eval = pytest.importorskip("psds_eval")
    monkeypatch.setattr(psds_eval.PSDSEval, "_auc", staticmethod(_psds_eval_auc))
    files, gt, _, noisy, _ = _case(2, n_clips=10, signal=0.5, spread=0.75)

    def frame(ev: Events) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "filename": [files[c] for c in ev.clip],
                "onset": ev.onset_s,
                "offset": ev.offset_s,
                "event_label": [CLASSES[k] for k in ev.cls],
            }
        )

    meta = pd.DataFrame({"filename": files, "duration": 10.0})
    ours = psds_scores(noisy, gt, files, CLASSES)
    # The baseline: decode (threshold, then 7-frame median) at each of 50 thresholds.
    for key, (dtc, gtc, alpha_ct) in {"psds1": (0.7, 0.7, 0.0), "psds2": (0.1, 0.1, 0.5)}.items():
        evaluator = psds_eval.PSDSEval(dtc, gtc, 0.3, ground_truth=frame(gt), metadata=meta)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for threshold in threshold_grid(50):
                evaluator.add_operating_point(frame(decode(noisy, threshold=threshold)))
            ref = evaluator.psds(alpha_ct=alpha_ct, alpha_st=1.0, max_efpr=100.0).value
        assert ours[key] == pytest.approx(ref, abs=1e-9), key
        assert 0.05 < ref < 0.999  # a case that discriminates


def test_exact_mode_and_joined_references():
    files, gt, _, noisy, _ = _case(3, n_clips=8)
    exact = psds_scores(noisy, gt, files, CLASSES, n_thresholds=None)
    coarse = psds_scores(noisy, gt, files, CLASSES, n_thresholds=5)
    assert exact["n_thresholds"] is None
    assert exact["psds1"] != pytest.approx(coarse["psds1"], abs=1e-6)
    # Touching and overlapping same-class references are joined, not refused.
    extra = Events.from_tuples([(0, 0, 1.0, 2.0), (0, 0, 2.0, 3.0), (0, 0, 2.5, 4.0)])
    both = Events(
        np.concatenate([gt.clip, extra.clip]),
        np.concatenate([gt.cls, extra.cls]),
        np.concatenate([gt.onset_s, extra.onset_s]),
        np.concatenate([gt.offset_s, extra.offset_s]),
    )
    res = psds_scores(noisy, both, files, CLASSES)
    assert 0.0 <= res["psds1"] <= 1.0


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="2 files, 3 classes"):
        psds_scores(np.zeros((2, 2, 10)), Events.empty(), ["a", "b"], CLASSES)


def test_psds_leaves_out_classes_without_reference_events():
    """PSDS has no TPR for a class with no reference: it is named, not fatal."""
    from greensed.metrics.events import Events
    from greensed.metrics.psds import psds_scores

    rng = np.random.default_rng(0)
    classes = [f"c{k}" for k in range(4)]
    truth = Events.from_tuples([(0, 0, 1.0, 4.0), (1, 2, 2.0, 6.0)])
    probs = rng.random((2, 4, 156)) * 0.3
    probs[0, 0, 16:62] = 0.9
    probs[1, 2, 31:94] = 0.9
    res = psds_scores(probs, truth, ["a.wav", "b.wav"], classes)
    assert res["classes_without_ground_truth"] == ["c1", "c3"]
    assert res["psds1_class"]["c1"] is None and res["psds1_class"]["c0"] is not None
    assert 0.0 < res["psds1"] <= 1.0


def test_missing_pkg_resources_names_exactly_what_to_install(monkeypatch):
    """The reference (sed_scores_eval) path: setuptools >= 81 has no pkg_resources, which
    dcase_util (under sed_scores_eval) imports."""
    import sys

    from greensed.errors import GreensedError

    def chain() -> list[str]:
        return [m for m in sys.modules if m.split(".")[0] in ("sed_scores_eval", "sed_eval",
                                                              "dcase_util")]

    for name in chain():
        monkeypatch.delitem(sys.modules, name)  # restored afterwards
    monkeypatch.setitem(sys.modules, "pkg_resources", None)  # import -> ModuleNotFoundError
    from greensed.metrics.psds_reference import psds_scores_reference

    with pytest.raises(GreensedError) as err:
        psds_scores_reference(np.zeros((1, 1, 156)), Events.from_tuples([(0, 0, 1.0, 2.0)]),
                              ["a.wav"], ["x"])
    for name in chain():  # half-imported leftovers, before monkeypatch restores the originals
        del sys.modules[name]
    msg = str(err.value)
    assert msg.endswith("pip install 'setuptools<81'") and "pkg_resources" in msg
    # Installed requirements are not named as things to install.
    assert "pandas" not in msg and "scipy" not in msg and "==0.0.4" not in msg
    assert "\n" not in msg


def _short_case():
    """Three clips of 3.2 s (exactly 50 frames), 5.03 s and 10 s, padded to 156 frames."""
    rng = np.random.default_rng(4)
    files = ["a.wav", "b.wav", "c.wav"]
    durations = np.array([3.2, 5.03, 10.0])
    gt = Events.from_tuples([(0, 0, 0.5, 2.0), (0, 1, 1.0, 3.2), (1, 2, 2.0, 5.03),
                             (1, 0, 0.2, 1.0), (2, 1, 4.0, 9.0), (2, 2, 0.0, 1.5)])
    probs = rng.random((3, 3, 156)) * 0.4
    for clip, k, on, off in gt.to_tuples():
        probs[clip, k, int(on / FRAME_S):int(np.ceil(off / FRAME_S))] = 0.8
    return files, durations, gt, probs


def test_short_clips_score_only_up_to_their_duration():
    files, durations, gt, probs = _short_case()
    # Frames x 64 ms past the duration used to give "Some frames have zero length".
    res = psds_scores(probs, gt, files, CLASSES, durations_s=durations, median_window=1)
    assert 0.3 < res["psds1"] <= 1.0 and 0.3 < res["psds2"] <= 1.0
    # Whatever the model says in the zero padding is not scored.
    junk = probs.copy()
    for i, d in enumerate(durations):
        junk[i, :, int(np.ceil(d / FRAME_S)):] = 0.99
    again = psds_scores(junk, gt, files, CLASSES, durations_s=durations, median_window=1)
    assert again["psds1"] == res["psds1"] and again["psds2"] == res["psds2"]
    # Scored as 10 s clips, the padding's detections are false positives.
    padded = psds_scores(junk, gt, files, CLASSES, durations_s=10.0, median_window=1)
    assert padded["psds1"] < res["psds1"]
    # With the default 7-frame median filter too (filtered over all frames, then cut).
    assert 0.3 < psds_scores(probs, gt, files, CLASSES, durations_s=durations)["psds1"] <= 1.0


def test_bad_durations_are_one_line_data_errors():
    from greensed.errors import DataError

    files, durations, gt, probs = _short_case()
    with pytest.raises(DataError, match=r"PSDS: b\.wav: duration must be a positive number"):
        psds_scores(probs, gt, files, CLASSES, durations_s=[3.2, 0.0, 10.0])
    with pytest.raises(DataError, match=r"durations_s has shape \(2,\); need one per file"):
        psds_scores(probs, gt, files, CLASSES, durations_s=[3.2, 5.0])


def test_one_class_or_one_class_with_references_is_scored_not_a_type_error():
    files, durations, gt, probs = _short_case()
    m = gt.cls == 2
    only_c = Events(gt.clip[m], gt.cls[m], gt.onset_s[m], gt.offset_s[m])
    # Three classes, references for "c" only: sed_scores_eval's CTTC over one class
    # raised "TypeError: unhashable type" here.
    three = psds_scores(probs, only_c, files, CLASSES, durations_s=durations)
    assert three["classes_without_ground_truth"] == ["a", "b"]
    assert three["cross_triggers_scored"] is False
    assert three["psds2_class"]["a"] is None and 0.0 < three["psds2"] <= 1.0
    # The same as scoring that class alone.
    one = psds_scores(probs[:, 2:], Events(only_c.clip, only_c.cls * 0, only_c.onset_s,
                                           only_c.offset_s), files, ["c"], durations_s=durations)
    assert (one["psds1"], one["psds2"]) == (three["psds1"], three["psds2"])
    assert psds_scores(probs, gt, files, CLASSES)["cross_triggers_scored"] is True


def test_nan_probabilities_are_a_one_line_error_not_averaged():
    from greensed.errors import DataError

    files, durations, gt, probs = _short_case()
    probs[1, 2, 40] = np.nan
    with pytest.raises(DataError, match=r"^PSDS: b\.wav: class 'c', frame 40: probability nan "
                                        r"is not a number$"):
        psds_scores(probs, gt, files, CLASSES, durations_s=durations)


def test_psds_needs_no_sed_scores_eval(monkeypatch):
    """greensed's PSDS is numpy only: sed_scores_eval is a test oracle, not a dependency."""
    import sys

    for name in [m for m in sys.modules if m.split(".")[0] in ("sed_scores_eval", "pandas")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "sed_scores_eval", None)
    monkeypatch.setitem(sys.modules, "pandas", None)
    files, durations, gt, probs = _short_case()
    res = psds_scores(probs, gt, files, CLASSES, durations_s=durations)
    assert 0.3 < res["psds1"] <= 1.0


def test_grid_ranks_count_the_thresholds_strictly_below_each_value():
    """Arithmetic ranks with exact corrections equal a search of the float64 grid, for
    float32 scores (compared as their float64 values) and float64 ones, at the edges."""
    from greensed.metrics.psds import _ranks

    rng = np.random.default_rng(7)
    for n in (50, 10, 3, 300):
        grid = threshold_grid(n)
        for dtype in (np.float32, np.float64):
            g = grid.astype(dtype)
            p = np.concatenate([rng.random(20000).astype(dtype), g, grid.astype(dtype),
                                np.nextafter(g, dtype(0)), np.nextafter(g, dtype(2)),
                                np.array([0.0, 1.0, -0.5, 1.5], dtype)])
            ranks, _ = _ranks(p.reshape(1, 1, -1), n)
            expected = np.searchsorted(grid, p.astype(np.float64), side="left")
            np.testing.assert_array_equal(ranks.ravel(), expected, err_msg=f"{n} {dtype}")


def test_a_file_named_twice_is_a_one_line_error():
    from greensed.errors import DataError

    files, durations, gt, probs = _short_case()
    with pytest.raises(DataError, match=r"^PSDS: file 'a\.wav' is listed twice$"):
        psds_scores(probs, gt, ["a.wav", "b.wav", "a.wav"], CLASSES, durations_s=durations)
