"""Clip-level F1."""

from __future__ import annotations

import numpy as np
import pytest

from greensed.metrics.weak import weak_f1


def test_weak_f1_by_hand():
    labels = np.array([[1, 0, 1, 0], [1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]])
    probs = np.array(
        [
            [0.9, 0.2, 0.4, 0.1],
            [0.6, 0.5, 0.1, 0.2],  # class 1 at exactly 0.5: not predicted (strict >)
            [0.7, 0.8, 0.3, 0.3],
            [0.2, 0.1, 0.2, 0.4],
        ]
    )
    macro, per_class = weak_f1(probs, labels)
    # class 0: TP 2, FP 1, FN 1 -> 4/6; class 1: TP 1, FN 1 -> 2/3;
    # class 2: TP 0, FN 1 -> 0; class 3: nothing to find, nothing predicted -> zero_division.
    np.testing.assert_allclose(per_class, [4 / 6, 2 / 3, 0.0, 0.0])
    assert macro == pytest.approx((4 / 6 + 2 / 3) / 4)
    macro_nan, per_class_nan = weak_f1(probs, labels, zero_division=np.nan)
    assert np.isnan(per_class_nan[3])
    assert macro_nan == pytest.approx((4 / 6 + 2 / 3) / 3)


def test_weak_f1_against_sklearn_style_counts():
    rng = np.random.default_rng(0)
    labels = rng.random((200, 10)) < 0.3
    probs = np.clip(labels * 0.6 + rng.normal(0.2, 0.25, labels.shape), 0, 1)
    macro, per_class = weak_f1(probs, labels)
    for k in range(10):
        pred, true = probs[:, k] > 0.5, labels[:, k]
        tp, fp, fn = np.sum(pred & true), np.sum(pred & ~true), np.sum(~pred & true)
        assert per_class[k] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert 0.3 < macro < 1.0


def test_weak_f1_shape_mismatch():
    with pytest.raises(ValueError, match="clips, classes"):
        weak_f1(np.zeros((3, 2)), np.zeros((3, 3)))
