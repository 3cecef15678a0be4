"""PSDS1 and PSDS2 of frame probabilities, computed with sed_scores_eval.

Settings of DCASE 2022 task 4 (C. Bilen et al., ICASSP 2020, "A Framework for the Robust
Evaluation of Sound Event Detection"; scenarios of the challenge):

* PSDS1: DTC = GTC = 0.7, no CTTC, alpha_ct = 0, alpha_st = 1, max_efpr = 100 per hour;
* PSDS2: DTC = GTC = 0.1, CTTC = 0.3, alpha_ct = 0.5, alpha_st = 1, max_efpr = 100 per hour.

The baseline decodes at 50 thresholds (0.01, 0.03, ..., 0.99), median-filtering the binary
prediction at each, and scores those 50 operating points with psds_eval. Here the
scores go to sed_scores_eval (J. Ebbers et al., ICASSP 2022), which evaluates every
threshold exactly. To get the baseline's 50 operating points from it, each probability is
first median-filtered along time (a median filter commutes with thresholding, so this
equals filtering each binary prediction) and then snapped down to the largest grid
threshold it exceeds; sed_scores_eval's operating points are then exactly the baseline's.
``n_thresholds=None`` skips the snapping and gives sed_scores_eval's exact PSDS.

sed_scores_eval and scipy are imported only here, when PSDS is asked for: per-epoch
validation does not need them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from greensed.errors import DataError, GreensedError
from greensed.metrics.events import Events

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
    below t, so sed_scores_eval sees only the grid's operating points.
    """
    index = np.searchsorted(grid, probs, side="left")  # count of grid values < probs
    return np.where(index > 0, grid[np.maximum(index - 1, 0)], 0.0)


def _reference_events(
    ground_truth: Events, files: Sequence[str], classes: Sequence[str]
) -> dict[str, list[tuple[float, float, str]]]:
    """Per-file reference tuples, with touching or overlapping same-class events joined.

    sed_scores_eval refuses such events; their union is what a detector can find.
    """
    if len(ground_truth) and ground_truth.clip.max() >= len(files):
        raise DataError(f"ground-truth clip index {ground_truth.clip.max()} >= {len(files)} files")
    if len(ground_truth) and ground_truth.cls.max() >= len(classes):
        raise DataError(
            f"ground-truth class index {ground_truth.cls.max()} >= {len(classes)} classes"
        )
    refs: dict[str, list[list[Any]]] = {f: [] for f in files}
    last: dict[tuple[int, int], list[Any]] = {}
    for clip, k, onset, offset in ground_truth.sorted().to_tuples():
        prev = last.get((clip, k))
        if prev is not None and onset <= prev[1]:
            prev[1] = max(prev[1], offset)
            continue
        event = [onset, offset, classes[k]]
        last[(clip, k)] = event
        refs[files[clip]].append(event)
    return {f: [(float(a), float(b), str(c)) for a, b, c in evs] for f, evs in refs.items()}


# What to pip install when a module PSDS imports is missing (module -> requirement).
_INSTALL = {
    "sed_scores_eval": "'sed_scores_eval==0.0.4'",
    "pandas": "'pandas<3'",
    "scipy": "scipy",
    # sed_scores_eval -> sed_eval -> dcase_util imports it; setuptools 81 no longer ships it.
    "pkg_resources": "'setuptools<81'",
    "yaml": "PyYAML",
    "magic": "python-magic",
    "sklearn": "scikit-learn",
}


def _import_psds_modules() -> tuple[Any, Any, Any]:
    """(scipy.ndimage, create_score_dataframe, sed_scores_eval's psds), or one
    GreensedError line naming exactly the one missing requirement."""
    try:
        import pandas as pd
        import scipy.ndimage as scipy_ndimage
        from sed_scores_eval.base_modules.scores import create_score_dataframe
        from sed_scores_eval.intersection_based import psds as sse_psds
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        requirement = _INSTALL.get(top, top or "sed_scores_eval==0.0.4")
        why = (" (dcase_util, under sed_scores_eval, imports it; setuptools 81 removed it)"
               if top == "pkg_resources" else "")
        raise GreensedError(
            f"PSDS needs the module {top!r}{why}: pip install {requirement}"
        ) from None
    except ImportError as exc:  # installed but broken (e.g. a compiled part)
        raise GreensedError(f"PSDS: cannot import its dependencies ({exc})") from None
    if int(pd.__version__.split(".")[0]) >= 3:
        # pandas 3 hands out read-only arrays that sed_scores_eval 0.0.4 writes into.
        raise GreensedError(
            f"PSDS needs pandas<3 (found {pd.__version__}): pip install 'pandas<3'"
        )
    return scipy_ndimage, create_score_dataframe, sse_psds


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
    scipy_ndimage, create_score_dataframe, sse_psds = _import_psds_modules()
    probs = np.asarray(frame_probs, dtype=np.float64)
    if probs.ndim != 3 or probs.shape[:2] != (len(files), len(classes)):
        raise ValueError(
            f"frame_probs must be [{len(files)} files, {len(classes)} classes, frames], "
            f"got shape {probs.shape}"
        )
    if median_window > 1:
        # Same window placement and border as scipy's filter on the baseline's binary output.
        probs = scipy_ndimage.median_filter(probs, size=(1, 1, median_window), mode="reflect")
    if n_thresholds is not None:
        probs = _snap_to_grid(probs, threshold_grid(n_thresholds))

    durations = np.asarray(durations_s, dtype=np.float64)
    durations = np.broadcast_to(durations, (len(files),)) if durations.ndim == 0 else durations
    if durations.shape != (len(files),):
        raise DataError(f"durations_s has shape {durations.shape}; need one per file")
    bad = ~(np.isfinite(durations) & (durations > 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DataError(f"PSDS: {files[i]}: duration must be a positive number "
                        f"({durations[i]!r} s)")
    n_frames = probs.shape[2]
    edges = np.arange(n_frames + 1) * frame_s
    # Frames starting before each clip's end, compared at sed_scores_eval's 6 decimals so
    # that a duration on a frame edge (3.2 s = 50 frames) keeps no zero-length frame.
    n_scored = np.count_nonzero(
        np.round(edges[:-1], 6)[None, :] < np.round(durations, 6)[:, None], axis=1)
    # PSDS needs a TPR per class: a class with no reference event has none, so it is
    # left out (and named in the result) instead of failing the whole evaluation.
    present = set(np.unique(ground_truth.cls).tolist())
    keep = [k for k in range(len(classes)) if k in present]
    if not keep:
        raise DataError("PSDS: the ground truth has no event at all")
    kept = [classes[k] for k in keep]
    scores = {}
    for i, name in enumerate(files):
        n = int(n_scored[i])
        stamps = np.minimum(edges[:n + 1], durations[i])
        # A fresh, writable [T, C] array per clip (sed_scores_eval writes into its inputs).
        scores[name] = create_score_dataframe(
            np.array(probs[i][keep][:, :n].T, copy=True), stamps, kept
        )
    refs = _reference_events(ground_truth, files, classes)
    audio_durations = {name: float(durations[i]) for i, name in enumerate(files)}

    out: dict[str, Any] = {
        "n_thresholds": n_thresholds,
        "median_window": median_window,
        "classes_without_ground_truth": [c for c in classes if c not in kept],
        "cross_triggers_scored": len(kept) > 1,
    }
    for key, setting in (("psds1", PSDS1), ("psds2", PSDS2)):
        if len(kept) == 1 and setting["cttc_threshold"] is not None:
            # sed_scores_eval 0.0.4 fails with a TypeError on a CTTC over one class.
            setting = {**setting, "cttc_threshold": None, "alpha_ct": 0.0}
        value, per_class, *_ = sse_psds(scores, refs, audio_durations, **setting)
        out[key] = float(value)
        out[f"{key}_class"] = {str(c): float(per_class[c]) if c in kept else None
                               for c in classes}
    return out
