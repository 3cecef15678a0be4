"""Events -> label arrays on the model's output grid (the CRNN's: 156 frames of 64 ms
per clip, the defaults here; another time pooling passes its frame_rate and n_frames).

Encoding as the baseline's ManyHotEncoder: onset frame = floor(t * 15.625),
offset frame = ceil(t * 15.625), both clipped to [0, 156]; frames
[onset, offset) are active.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from greensed.data.spec import CLIP_S, N_CLASSES, N_OUT_FRAMES, OUT_FRAME_RATE


def time_to_frames(onset_s: float, offset_s: float, *, frame_rate: float = OUT_FRAME_RATE,
                   n_frames: int = N_OUT_FRAMES) -> tuple[int, int]:
    """Frame span [start, stop) that an event covers on the output grid."""
    start = min(max(math.floor(onset_s * frame_rate), 0), n_frames)
    stop = min(max(math.ceil(offset_s * frame_rate), 0), n_frames)
    return start, stop


def crop_events(events: Iterable[tuple[int, float, float]], shift_s: float,
                clip_s: float = CLIP_S) -> list[tuple[int, float, float]]:
    """Move events by -shift_s (the crop start) and clip them to [0, clip_s].

    Events left with no duration (entirely outside the clip) are dropped;
    exact duplicates are kept once, as the baseline does.
    """
    out: list[tuple[int, float, float]] = []
    for cls, on, off in events:
        on, off = max(on - shift_s, 0.0), min(off - shift_s, clip_s)
        if on < off and (cls, on, off) not in out:
            out.append((cls, on, off))
    return out


def encode_strong(events: Iterable[tuple[int, float, float]], *, frame_rate: float = OUT_FRAME_RATE,
                  n_frames: int = N_OUT_FRAMES) -> np.ndarray:
    """[10, n_frames] uint8 frame labels from (class index, onset_s, offset_s) events."""
    grid = np.zeros((N_CLASSES, n_frames), dtype=np.uint8)
    for cls, on, off in events:
        start, stop = time_to_frames(on, off, frame_rate=frame_rate, n_frames=n_frames)
        grid[cls, start:stop] = 1
    return grid


def encode_weak(classes: Iterable[int]) -> np.ndarray:
    """[10] uint8 multi-hot clip labels."""
    tags = np.zeros(N_CLASSES, dtype=np.uint8)
    for cls in classes:
        tags[cls] = 1
    return tags
