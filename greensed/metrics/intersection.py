"""Intersection-based F1 of detected events at one operating point (Bilen et al., 2020).

Definitions (C. Bilen, G. Ferroni, F. Tuveri, J. Azcarreta, S. Krstulovic, "A Framework
for the Robust Evaluation of Sound Event Detection", ICASSP 2020), as implemented by
psds_eval 0.5.3 ``compute_macro_f_score`` and sed_scores_eval 0.0.4
``intersection_based.fscore``:

* a detection passes the detection tolerance criterion (DTC) when its intersection
  with same-class ground truth in its clip covers at least ``dtc`` of its duration;
  detections failing the DTC are false positives;
* a ground-truth event is a true positive when its intersection with DTC-passing
  same-class detections covers at least ``gtc`` of its duration (GTC); the others are
  false negatives;
* with ``cttc`` set, a detection failing the DTC is also a cross-trigger on class k when
  its intersection with class-k ground truth covers at least ``cttc`` of its duration.
  Cross-triggers stay false positives (both references count them so), so CTTC does not
  change the F1; the counts are reported for PSDS-style analyses.

Per class F1 = 2 TP / (2 TP + FP + FN). A class with references but no true positive
scores 0 and counts in the macro average, as sed_scores_eval does; psds_eval returns NaN
for such a class and ``np.nanmean`` then leaves it out, which raises its macro F1.

Overlapping same-class events (both references refuse them) are merged into their union
first, so intersections are never counted twice. Comparisons are made on times rounded
to 6 decimals, as sed_scores_eval does, so that an intersection exactly at the threshold
(e.g. 7 of 10 frames of 64 ms) is not lost to floating-point error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from greensed.errors import DataError
from greensed.metrics.events import Events

__all__ = ["F1Result", "intersection_f1"]

# sed_scores_eval's default ``time_decimals``.
_TIME_DECIMALS = 6


@dataclass(frozen=True, eq=False)
class F1Result:
    """Per-class counts and scores (arrays of length n_classes) and their macro average."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray
    macro_f1: float
    # [detected class, reference class] counts of cross-triggers; None without CTTC.
    cross_triggers: np.ndarray | None = None

    @property
    def n_ref(self) -> np.ndarray:
        return self.tp + self.fn

    def per_class(self, classes: list[str]) -> dict[str, float]:
        """Per-class F1 keyed by class name (for run logs and reports)."""
        if len(classes) != len(self.f1):
            raise ValueError(f"{len(classes)} class names for {len(self.f1)} classes")
        return {name: float(f) for name, f in zip(classes, self.f1, strict=True)}


def _merge_overlaps(key: np.ndarray, onset: np.ndarray, offset: np.ndarray):
    """Sort events by (key, onset) and merge same-key events that overlap (not just touch)."""
    order = np.lexsort((offset, onset, key))
    key, onset, offset = key[order], onset[order], offset[order]
    same = key[1:] == key[:-1]
    if not np.any(same & (onset[1:] < offset[:-1])):
        # Sorted by onset with no overlapping neighbours: no overlaps at all.
        return key, onset, offset
    # Rare (references refuse such input): merge with a plain loop.
    out_k, out_on, out_off = [key[0]], [onset[0]], [offset[0]]
    for k, a, b in zip(key[1:], onset[1:], offset[1:], strict=True):
        if k == out_k[-1] and a < out_off[-1]:
            out_off[-1] = max(out_off[-1], b)
        else:
            out_k.append(k)
            out_on.append(a)
            out_off.append(b)
    return np.array(out_k), np.array(out_on), np.array(out_off)


def _pairs(left_key: np.ndarray, right_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All index pairs (i, j) with left_key[i] == right_key[j]; right_key must be sorted."""
    start = np.searchsorted(right_key, left_key, side="left")
    count = np.searchsorted(right_key, left_key, side="right") - start
    left = np.repeat(np.arange(len(left_key)), count)
    first = np.cumsum(count) - count  # position of each left item's first pair
    right = start[left] + np.arange(len(left)) - first[left]
    return left, right


def _overlap(a_on, a_off, b_on, b_off) -> np.ndarray:
    return np.maximum(np.minimum(a_off, b_off) - np.maximum(a_on, b_on), 0.0)


def _round(x: np.ndarray) -> np.ndarray:
    return np.round(x, _TIME_DECIMALS)


def _durations(durations_s: np.ndarray | float, n_clips_needed: int) -> np.ndarray:
    durations = np.asarray(durations_s, dtype=np.float64)
    if durations.ndim == 0:
        return np.full(n_clips_needed, float(durations))
    if durations.ndim != 1 or len(durations) < n_clips_needed:
        raise DataError(
            f"durations_s has shape {durations.shape}; need one duration per clip "
            f"(at least {n_clips_needed})"
        )
    return durations


def intersection_f1(
    detections: Events,
    ground_truth: Events,
    *,
    n_classes: int,
    durations_s: np.ndarray | float = 10.0,
    dtc: float = 0.7,
    gtc: float = 0.7,
    cttc: float | None = None,
    zero_division: float = 0.0,
) -> F1Result:
    """Intersection-based per-class and macro F1 of ``detections`` against ``ground_truth``.

    Both event sets index clips and classes the same way (``cls < n_classes``). Defaults
    are the paper's setting (DTC = GTC = 0.7, no CTTC); the 2022 recipe's own validation
    used ``dtc=0.5, gtc=0.5, cttc=0.3``. ``durations_s`` (one value, or one per clip;
    Subset.metric_durations_s) ends each clip, so that the zero padding of a short clip
    is not scored: detections starting at or after their clip's end are ignored (as
    psds_eval does) and the others are cut at it (psds_eval kept a detection running
    into the padding whole, so its padded part counted against its DTC; greensed scores
    what PSDS scores, frames up to the duration). Zero-length detections are ignored. A
    zero-length reference can never be covered: it is a false negative.

    Precision is ``TP / (TP + FP)`` (1 when there is no detection, as sed_scores_eval),
    recall ``TP / n_ref`` (NaN without references). A class with neither references nor
    detections has no defined F1 and gets ``zero_division`` (0.0, sklearn's default);
    ``zero_division=np.nan`` leaves such classes out of the macro average instead.
    """
    for name, value in (("dtc", dtc), ("gtc", gtc), ("cttc", cttc)):
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    for name, events in (("detection", detections), ("ground-truth", ground_truth)):
        if len(events) and events.cls.max() >= n_classes:
            i = int(np.argmax(events.cls))
            raise DataError(
                f"{name} event {i}: class index {events.cls[i]} >= n_classes={n_classes}"
            )
    n_clips = int(max(detections.clip.max(initial=-1), ground_truth.clip.max(initial=-1))) + 1
    durations = _durations(durations_s, n_clips)

    end = durations[detections.clip]
    keep = (detections.offset_s > detections.onset_s) & (detections.onset_s < end)
    d_key, d_on, d_off = _merge_overlaps(
        detections.clip[keep] * n_classes + detections.cls[keep],
        detections.onset_s[keep],
        np.minimum(detections.offset_s[keep], end[keep]),
    )
    g_key, g_on, g_off = _merge_overlaps(
        ground_truth.clip * n_classes + ground_truth.cls,
        ground_truth.onset_s,
        ground_truth.offset_s,
    )
    d_cls, g_cls = d_key % n_classes, g_key % n_classes

    # DTC: each detection against the same-class references of its clip.
    di, gi = _pairs(d_key, g_key)
    inter = _overlap(d_on[di], d_off[di], g_on[gi], g_off[gi])
    d_len = d_off - d_on
    d_inter = np.bincount(di, weights=inter, minlength=len(d_key))
    dtc_ok = _round(d_inter) >= _round(dtc * d_len)

    # GTC: each reference against the DTC-passing detections.
    g_inter = np.bincount(gi, weights=inter * dtc_ok[di], minlength=len(g_key))
    g_len = g_off - g_on
    gtc_ok = (_round(g_inter) >= _round(gtc * g_len)) & (g_len > 0)

    tp = np.bincount(g_cls[gtc_ok], minlength=n_classes)
    n_ref = np.bincount(g_cls, minlength=n_classes)
    fp = np.bincount(d_cls[~dtc_ok], minlength=n_classes)
    fn = n_ref - tp

    cross = None
    if cttc is not None:
        cross = _cross_triggers(
            d_key[~dtc_ok], d_on[~dtc_ok], d_off[~dtc_ok], g_key, g_on, g_off, n_classes, cttc
        )

    precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), 1.0)
    recall = np.where(n_ref > 0, tp / np.maximum(n_ref, 1), np.nan)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), zero_division).astype(np.float64)
    macro = float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan")
    return F1Result(tp, fp, fn, precision, recall, f1, macro, cross)


def _cross_triggers(d_key, d_on, d_off, g_key, g_on, g_off, n_classes, cttc) -> np.ndarray:
    """[detected class, reference class] counts of DTC-failing detections meeting the CTTC."""
    d_clip, d_cls = d_key // n_classes, d_key % n_classes
    g_clip, g_cls = g_key // n_classes, g_key % n_classes  # g_key sorted => g_clip sorted
    di, gi = _pairs(d_clip, g_clip)
    other = g_cls[gi] != d_cls[di]
    di, gi = di[other], gi[other]
    inter = _overlap(d_on[di], d_off[di], g_on[gi], g_off[gi])
    # Sum per (detection, other class), then test each sum against the CTTC.
    slot = di * n_classes + g_cls[gi]
    sums = np.bincount(slot, weights=inter, minlength=len(d_key) * n_classes)
    sums = sums.reshape(len(d_key), n_classes)
    hit = _round(sums) >= _round(cttc * (d_off - d_on))[:, None]
    # Only classes the detection actually intersects (a zero CTTC must not count all classes).
    touched = np.bincount(slot, weights=inter > 0, minlength=len(d_key) * n_classes)
    hit &= touched.reshape(len(d_key), n_classes) > 0
    cross = np.zeros((n_classes, n_classes), dtype=np.int64)
    det_ix, ref_cls = np.nonzero(hit)
    np.add.at(cross, (d_cls[det_ix], ref_cls), 1)
    return cross
