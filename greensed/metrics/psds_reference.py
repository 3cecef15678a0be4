"""The previous PSDS: sed_scores_eval 0.0.4 scoring one DataFrame per clip.

Kept as the oracle that ``greensed.metrics.psds`` is tested and benchmarked against
(tests/test_metrics_psds*.py, benchmarks/psds_speed.py): the same inputs, settings and
edge-case handling, computed by sed_scores_eval's ``intersection_based.psds``. It needs
the extra ``greensed[reference]`` (sed_scores_eval, pandas<3, setuptools<81); greensed
itself never imports this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from greensed.errors import DataError, GreensedError
from greensed.metrics.events import Events
from greensed.metrics.psds import (
    PSDS1,
    PSDS2,
    _durations,
    _reference_events,
    _snap_to_grid,
    threshold_grid,
)

__all__ = ["psds_scores_reference"]

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


def psds_scores_reference(
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
    """``greensed.metrics.psds.psds_scores``, computed with sed_scores_eval: the same
    arguments, checks and result (that function's docstring says what each means); the
    oracle that the tests and benchmarks/psds_speed.py hold the fast one to."""
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

    durations = _durations(durations_s, files)
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
