"""PSDS1 and PSDS2 of frame probabilities: exact, vectorised numpy (docs/metrics.md).

Settings of DCASE 2022 task 4 (C. Bilen et al., ICASSP 2020, "A Framework for the Robust
Evaluation of Sound Event Detection"; scenarios of the challenge):

* PSDS1: DTC = GTC = 0.7, no CTTC, alpha_ct = 0, alpha_st = 1, max_efpr = 100 per hour;
* PSDS2: DTC = GTC = 0.1, CTTC = 0.3, alpha_ct = 0.5, alpha_st = 1, max_efpr = 100 per hour.

The values are those of sed_scores_eval 0.0.4's ``intersection_based.psds`` (J. Ebbers
et al., ICASSP 2022), which evaluates every threshold exactly; ``greensed.metrics.psds_roc``
computes them for all clips, classes and thresholds at once, and the tests hold it to
sed_scores_eval (``greensed.metrics.psds_reference``) to 1e-9. The baseline decodes at
50 thresholds (0.01, 0.03, ..., 0.99), median-filtering the binary prediction at each:
each probability is median-filtered along time (a median commutes with thresholding)
and snapped down to the largest grid threshold it exceeds, so the exact evaluation sees
exactly the baseline's 50 operating points. ``n_thresholds=None`` skips the snapping.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from greensed.errors import DataError
from greensed.metrics.events import Events
from greensed.metrics.psds_roc import (
    References,
    level_nodes,
    median_filter_ranks,
    psds_from_nodes,
    score_nodes,
)

__all__ = ["PSDS1", "PSDS2", "psds_scores", "threshold_grid"]

PSDS1: dict[str, Any] = dict(
    dtc_threshold=0.7, gtc_threshold=0.7, cttc_threshold=None, alpha_ct=0.0, alpha_st=1.0,
    max_efpr=100.0,
)  # fmt: skip
PSDS2: dict[str, Any] = dict(
    dtc_threshold=0.1, gtc_threshold=0.1, cttc_threshold=0.3, alpha_ct=0.5, alpha_st=1.0,
    max_efpr=100.0,
)  # fmt: skip


def threshold_grid(n_thresholds: int) -> np.ndarray:
    """The baseline's decision thresholds: (2i + 1) / (2n) for i < n (0.01 ... 0.99 for 50)."""
    return (2 * np.arange(n_thresholds) + 1) / (2 * n_thresholds)


def _snap_to_grid(probs: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Each value -> the largest grid threshold it strictly exceeds (0 if none).

    ``snapped > t`` then holds exactly where ``probs > g`` for the grid value g just
    below t, so an exact evaluation sees only the grid's operating points.
    """
    index = np.searchsorted(grid, probs, side="left")  # count of grid values < probs
    return np.where(index > 0, grid[np.maximum(index - 1, 0)], 0.0)


def _check_references(ground_truth: Events, n_files: int, n_classes: int) -> None:
    if len(ground_truth) and ground_truth.clip.max() >= n_files:
        raise DataError(f"ground-truth clip index {ground_truth.clip.max()} >= {n_files} files")
    if len(ground_truth) and ground_truth.cls.max() >= n_classes:
        raise DataError(
            f"ground-truth class index {ground_truth.cls.max()} >= {n_classes} classes")


def _joined(ground_truth: Events) -> Events:
    """References sorted by (clip, class, onset), touching or overlapping same-class
    events joined into their union (sed_scores_eval refuses them; the union is what a
    detector can find)."""
    ev = ground_truth.sorted()
    same = (ev.clip[1:] == ev.clip[:-1]) & (ev.cls[1:] == ev.cls[:-1])
    if not np.any(same & (ev.onset_s[1:] <= ev.offset_s[:-1])):
        return ev  # sorted by onset, no neighbour touching: nothing to join
    rows: list[list] = []  # rare: a plain loop
    for clip, k, onset, offset in ev.to_tuples():
        if rows and rows[-1][0] == clip and rows[-1][1] == k and onset <= rows[-1][3]:
            rows[-1][3] = max(rows[-1][3], offset)
        else:
            rows.append([clip, k, onset, offset])
    return Events.from_tuples([tuple(r) for r in rows])


def _reference_events(
    ground_truth: Events, files: Sequence[str], classes: Sequence[str]
) -> dict[str, list[tuple[float, float, str]]]:
    """Per-file reference tuples (onset, offset, class), joined as ``_joined``: the
    ground truth handed to sed_scores_eval by the reference implementation."""
    _check_references(ground_truth, len(files), len(classes))
    refs: dict[str, list[tuple[float, float, str]]] = {f: [] for f in files}
    for clip, k, onset, offset in _joined(ground_truth).to_tuples():
        refs[files[clip]].append((float(onset), float(offset), str(classes[k])))
    return refs


def _durations(durations_s: np.ndarray | float, files: Sequence[str]) -> np.ndarray:
    durations = np.asarray(durations_s, dtype=np.float64)
    durations = np.broadcast_to(durations, (len(files),)) if durations.ndim == 0 else durations
    if durations.shape != (len(files),):
        raise DataError(f"durations_s has shape {durations.shape}; need one per file")
    bad = ~(np.isfinite(durations) & (durations > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"PSDS: {files[i]}: duration must be a positive number "
                        f"({durations[i]!r} s)")
    return durations


def _grid_ranks(probs: np.ndarray, n: int) -> np.ndarray:
    """The number of grid thresholds (2i + 1) / (2n) strictly below each value.

    Arithmetic first (ceil(n p - 1/2)), then corrected by at most one either way against
    the exact bounds: the smallest value of the scores' dtype above each threshold (for
    float32 scores, compared exactly as their float64 values would be)."""
    grid = threshold_grid(n)
    dtype = probs.dtype if probs.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    p = probs.astype(dtype, copy=False)
    up = grid.astype(dtype)
    up = np.where(up.astype(np.float64) > grid, up, np.nextafter(up, dtype.type(2)))
    up = np.append(up, dtype.type(np.inf))
    count = np.ceil(p * dtype.type(n) - dtype.type(0.5))
    np.clip(count, 0, n, out=count)
    small = np.uint8 if n < 255 else np.int32
    count = count.astype(small)
    count += (p >= up[count]).astype(small)
    count -= ((count > 0) & (p < up[np.maximum(count, 1) - 1])).astype(small)
    return count


def _ranks(probs: np.ndarray, n_thresholds: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Integer ranks [N, C, T] of the scores, ascending per class, and each class's count.

    On the baseline's grid the rank is the number of grid thresholds below the value
    (the snapped score's position); otherwise the position among the class's distinct
    values.
    """
    n_classes = probs.shape[1]
    if n_thresholds is not None:
        return _grid_ranks(probs, n_thresholds), np.full(n_classes, n_thresholds + 1)
    ranks = np.empty(probs.shape, dtype=np.int32)
    counts = np.zeros(n_classes, dtype=np.int64)
    for k in range(n_classes):
        values, inverse = np.unique(probs[:, k, :], return_inverse=True)
        ranks[:, k, :] = inverse.reshape(probs.shape[0], probs.shape[2])
        counts[k] = len(values)
    return ranks, counts


def psds_scores(
    frame_probs: np.ndarray,
    ground_truth: Events,
    files: list[str],
    classes: list[str],
    *,
    durations_s: np.ndarray | float = 10.0,
    n_thresholds: int | None = 50,
    median_window: int = 7,
    frame_s: float = 0.064,
) -> dict[str, Any]:
    """PSDS1 and PSDS2 of frame probabilities ``[N clips, C classes, T frames]``.

    ``files[i]`` names clip i and ``classes[k]`` class k of both ``frame_probs`` and
    ``ground_truth``. Frame t spans ``[t * frame_s, (t + 1) * frame_s)``. The
    probabilities are median-filtered over ``median_window`` frames (scipy's reflect
    border, as the baseline's decoder; 1 disables it) and, unless ``n_thresholds`` is
    None, snapped to the baseline's threshold grid.

    ``durations_s`` (one value, or one per file; Subset.metric_durations_s) ends each
    clip: only the frames that start before it are scored, the last one cut at it, as
    the baseline's score dataframes truncate a padded clip. The zero padding of a short
    clip is therefore never scored, and its eFPR counts only its real duration.

    Classes without a reference event are left out (PSDS has no TPR for them) and
    named in ``"classes_without_ground_truth"``. With a single class left, PSDS2 has no
    cross-trigger term (a cross-trigger needs another class) and is computed without
    its CTTC, which is its exact value; ``"cross_triggers_scored"`` says so.

    Returns ``{"psds1", "psds2"}`` (floats in [0, 1]), ``"psds1_class"`` and
    ``"psds2_class"`` (per-class values by name) and the settings used.
    """
    probs = np.asarray(frame_probs)
    if probs.ndim != 3 or probs.shape[:2] != (len(files), len(classes)):
        raise ValueError(
            f"frame_probs must be [{len(files)} files, {len(classes)} classes, frames], "
            f"got shape {probs.shape}"
        )
    if median_window < 1:
        raise ValueError(f"median window must be >= 1, got {median_window}")
    durations = _durations(durations_s, files)
    _check_references(ground_truth, len(files), len(classes))
    if len(set(files)) != len(files):  # results are per file name
        seen: set[str] = set()
        for name in files:
            if name in seen:
                raise DataError(f"PSDS: file {name!r} is listed twice")
            seen.add(name)
    finite = np.isfinite(probs)
    if not finite.all():
        i, k, t = (int(v[0]) for v in np.nonzero(~finite))
        raise DataError(f"PSDS: {files[i]}: class {classes[k]!r}, frame {t}: "
                        f"probability {float(probs[i, k, t])!r} is not a number")
    present = np.zeros(len(classes), dtype=bool)
    present[np.unique(ground_truth.cls)] = True
    if not present.any():
        raise DataError("PSDS: the ground truth has no event at all")
    # PSDS needs a TPR per class: a class with no reference event has none, so it is
    # left out (and named in the result) instead of failing the whole evaluation.
    keep = np.flatnonzero(present)
    n_clips, n_kept, n_frames = len(files), len(keep), probs.shape[2]
    ranks, n_ranks = _ranks(probs[:, keep, :] if n_kept < len(classes) else probs,
                            n_thresholds)
    ranks = median_filter_ranks(ranks, median_window)
    edges = np.arange(n_frames + 1) * frame_s
    # Frames starting before each clip's end, compared at sed_scores_eval's 6 decimals so
    # that a duration on a frame edge (3.2 s = 50 frames) keeps no zero-length frame.
    n_scored = np.count_nonzero(
        np.round(edges[:-1], 6)[None, :] < np.round(durations, 6)[:, None], axis=1)
    nodes = level_nodes(ranks.reshape(n_clips * n_kept, n_frames), np.repeat(n_scored, n_kept))
    clip = nodes.row // n_kept
    on_s = np.minimum(nodes.a * frame_s, durations[clip])
    off_s = np.minimum(nodes.b * frame_s, durations[clip])

    kept_of = np.full(len(classes), -1)
    kept_of[keep] = np.arange(n_kept)
    ev = _joined(ground_truth)
    refs = References(ev.clip, kept_of[ev.cls], ev.onset_s, ev.offset_s)
    scored = score_nodes(nodes, on_s, off_s, refs, n_kept, n_ranks)
    dataset_s = sum(float(d) for d in durations)  # in file order, as sed_scores_eval
    out: dict[str, Any] = {
        "n_thresholds": n_thresholds,
        "median_window": median_window,
        "classes_without_ground_truth": [classes[k] for k in range(len(classes))
                                         if not present[k]],
        "cross_triggers_scored": n_kept > 1,
    }
    for key, setting in (("psds1", PSDS1), ("psds2", PSDS2)):
        cttc, alpha_ct = setting["cttc_threshold"], setting["alpha_ct"]
        if n_kept == 1:  # a cross-trigger needs another class
            cttc, alpha_ct = None, 0.0
        value, per_class = psds_from_nodes(
            scored, refs, n_classes=n_kept, dataset_s=dataset_s,
            dtc=setting["dtc_threshold"], gtc=setting["gtc_threshold"], cttc=cttc,
            alpha_ct=alpha_ct, alpha_st=setting["alpha_st"], max_efpr=setting["max_efpr"])
        out[key] = value
        out[f"{key}_class"] = {
            str(c): (float(per_class[kept_of[k]]) if present[k] else None)
            for k, c in enumerate(classes)}
    return out
