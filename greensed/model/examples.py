"""Example model factories for ``[model] factory`` (docs/library.md).

``small_crnn`` is the baseline CRNN made smaller: three conv blocks instead of
seven, a narrower GRU, and time pooled by 8 instead of 4 (78 output frames of
128 ms per 10 s clip), so it also shows that labels and decoding follow the
model's pooling. Recipe: ``recipes/examples/small-crnn.toml``.
"""

from __future__ import annotations

from collections.abc import Sequence

from greensed.model.crnn import CRNN


def small_crnn(n_classes: int = 10, n_mels: int = 128, *,
               channels: Sequence[int] = (16, 32, 64),
               time_pools: Sequence[int] = (2, 2, 2),
               rnn_hidden: int = 32, dropout: float = 0.5) -> CRNN:
    """A CRNN with ``len(channels)`` conv blocks, pooling time by ``time_pools`` (their
    product is the model's ``time_pooling``) and frequency by 4 per block, as far as the
    mel bands allow (128 mels: 128 -> 32 -> 8 -> 2)."""
    if len(channels) != len(time_pools):
        raise ValueError(f"small_crnn: {len(channels)} channel counts for "
                         f"{len(time_pools)} time poolings")
    pooling, bands = [], n_mels
    for pt in time_pools:
        pf = 4 if bands >= 8 else 2 if bands >= 2 else 1
        pooling.append((int(pt), pf))
        bands //= pf
    return CRNN(n_classes=n_classes, n_mels=n_mels, dropout=dropout, rnn_hidden=rnn_hidden,
                channels=tuple(channels), pooling=tuple(pooling))
