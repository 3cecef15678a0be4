"""Clip-level (weak) F1: is each class present in each clip?"""

from __future__ import annotations

import numpy as np

__all__ = ["weak_f1"]


def weak_f1(
    probs: np.ndarray,
    labels: np.ndarray,
    *,
    threshold: float = 0.5,
    zero_division: float = 0.0,
) -> tuple[float, np.ndarray]:
    """Macro and per-class F1 of clip-level predictions ``[N, C]`` against 0/1 labels ``[N, C]``.

    A clip predicts class c when ``probs > threshold`` (strict, as the frame decoder).
    Per class F1 = 2 TP / (2 TP + FP + FN). A class with positives but no true
    positive scores 0 and counts in the macro average (as for the event F1). A class
    with no positives and no predictions (TP = FP = FN = 0) has no defined F1: it gets
    ``zero_division``, as sklearn's ``f1_score`` does; the default 0.0 is sklearn's
    default, and ``zero_division=np.nan`` leaves such classes out of the macro average.

    Returns ``(macro_f1, per_class_f1)``; macro_f1 is NaN only when every class is NaN.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    if probs.ndim != 2 or probs.shape != labels.shape:
        raise ValueError(
            f"probs and labels must both be [clips, classes], got {probs.shape} and {labels.shape}"
        )
    pred = probs > threshold
    truth = labels.astype(bool)
    tp = np.sum(pred & truth, axis=0)
    fp = np.sum(pred & ~truth, axis=0)
    fn = np.sum(~pred & truth, axis=0)
    denom = 2 * tp + fp + fn
    per_class = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), zero_division).astype(np.float64)
    macro = float(np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan")
    return macro, per_class
