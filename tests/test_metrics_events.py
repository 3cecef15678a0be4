"""Decoding frame probabilities into events, and the Events container."""

from __future__ import annotations

import numpy as np
import pytest

from greensed.errors import DataError
from greensed.metrics.events import Events, decode, median_filter_binary

FRAME_S = 0.064


def assert_events(ev: Events, expected: list[tuple[int, int, float, float]]) -> None:
    got = ev.to_tuples()
    assert [(c, k) for c, k, _, _ in got] == [(c, k) for c, k, _, _ in expected]
    np.testing.assert_allclose([t[2:] for t in got], [t[2:] for t in expected], atol=1e-12)


def test_decode_hand_made():
    probs = np.zeros((2, 2, 20))
    probs[0, 0, 2:6] = 0.9  # one event, frames 2-5
    probs[0, 1, 0:3] = 0.8  # starts at the clip start
    probs[0, 1, 17:20] = 0.7  # runs to the clip end
    probs[1, 1, 5:15] = 0.6
    probs[1, 1, 9] = 0.1  # a one-frame gap
    ev = decode(probs, median_window=1, clip_s=20 * FRAME_S)
    assert_events(
        ev,
        [
            (0, 0, 2 * FRAME_S, 6 * FRAME_S),
            (0, 1, 0.0, 3 * FRAME_S),
            (0, 1, 17 * FRAME_S, 20 * FRAME_S),
            (1, 1, 5 * FRAME_S, 9 * FRAME_S),
            (1, 1, 10 * FRAME_S, 15 * FRAME_S),
        ],
    )
    # The median filter closes the one-frame gap and keeps the others.
    ev3 = decode(probs, median_window=3, clip_s=20 * FRAME_S)
    assert [(c, k) for c, k, _, _ in ev3.to_tuples()] == [(0, 0), (0, 1), (0, 1), (1, 1)]
    assert_events(Events.from_tuples(ev3.to_tuples()[-1:]), [(1, 1, 5 * FRAME_S, 15 * FRAME_S)])


def test_decode_threshold_is_strict_and_offsets_clipped():
    probs = np.full((1, 1, 10), 0.5)
    assert len(decode(probs, median_window=1)) == 0  # baseline: probs > threshold
    probs[0, 0, 3:] = np.nextafter(0.5, 1.0)
    ev = decode(probs, median_window=1, frame_s=0.2, clip_s=1.5)
    assert_events(ev, [(0, 0, 0.6, 1.5)])


def test_decode_default_window_removes_short_blips():
    probs = np.zeros((1, 1, 156))
    probs[0, 0, 10:13] = 0.9  # 3 frames: removed by a 7-frame median
    probs[0, 0, 50:60] = 0.9  # 10 frames: kept
    ev = decode(probs)
    assert_events(ev, [(0, 0, 50 * FRAME_S, 60 * FRAME_S)])


@pytest.mark.parametrize("window", [1, 2, 3, 6, 7, 9, 25, 31, 32, 41])
def test_median_filter_equals_scipy(window):
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(window)
    for frames in (1, 4, 7, 30, 156):
        if window // 2 >= 4 * frames:
            continue  # beyond the documented range (scipy's border wraps differently)
        for p in (0.2, 0.5, 0.8):
            x = rng.random((6, 3, frames)) < p
            ref = ndimage.median_filter(x, size=(1, 1, window))
            np.testing.assert_array_equal(median_filter_binary(x, window), ref)


def test_decode_equals_loop_over_clips_with_scipy():
    ndimage = pytest.importorskip("scipy.ndimage")
    rng = np.random.default_rng(0)
    # Smooth-ish random probabilities, so events are a few frames long.
    probs = rng.random((40, 10, 156)).cumsum(-1) % 1.0
    expected = []
    for clip in range(probs.shape[0]):
        # The baseline's per-clip call: [frames, classes], filter size (window, 1).
        binary = ndimage.median_filter(probs[clip].T > 0.5, (7, 1))
        for k in range(probs.shape[1]):
            padded = np.concatenate([[False], binary[:, k], [False]]).astype(int)
            starts = np.flatnonzero(np.diff(padded) == 1)
            ends = np.flatnonzero(np.diff(padded) == -1)
            expected += [
                (clip, k, s * FRAME_S, min(e * FRAME_S, 10.0))
                for s, e in zip(starts, ends, strict=True)
            ]
    got = decode(probs).to_tuples()
    assert len(got) == len(expected) > 100
    np.testing.assert_allclose(np.array(got), np.array(expected))


def test_events_validation_and_constructors():
    ev = Events.from_labelled(
        [("b.wav", "Dog", 1.0, 2.0), ("a.wav", "Cat", 0.0, 0.5)], ["a.wav", "b.wav"], ["Cat", "Dog"]
    )
    assert ev.sorted().to_tuples() == [(0, 0, 0.0, 0.5), (1, 1, 1.0, 2.0)]
    assert len(Events.from_tuples([])) == 0
    with pytest.raises(DataError, match="unknown class 'Bird'"):
        Events.from_labelled([("a.wav", "Bird", 0.0, 1.0)], ["a.wav"], ["Cat"])
    with pytest.raises(DataError, match="unknown file"):
        Events.from_labelled([("z.wav", "Cat", 0.0, 1.0)], ["a.wav"], ["Cat"])
    with pytest.raises(DataError, match="event 1: invalid times"):
        Events.from_tuples([(0, 0, 0.0, 1.0), (0, 0, 2.0, 1.0)])
    with pytest.raises(DataError, match="differ in length"):
        Events(np.zeros(2), np.zeros(1), np.zeros(2), np.zeros(2))
