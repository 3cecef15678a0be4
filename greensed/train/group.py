"""One training run on several processes: where a process sits, and what the
group gives the loop (docs/multigpu.md).

A rank group gives the training loop five things, and the single-process
:class:`Solo` gives the same five as local operations, so the loop has one
code path:

- batch shards: rank r takes the r-th 1/N of each sub-batch (strong, weak,
  unlabelled) of the global batch, which every rank derives from (seed, epoch);
- agreed errors: a step that may fail on one rank (run-dir checks, loading,
  writes) ends with every rank learning the outcome, so no rank waits forever
  in a collective that another rank will never reach;
- values decided once: rank 0 validates, builds the epoch record and takes the
  stop decision; the others receive them;
- one stop flag: a signal or a non-finite loss on any rank cuts every rank at
  the same step;
- one set of weights: gradients averaged by DDP, BatchNorm statistics averaged
  once per epoch.

Energy is counted once per window across ranks by greensed.energy.ranks.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from greensed.errors import ConfigError, GreensedError

T = TypeVar("T")

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# The loop's divergence check reads the losses every this many steps (a host sync).
NONFINITE_CHECK_STEPS = 50


class PeerError(GreensedError):
    """Another rank failed; this rank stops with that rank's message."""


@dataclass(frozen=True)
class DistEnv:
    """Where this process sits in the group (torchrun's environment variables)."""

    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def measures_node(self) -> bool:
        return self.local_rank == 0


def env_from_environ(environ: Mapping[str, str] | None = None) -> DistEnv | None:
    """The torchrun-style group this process belongs to, or None when not launched so."""
    environ = os.environ if environ is None else environ
    if "WORLD_SIZE" not in environ:  # the defining variable; a stray RANK alone is not a launch
        return None
    present = [k for k in ENV_KEYS if k in environ]
    missing = [k for k in ENV_KEYS if k not in environ]
    if missing:
        raise ConfigError(
            f"distributed launch: {', '.join(present)} set but {', '.join(missing)} not "
            "(torchrun sets all of RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)")
    values = {}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        try:
            values[key] = int(environ[key])
        except ValueError:
            raise ConfigError(f"distributed launch: {key}={environ[key]!r} is not an integer"
                              ) from None
    rank, world, local = values["RANK"], values["WORLD_SIZE"], values["LOCAL_RANK"]
    if world < 1 or not 0 <= rank < world or not 0 <= local <= rank:
        raise ConfigError(f"distributed launch: RANK={rank} LOCAL_RANK={local} "
                          f"WORLD_SIZE={world} are inconsistent")
    return DistEnv(rank, world, local)


def check_batch(batch_size: int, world_size: int) -> None:
    """Every rank gets the same whole number of strong, weak and unlabelled clips."""
    if world_size > 1 and batch_size % (4 * world_size):
        raise ConfigError(
            f"train.batch_size = {batch_size}: with {world_size} processes it must be a "
            f"multiple of {4 * world_size} (each rank takes 1/{world_size} of the strong, "
            "weak and unlabelled parts)")


def check_meter_mode(tracking_mode: str, world_size: int) -> None:
    if world_size > 1 and tracking_mode == "process":
        raise ConfigError(
            "[meter] tracking_mode = 'process' tracks one process; a run on "
            f"{world_size} processes needs 'machine' (the node part is measured once per node)")


def shard(idx: tuple[np.ndarray, ...], rank: int, world_size: int) -> tuple[np.ndarray, ...]:
    """Rank ``rank``'s contiguous 1/world_size of each sub-batch of a global batch."""
    out = []
    for part in idx:
        if len(part) % world_size:
            raise ValueError(f"sub-batch of {len(part)} does not split over {world_size} ranks")
        k = len(part) // world_size
        out.append(part[rank * k:(rank + 1) * k])
    return tuple(out)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available on this machine")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device {name!r}: expected auto, cpu or cuda")
    return torch.device(name)


def rank_device(device: torch.device, env: DistEnv) -> torch.device:
    """cuda -> this rank's GPU, cuda:LOCAL_RANK; a CPU run stays on the CPU."""
    if device.type != "cuda":
        return device
    n = torch.cuda.device_count()
    if env.local_rank >= n:
        raise ConfigError(f"LOCAL_RANK={env.local_rank}: only {n} CUDA device(s) visible "
                          "on this node; start at most that many processes per node")
    return torch.device("cuda", env.local_rank)


class Group(Protocol):
    rank: int
    world_size: int
    is_main: bool
    measures_node: bool

    def bcast(self, obj: T) -> T: ...
    def gather(self, obj: T) -> list[T]: ...
    def each(self, fn: Callable[[], T]) -> T: ...
    def on_main(self, fn: Callable[[], T]) -> T | None: ...
    def from_main(self, fn: Callable[[], T]) -> T: ...
    def agree_stop(self, signum: int | None, bad: bool) -> tuple[int | None, bool]: ...
    def mean(self, sums: torch.Tensor, n: int) -> list[float]: ...
    def average_buffers(self, module: nn.Module) -> None: ...
    def wrap(self, module: nn.Module) -> nn.Module: ...
    def shard(self, idx: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]: ...
    def close(self) -> None: ...


class Solo:
    """The group of one process: every operation is the plain local one."""

    rank, world_size, is_main, measures_node = 0, 1, True, True

    def bcast(self, obj: T) -> T:
        return obj

    def gather(self, obj: T) -> list[T]:
        return [obj]

    def each(self, fn: Callable[[], T]) -> T:
        return fn()

    def on_main(self, fn: Callable[[], T]) -> T | None:
        return fn()

    def from_main(self, fn: Callable[[], T]) -> T:
        return fn()

    def agree_stop(self, signum: int | None, bad: bool) -> tuple[int | None, bool]:
        return signum, bad

    def mean(self, sums: torch.Tensor, n: int) -> list[float]:
        return (sums / max(n, 1)).tolist()

    def average_buffers(self, module: nn.Module) -> None:
        pass

    def wrap(self, module: nn.Module) -> nn.Module:
        return module

    def shard(self, idx: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        return idx

    def close(self) -> None:
        pass


SOLO = Solo()


class RankGroup:
    """A torch.distributed group: gloo on CPU, NCCL on CUDA.

    Control messages (flags, objects, errors) go through a gloo group on the
    CPU, so checking the stop flag never waits for the GPU.
    """

    def __init__(self, env: DistEnv, device: torch.device, timeout_s: float = 1800.0) -> None:
        self.env, self.device = env, device
        self.rank, self.world_size = env.rank, env.world_size
        self.is_main, self.measures_node = env.is_main, env.measures_node
        self.backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        timeout = dt.timedelta(seconds=timeout_s)
        dist.init_process_group(self.backend, rank=env.rank, world_size=env.world_size,
                                timeout=timeout)
        self.ctrl = dist.new_group(backend="gloo", timeout=timeout) \
            if self.backend != "gloo" else None

    # objects, decided once
    def bcast(self, obj: T) -> T:
        box = [obj]
        dist.broadcast_object_list(box, src=0, group=self.ctrl)
        return box[0]

    def gather(self, obj: T) -> list[T]:
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj, group=self.ctrl)
        return out

    def _agree(self, exc: BaseException | None) -> None:
        """Every rank learns whether any rank failed; all raise, none waits."""
        mine = None if exc is None else (type(exc).__name__, str(exc))
        outcomes = self.gather(mine)
        if exc is not None:
            raise exc
        for rank, outcome in enumerate(outcomes):
            if outcome is not None:
                kind, message = outcome
                raise PeerError(f"rank {rank} failed: {message}" if kind != "PeerError"
                                else message)

    def each(self, fn: Callable[[], T]) -> T:
        try:
            out = fn()
        except Exception as exc:
            self._agree(exc)
            raise  # unreachable: _agree re-raises exc
        self._agree(None)
        return out

    def on_main(self, fn: Callable[[], T]) -> T | None:
        return self.each(fn if self.is_main else (lambda: None))

    def from_main(self, fn: Callable[[], T]) -> T:
        return self.bcast(self.on_main(fn))  # type: ignore[return-value]

    def agree_stop(self, signum: int | None, bad: bool) -> tuple[int | None, bool]:
        """(signal, non-finite loss) agreed over all ranks: one CPU all-reduce of two
        integers, ~0.5 ms between two local processes on a loaded 2-core machine."""
        flags = torch.tensor([signum or 0, int(bad)], dtype=torch.int64)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.ctrl)
        return (int(flags[0]) or None), bool(flags[1])

    # tensors
    def mean(self, sums: torch.Tensor, n: int) -> list[float]:
        """Each rank's losses are means over its equal shard: their mean is the batch's."""
        dist.all_reduce(sums, op=dist.ReduceOp.SUM)
        return (sums / max(n * self.world_size, 1)).tolist()

    def average_buffers(self, module: nn.Module) -> None:
        """BatchNorm running statistics are updated from each rank's own shard:
        averaged (once per epoch, before validation and checkpoints), every rank
        holds the same model, with statistics of all shards, not rank 0's only."""
        for buf in module.buffers():
            if buf.is_floating_point():
                dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                buf.div_(self.world_size)

    def wrap(self, module: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def shard(self, idx: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
        return shard(idx, self.rank, self.world_size)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
