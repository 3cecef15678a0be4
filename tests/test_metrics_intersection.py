"""Intersection-based F1 against psds_eval 0.5.3 and sed_scores_eval 0.0.4."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from greensed.errors import DataError
from greensed.metrics.events import Events
from greensed.metrics.intersection import intersection_f1

pd = pytest.importorskip("pandas")
psds_eval = pytest.importorskip("psds_eval")
sse_intersection = pytest.importorskip("sed_scores_eval.intersection_based")
sse_scores = pytest.importorskip("sed_scores_eval.base_modules.scores")
get_curve_idx_for_threshold = pytest.importorskip(
    "sed_scores_eval.base_modules.curves"
).get_curve_idx_for_threshold

CLASSES = ["a", "b", "c", "d", "e"]
CLIP_S = 10.0


def _psds_eval_f1(det: Events, gt: Events, n_clips: int, dtc: float, gtc: float):
    """Per-class F1 (array, NaN where psds_eval gives NaN) and macro F1 of psds_eval."""

    def frame(ev: Events) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "filename": [f"clip{c}.wav" for c in ev.clip],
                "onset": ev.onset_s,
                "offset": ev.offset_s,
                "event_label": [CLASSES[k] for k in ev.cls],
            },
            columns=["filename", "onset", "offset", "event_label"],
        )

    meta = pd.DataFrame({"filename": [f"clip{c}.wav" for c in range(n_clips)], "duration": CLIP_S})
    evaluator = psds_eval.PSDSEval(
        dtc, gtc, 0.3, ground_truth=frame(gt), metadata=meta, class_names=CLASSES
    )
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        macro, per_class = evaluator.compute_macro_f_score(frame(det))
    return np.array([per_class[c] for c in CLASSES]), macro


def _sse_inputs(det: Events, gt: Events, n_clips: int):
    """0/1 score DataFrames with segment edges at the detection boundaries, and references."""
    scores, truth = {}, {}
    for clip in range(n_clips):
        mine = det.clip == clip
        edges = np.unique(np.concatenate([[0.0, CLIP_S], det.onset_s[mine], det.offset_s[mine]]))
        mid = (edges[:-1] + edges[1:]) / 2
        seg = np.zeros((len(mid), len(CLASSES)))
        for on, off, k in zip(det.onset_s[mine], det.offset_s[mine], det.cls[mine], strict=True):
            seg[(mid > on) & (mid < off), k] = 1.0
        scores[f"clip{clip}"] = sse_scores.create_score_dataframe(seg, edges, CLASSES)
        truth[f"clip{clip}"] = [
            (float(a), float(b), CLASSES[k]) for c, k, a, b in gt.to_tuples() if c == clip
        ]
    return scores, truth


def _sse_f1(det: Events, gt: Events, n_clips: int, dtc: float, gtc: float):
    scores, truth = _sse_inputs(det, gt, n_clips)
    f, _, _, stats = sse_intersection.fscore(
        scores, truth, 0.5, dtc_threshold=dtc, gtc_threshold=gtc
    )
    return np.array([f[c] for c in CLASSES]), f["macro_average"], stats


# Clip 0: class a found; a detection split in two covering one reference (b); a
# wrong-class detection (c over a reference of d); class d has no true positive.
# Clip 1: overlapping references of different classes; class c has no detection at all.
# Clip 2: only references. Class e has references and no detection anywhere.
FIXTURE_GT = Events.from_tuples(
    [
        (0, 0, 1.0, 3.0),
        (0, 1, 4.0, 6.0),
        (0, 3, 7.0, 9.0),
        (1, 0, 0.5, 4.0),
        (1, 1, 2.0, 5.0),
        (1, 2, 6.0, 8.5),
        (2, 0, 2.0, 2.5),
        (2, 2, 3.0, 7.0),
        (1, 4, 1.0, 2.0),
        (2, 4, 5.0, 6.0),
    ]
)
FIXTURE_DET = Events.from_tuples(
    [
        (0, 0, 1.1, 2.9),
        (0, 1, 3.9, 4.9),
        (0, 1, 5.0, 6.1),
        (0, 2, 7.0, 9.0),
        (0, 3, 0.2, 0.6),
        (1, 0, 0.4, 4.2),
        (1, 1, 2.5, 3.0),
        (1, 1, 8.0, 9.0),
        (2, 0, 1.0, 3.0),
    ]
)


def test_fixture_counts_by_hand():
    res = intersection_f1(FIXTURE_DET, FIXTURE_GT, n_classes=5)
    # a: refs 3, found clip0 + clip1 (clip2's 2.0-2.5 is 25 % of a 2 s detection: FP + FN).
    # b: refs 2; clip0 split pair covers 1.9 of 2 s -> TP; clip1 2.5-3.0 covers 1/6 -> FN;
    #    8-9 s is an FP. c: refs 2, one FP (clip0 7-9 s). d: ref 1, one FP. e: 2 refs, no det.
    np.testing.assert_array_equal(res.tp, [2, 1, 0, 0, 0])
    np.testing.assert_array_equal(res.fp, [1, 1, 1, 1, 0])
    np.testing.assert_array_equal(res.fn, [1, 1, 2, 1, 2])
    np.testing.assert_allclose(res.f1, [4 / 6, 2 / 4, 0.0, 0.0, 0.0])
    assert res.macro_f1 == pytest.approx(np.mean([4 / 6, 2 / 4, 0.0, 0.0, 0.0]))
    np.testing.assert_allclose(res.precision, [2 / 3, 1 / 2, 0.0, 0.0, 1.0])
    np.testing.assert_allclose(res.recall, [2 / 3, 1 / 2, 0.0, 0.0, 0.0])


@pytest.mark.parametrize(("dtc", "gtc"), [(0.7, 0.7), (0.5, 0.5), (0.1, 0.1)])
def test_fixture_matches_references(dtc, gtc):
    ours = intersection_f1(FIXTURE_DET, FIXTURE_GT, n_classes=5, dtc=dtc, gtc=gtc)
    ref_f1, _ = _psds_eval_f1(FIXTURE_DET, FIXTURE_GT, 3, dtc, gtc)
    finite = np.isfinite(ref_f1)
    np.testing.assert_allclose(ours.f1[finite], ref_f1[finite], rtol=0, atol=1e-9)
    sse_f1, sse_macro, _ = _sse_f1(FIXTURE_DET, FIXTURE_GT, 3, dtc, gtc)
    np.testing.assert_allclose(ours.f1, sse_f1, rtol=0, atol=1e-9)
    assert ours.macro_f1 == pytest.approx(sse_macro, abs=1e-9)


def test_psds_eval_nan_macro_is_higher():
    ours = intersection_f1(FIXTURE_DET, FIXTURE_GT, n_classes=5)
    ref_f1, ref_macro = _psds_eval_f1(FIXTURE_DET, FIXTURE_GT, 3, 0.7, 0.7)
    # Classes c, d, e have references but no true positive: psds_eval gives NaN, we give 0.
    assert np.isnan(ref_f1[2:]).all()
    np.testing.assert_array_equal(ours.f1[2:], [0.0, 0.0, 0.0])
    assert ref_macro == pytest.approx(np.mean(ours.f1[:2]), abs=1e-9)
    assert ref_macro > ours.macro_f1 + 0.3


def _random_events(rng: np.random.Generator, n_clips: int):
    """Disjoint references per (clip, class), and detections: jittered copies and noise."""
    gt, det = [], []
    for clip in range(n_clips):
        for k in range(len(CLASSES)):
            n = rng.integers(0, 3)
            points = np.sort(rng.uniform(0, CLIP_S, size=2 * n)).reshape(-1, 2)
            gt += [(clip, k, a, b) for a, b in points]
            cand = []
            for a, b in points:
                r = rng.random()
                if r < 0.5:  # jittered copy
                    cand.append((a + rng.normal(0, 0.3), b + rng.normal(0, 0.3)))
                elif r < 0.7:  # split in two
                    m = rng.uniform(a, b)
                    cand += [(a, m - 0.05), (m + 0.05, b)]
            if rng.random() < 0.5:  # noise, possibly on another class's reference
                cand.append(tuple(np.sort(rng.uniform(0, CLIP_S, 2))))
            cand = sorted((max(a, 0.0), min(b, CLIP_S)) for a, b in cand)
            last = -1.0
            for a, b in cand:  # keep detections disjoint and non-touching
                if a > last + 1e-3 and b > a + 1e-3:
                    det.append((clip, k, a, b))
                    last = b
    return Events.from_tuples(det), Events.from_tuples(gt)


@pytest.mark.parametrize("seed", [0, 1])
def test_random_matches_references(seed):
    rng = np.random.default_rng(seed)
    n_clips = 20
    det, gt = _random_events(rng, n_clips)
    assert len(det) > 50 and len(gt) > 50
    for dtc, gtc in [(0.7, 0.7), (0.5, 0.5), (0.1, 0.1)]:
        ours = intersection_f1(det, gt, n_classes=5, dtc=dtc, gtc=gtc)
        ref_f1, _ = _psds_eval_f1(det, gt, n_clips, dtc, gtc)
        finite = np.isfinite(ref_f1)
        assert finite.sum() >= 2
        np.testing.assert_allclose(ours.f1[finite], ref_f1[finite], rtol=0, atol=1e-9)
        sse_f1, sse_macro, stats = _sse_f1(det, gt, n_clips, dtc, gtc)
        np.testing.assert_allclose(ours.f1, sse_f1, rtol=0, atol=1e-9)
        assert ours.macro_f1 == pytest.approx(sse_macro, abs=1e-9)
        np.testing.assert_array_equal(ours.tp, [stats[c]["tps"] for c in CLASSES])
        np.testing.assert_array_equal(ours.fp, [stats[c]["fps"] for c in CLASSES])
    assert 0.0 < ours.macro_f1 < 1.0


def test_cross_triggers_match_sed_scores_eval():
    rng = np.random.default_rng(3)
    n_clips = 20
    det, gt = _random_events(rng, n_clips)
    ours = intersection_f1(det, gt, n_classes=5, dtc=0.5, gtc=0.5, cttc=0.3)
    plain = intersection_f1(det, gt, n_classes=5, dtc=0.5, gtc=0.5)
    np.testing.assert_array_equal(ours.f1, plain.f1)  # cross-triggers stay false positives
    scores, truth = _sse_inputs(det, gt, n_clips)
    stats, _ = sse_intersection.accumulated_intermediate_statistics(
        scores, truth, dtc_threshold=0.5, gtc_threshold=0.5, cttc_threshold=0.3
    )
    for k, name in enumerate(CLASSES):
        cls_scores, cls_stats = stats[name]
        idx = get_curve_idx_for_threshold(cls_scores, 0.5)
        for j, other in enumerate(CLASSES):
            if j != k:
                assert ours.cross_triggers[k, j] == cls_stats["cts"][other][idx], (name, other)
    assert ours.cross_triggers.sum() > 0
    assert np.all(np.diag(ours.cross_triggers) == 0)


def test_threshold_exactly_met_on_frame_grid():
    # 7 of 10 frames of 64 ms: DTC = GTC = 0.7 met exactly; float error must not lose it.
    frame = 0.064
    gt = Events.from_tuples([(0, 0, 3 * frame, 13 * frame)])
    det = Events.from_tuples([(0, 0, 6 * frame, 16 * frame)])
    res = intersection_f1(det, gt, n_classes=1)
    assert res.tp[0] == 1 and res.fp[0] == 0
    det_short = Events.from_tuples([(0, 0, 7 * frame, 17 * frame)])
    assert intersection_f1(det_short, gt, n_classes=1).tp[0] == 0


def test_overlapping_references_are_merged():
    gt = Events.from_tuples([(0, 0, 1.0, 3.0), (0, 0, 2.0, 4.0)])
    det = Events.from_tuples([(0, 0, 1.0, 4.0)])
    res = intersection_f1(det, gt, n_classes=1)
    # As one 1-4 s reference: found once, detection fully inside (no double count).
    assert (res.tp[0], res.fp[0], res.fn[0]) == (1, 0, 0)


def test_empty_inputs_and_zero_division():
    gt = Events.from_tuples([(0, 0, 1.0, 2.0)])
    res = intersection_f1(Events.empty(), gt, n_classes=2)
    np.testing.assert_array_equal(res.f1, [0.0, 0.0])
    assert res.precision[0] == 1.0 and np.isnan(res.recall[1])
    res_nan = intersection_f1(Events.empty(), gt, n_classes=2, zero_division=np.nan)
    assert np.isnan(res_nan.f1[1]) and res_nan.macro_f1 == 0.0
    assert np.isnan(
        intersection_f1(Events.empty(), Events.empty(), n_classes=1, zero_division=np.nan).macro_f1
    )


def test_detections_outside_clip_are_ignored():
    gt = Events.from_tuples([(0, 0, 1.0, 2.0), (1, 0, 1.0, 2.0)])
    det = Events.from_tuples([(0, 0, 1.0, 2.0), (0, 0, 5.0, 6.0), (1, 0, 3.0, 3.0)])
    res = intersection_f1(det, gt, n_classes=1, durations_s=np.array([4.0, 10.0]))
    assert (res.tp[0], res.fp[0], res.fn[0]) == (1, 0, 1)


def test_bad_class_index_is_a_data_error():
    with pytest.raises(DataError, match="class index 3"):
        intersection_f1(Events.from_tuples([(0, 3, 0.0, 1.0)]), Events.empty(), n_classes=2)


def test_detection_running_into_the_padding_is_cut_at_the_duration():
    """A 4 s clip padded to 10 s: what lies after 4 s is padding, not scored."""
    gt = Events.from_tuples([(0, 0, 3.0, 4.0), (1, 0, 3.0, 4.0)])
    det = Events.from_tuples([(0, 0, 3.0, 6.0), (1, 0, 3.0, 6.0)])
    res = intersection_f1(det, gt, n_classes=1, durations_s=[4.0, 10.0], dtc=0.7, gtc=0.7)
    # Clip 0: cut to 3-4 s, all of it on the reference (TP). Clip 1 (10 s): 1/3 of it is.
    assert (res.tp[0], res.fp[0], res.fn[0]) == (1, 1, 1)
    whole = intersection_f1(det, gt, n_classes=1, durations_s=10.0, dtc=0.7, gtc=0.7)
    assert (whole.tp[0], whole.fp[0], whole.fn[0]) == (0, 2, 2)
