"""Sound events as parallel numpy arrays, and decoding of frame probabilities into events.

Decoding follows the DCASE 2022 task 4 baseline (``batched_decode_preds`` in
DESED_task): binarise with a strict ``probability > threshold``, median-filter
the binary prediction along time per class (``scipy.ndimage.median_filter``
with its default border mode ``'reflect'``), take contiguous active regions as
events, onset = start_frame * frame_s, offset = end_frame * frame_s (end
exclusive), clipped to [0, clip_s]. Everything is vectorised over clips and
classes: no Python loop over clips or events.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from greensed.errors import DataError

__all__ = ["Events", "decode", "median_filter_binary"]


# eq=False: element-wise array equality has no single truth value.
@dataclass(frozen=True, eq=False)
class Events:
    """Events as parallel 1-D arrays: clip index, class index, onset and offset in seconds."""

    clip: np.ndarray
    cls: np.ndarray
    onset_s: np.ndarray
    offset_s: np.ndarray

    def __post_init__(self) -> None:
        arrays = {
            "clip": np.asarray(self.clip, dtype=np.int64).reshape(-1),
            "cls": np.asarray(self.cls, dtype=np.int64).reshape(-1),
            "onset_s": np.asarray(self.onset_s, dtype=np.float64).reshape(-1),
            "offset_s": np.asarray(self.offset_s, dtype=np.float64).reshape(-1),
        }
        lengths = {name: len(a) for name, a in arrays.items()}
        if len(set(lengths.values())) != 1:
            raise DataError(f"Events arrays differ in length: {lengths}")
        for name, a in arrays.items():
            object.__setattr__(self, name, a)
        if len(self) == 0:
            return
        if self.clip.min() < 0 or self.cls.min() < 0:
            i = int(np.argmin(np.minimum(self.clip, self.cls)))
            raise DataError(
                f"event {i}: negative clip or class index (clip={self.clip[i]}, cls={self.cls[i]})"
            )
        bad = ~(np.isfinite(self.onset_s) & np.isfinite(self.offset_s))
        bad |= self.offset_s < self.onset_s
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"event {i}: invalid times onset={self.onset_s[i]!r} offset={self.offset_s[i]!r} "
                "(need finite values with offset >= onset)"
            )

    def __len__(self) -> int:
        return len(self.clip)

    @classmethod
    def empty(cls) -> Events:
        return cls(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))

    @classmethod
    def from_tuples(cls, rows: Iterable[tuple[int, int, float, float]]) -> Events:
        """Build from ``(clip, cls, onset_s, offset_s)`` tuples."""
        rows = list(rows)
        if not rows:
            return cls.empty()
        clip, klass, onset, offset = zip(*rows, strict=True)
        return cls(np.array(clip), np.array(klass), np.array(onset), np.array(offset))

    @classmethod
    def from_labelled(
        cls,
        rows: Iterable[tuple[str, str, float, float]],
        files: Sequence[str],
        classes: Sequence[str],
    ) -> Events:
        """Build from ``(filename, event_label, onset_s, offset_s)`` tuples (as in a strong tsv).

        ``files`` and ``classes`` give the index of each name; an unknown name is a DataError.
        """
        file_ix = {f: i for i, f in enumerate(files)}
        class_ix = {c: i for i, c in enumerate(classes)}
        out = []
        for n, (fname, label, onset, offset) in enumerate(rows):
            if fname not in file_ix:
                raise DataError(f"event {n}: unknown file {fname!r}")
            if label not in class_ix:
                raise DataError(f"event {n}: unknown class {label!r} (known: {', '.join(classes)})")
            out.append((file_ix[fname], class_ix[label], float(onset), float(offset)))
        return cls.from_tuples(out)

    def to_tuples(self) -> list[tuple[int, int, float, float]]:
        return [
            (int(a), int(b), float(c), float(d))
            for a, b, c, d in zip(self.clip, self.cls, self.onset_s, self.offset_s, strict=True)
        ]

    def sorted(self) -> Events:
        """Sorted by (clip, cls, onset_s, offset_s)."""
        order = np.lexsort((self.offset_s, self.onset_s, self.cls, self.clip))
        return Events(self.clip[order], self.cls[order], self.onset_s[order], self.offset_s[order])


def median_filter_binary(binary: np.ndarray, window: int) -> np.ndarray:
    """Median filter of a boolean array along its last axis, equal to scipy's.

    Same output as ``scipy.ndimage.median_filter(binary, size=(1, ..., window))``
    with the default ``mode='reflect'`` (``d c b a | a b c d | d c b a``), for any window
    shorter than 8 times the signal (always, for 7 of 156 frames). The median of
    ``window`` binary values is a vote: for an odd window, 1 when at least
    ``window // 2 + 1`` values are 1; scipy takes rank ``window // 2`` of the sorted
    window, so for any window the output is 1 when at least ``window - window // 2`` are.
    Window counts come from shifted adds (small windows) or a cumulative sum.
    """
    binary = np.asarray(binary, dtype=bool)
    if window < 1:
        raise ValueError(f"median window must be >= 1, got {window}")
    if window == 1 or binary.shape[-1] == 0:
        return binary.copy()
    # scipy places the window centre at index window // 2 of the footprint.
    left = window // 2
    right = window - 1 - left
    n = binary.shape[-1]
    if max(left, right) > n:
        # The window is wider than the signal: reflect periodically (period 2n). This equals
        # scipy while window // 2 < 4 n; beyond that scipy's rank filter wraps differently.
        i = np.arange(-left, n + right) % (2 * n)
        padded = binary[..., np.where(i >= n, 2 * n - 1 - i, i)]
    else:
        padded = np.concatenate(
            [binary[..., :left][..., ::-1], binary, binary[..., n - right :][..., ::-1]], axis=-1
        )
    if window <= 31:
        # A few shifted uint8 adds beat a cumulative sum (3x faster at window 7).
        padded = padded.view(np.uint8)
        ones = padded[..., :n].copy()
        for j in range(1, window):
            ones += padded[..., j : j + n]
    else:
        csum = np.zeros(padded.shape[:-1] + (padded.shape[-1] + 1,), dtype=np.int32)
        np.cumsum(padded, axis=-1, dtype=np.int32, out=csum[..., 1:])
        ones = csum[..., window:] - csum[..., :-window]
    return ones >= window - window // 2


def decode(
    probs: np.ndarray,
    *,
    threshold: float = 0.5,
    median_window: int = 7,
    frame_s: float = 0.064,
    clip_s: float = 10.0,
) -> Events:
    """Decode frame probabilities ``[N clips, C classes, T frames]`` into events.

    Frames with ``probs > threshold`` (strict, as the baseline) are active; the binary
    activity is median-filtered over ``median_window`` frames along time (window 1: no
    filter); each maximal run of active frames ``[s, e)`` becomes one event with
    ``onset_s = s * frame_s`` and ``offset_s = e * frame_s``, both clipped to
    ``[0, clip_s]``. Events come out sorted by (clip, class, onset).
    """
    probs = np.asarray(probs)
    if probs.ndim != 3:
        raise ValueError(f"probs must be [clips, classes, frames], got shape {probs.shape}")
    n_clips, n_classes, n_frames = probs.shape
    active = median_filter_binary(probs > threshold, median_window)
    # Pad one inactive frame each side so every run has a rising and a falling edge; in
    # row-major order a row's edges then alternate rise, fall, rise, fall ...
    flat = np.zeros((n_clips * n_classes, n_frames + 2), dtype=bool)
    flat[:, 1:-1] = active.reshape(n_clips * n_classes, n_frames)
    change = np.flatnonzero(flat[:, 1:] ^ flat[:, :-1])
    row, col = np.divmod(change, n_frames + 1)
    row_on, start, end = row[0::2], col[0::2], col[1::2]
    onset = np.clip(start * frame_s, 0.0, clip_s)
    offset = np.clip(end * frame_s, 0.0, clip_s)
    return Events(row_on // n_classes, row_on % n_classes, onset, offset)
