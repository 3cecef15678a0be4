"""What each step trains on: the batch composition, the per-epoch index batches
derived from (seed, epoch), and every feature on the training device."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from greensed.data.desed import Dataset, Subset
from greensed.errors import ConfigError
from greensed.train.step import Batch


def batch_composition(batch_size: int) -> tuple[int, int, int]:
    """strong : weak : unlabelled = 1/4 : 1/4 : 1/2 of the batch, as in the baseline."""
    if batch_size < 4 or batch_size % 4:
        raise ConfigError(
            f"train.batch_size = {batch_size}: must be a multiple of 4 "
            "(composed 1/4 strong, 1/4 weak, 1/2 unlabelled)"
        )
    return batch_size // 4, batch_size // 4, batch_size // 2


def epoch_batches(sizes: tuple[int, int, int], shares: tuple[int, int, int], seed: int,
                  epoch: int, max_steps: int = 0) -> Iterator[tuple[np.ndarray, ...]]:
    """Index triples for one epoch. Each subset is shuffled on its own; the epoch
    ends when the shortest one (relative to its share) runs out. Derived from
    (seed, epoch) alone, so a resumed run sees exactly the same batches."""
    rng = np.random.default_rng([seed, epoch])
    perms = [rng.permutation(n) for n in sizes]
    n_steps = min(n // k for n, k in zip(sizes, shares, strict=True))
    if max_steps:
        n_steps = min(n_steps, max_steps)
    for i in range(n_steps):
        yield tuple(p[i * k:(i + 1) * k] for p, k in zip(perms, shares, strict=True))


def steps_per_epoch(sizes: tuple[int, int, int], shares: tuple[int, int, int],
                    max_steps: int = 0) -> int:
    n = min(s // k for s, k in zip(sizes, shares, strict=True))
    return min(n, max_steps) if max_steps else n


@dataclass
class DeviceData:
    """All features and labels as tensors on the training device (they fit:
    DESED's linear mels are ~4 GB in fp16), so a step never touches the disk."""

    strong: torch.Tensor
    weak: torch.Tensor
    unlabelled: torch.Tensor
    strong_labels: torch.Tensor
    weak_labels: torch.Tensor

    @classmethod
    def from_dataset(cls, ds: Dataset, device: torch.device,
                     weak: Subset | None = None) -> DeviceData:
        """``weak``: the weak clips that train (the baseline's split), else all of them."""
        weak = ds.weak if weak is None else weak

        def t(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            # A copy: the cache is a read-only memmap, and the device copy must not alias it.
            return torch.from_numpy(np.array(a)).to(device=device, dtype=dtype)

        return cls(t(ds.strong.mels, torch.float16), t(weak.mels, torch.float16),
                   t(ds.unlabelled.mels, torch.float16),
                   t(ds.strong.strong, torch.float32), t(weak.weak, torch.float32))

    def sizes(self) -> tuple[int, int, int]:
        return len(self.strong), len(self.weak), len(self.unlabelled)

    def batch(self, idx: tuple[np.ndarray, ...]) -> Batch:
        i_s, i_w, i_u = (torch.from_numpy(i).to(self.strong.device) for i in idx)
        mels = torch.cat([self.strong[i_s], self.weak[i_w], self.unlabelled[i_u]]).float()
        return Batch(mels, self.strong_labels[i_s], self.weak_labels[i_w])
