from __future__ import annotations

import numpy as np

from greensed.data.labels import crop_events, encode_strong, encode_weak, time_to_frames
from greensed.data.spec import N_CLASSES, N_OUT_FRAMES


def active(grid: np.ndarray, cls: int) -> list[int]:
    return np.flatnonzero(grid[cls]).tolist()


def test_frame_span_by_hand():
    # 0.5 * 15.625 = 7.8125 -> 7; 1.25 * 15.625 = 19.53125 -> ceil 20.
    assert time_to_frames(0.5, 1.25) == (7, 20)
    # 8.0 s is exactly frame edge 125: the offset frame is not included.
    assert time_to_frames(1.0, 8.0) == (15, 125)
    # Just below the edge of frame 2 (0.128 s): 0.127 * 15.625 = 1.984375.
    assert time_to_frames(0.127, 0.127) == (1, 2)
    # t = 10.0 s -> 156.25 -> ceil 157, clipped to the grid's 156.
    assert time_to_frames(9.9, 10.0) == (154, 156)
    assert time_to_frames(0.0, 0.01) == (0, 1)


def test_encode_strong_grid():
    grid = encode_strong([(3, 0.5, 1.25), (3, 9.9, 10.0), (0, 0.127, 0.191)])
    assert grid.shape == (N_CLASSES, N_OUT_FRAMES) and grid.dtype == np.uint8
    assert active(grid, 3) == list(range(7, 20)) + [154, 155]
    # 0.191 * 15.625 = 2.984375 -> ceil 3: frames 1 and 2.
    assert active(grid, 0) == [1, 2]
    assert grid.sum() == 13 + 2 + 2


def test_encode_strong_on_a_custom_grid():
    grid = encode_strong([(1, 0.0, 1.0)], frame_rate=2.0, n_frames=4)
    assert grid.shape == (N_CLASSES, 4) and active(grid, 1) == [0, 1]


def test_encode_weak():
    tags = encode_weak([2, 9, 2])
    assert tags.dtype == np.uint8 and tags.tolist() == [0, 0, 1, 0, 0, 0, 0, 0, 0, 1]


def test_crop_shifts_clips_and_drops():
    events = [(0, 0.5, 3.0), (1, 10.5, 11.5), (2, 11.2, 12.0), (3, 0.2, 0.9), (0, 0.5, 3.0)]
    assert crop_events(events, 1.0) == [(0, 0.0, 2.0), (1, 9.5, 10.0)]


def test_crop_without_shift_clips_long_events():
    assert crop_events([(4, 8.0, 12.0)], 0.0) == [(4, 8.0, 10.0)]
    assert crop_events([(4, 8.0, 12.0)], 0.0, clip_s=5.0) == []
