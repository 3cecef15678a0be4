"""One training run on several processes (docs/multigpu.md).

A rank group gives the training loop five things, and the single-process
:class:`Solo` gives the same five as no-ops, so the loop has one code path:

- batch shards: rank r takes the r-th 1/N of each sub-batch (strong, weak,
  unlabelled) of the global batch, which every rank derives from (seed, epoch);
- agreed errors: a step that may fail on one rank (run-dir checks, loading,
  writes) ends with every rank learning the outcome, so no rank waits forever
  in a collective that another rank will never reach;
- values decided once: rank 0 validates, builds the epoch record and takes the
  stop decision; the others receive them;
- one stop flag: a signal on any rank cuts every rank at the same step;
- energy counted once: each rank's meter measures its own device part, local
  rank 0 of each node also the node part, and the readings are summed into
  one Reading per window (:class:`ReducedMeter`).

Node part vs device part of a Reading: component "gpu" is the device part
(one accelerator, read by its own rank); every other component ("cpu",
"ram") is the node part, measured once per node by local rank 0.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import math
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from greensed.energy import Meter, Reading
from greensed.energy.base import MEASURED, UNAVAILABLE
from greensed.energy.codecarbon_meter import CodeCarbonMeter
from greensed.energy.composite import CompositeMeter
from greensed.energy.constant import ConstantPowerMeter, UnavailableMeter, WindowOnlyMeter
from greensed.errors import ConfigError, GreensedError

T = TypeVar("T")

ENV_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Components a rank measures for its own accelerator; all others are the node's.
DEVICE_COMPONENTS = frozenset({"gpu"})
# Steps between stop-flag agreements (a signal or a non-finite loss on any rank).
# One CPU all-reduce of two integers per step: ~0.5 ms between two local
# processes on a loaded 2-core machine, see docs/multigpu.md.
STOP_CHECK_STEPS = 1
# The loop's divergence check reads the losses every this many steps.
NONFINITE_CHECK_STEPS = 50
# Seconds a local launch waits for the other ranks after one has failed.
KILL_GRACE_S = 10.0


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


def rank_device(device: torch.device, env: DistEnv) -> torch.device:
    """cuda -> this rank's GPU, cuda:LOCAL_RANK; a CPU run stays on the CPU."""
    if device.type != "cuda":
        return device
    n = torch.cuda.device_count()
    if env.local_rank >= n:
        raise ConfigError(f"LOCAL_RANK={env.local_rank}: only {n} CUDA device(s) visible "
                          "on this node; start at most that many processes per node")
    return torch.device("cuda", env.local_rank)


# -- energy: node part once per node, device part once per device ----------------


def split_reading(reading: Reading, keep: str) -> Reading:
    """The device part ("gpu") or the node part (the other components) of a reading."""
    want = (lambda c: c in DEVICE_COMPONENTS) if keep == "device" else (
        lambda c: c not in DEVICE_COMPONENTS)
    comps = {c: v for c, v in reading.components_kwh.items() if want(c)}
    methods = {c: m for c, m in reading.methods.items() if want(c)}
    if reading.energy_kwh is None:
        total = None
    elif reading.components_kwh:
        total = math.fsum(comps.values())
    else:  # no split known: a whole-machine figure, so all of it is the node's
        total = reading.energy_kwh if keep == "node" else 0.0
    return Reading(total, reading.duration_s, comps, methods, reading.meter, reading.status)


class PartMeter:
    """A meter reduced to its device part (or its node part), by component."""

    def __init__(self, inner: Meter, keep: str = "device") -> None:
        if keep not in ("device", "node"):
            raise ValueError(f"keep = {keep!r}: 'device' or 'node'")
        self.inner, self.keep, self.name = inner, keep, inner.name

    def start(self) -> None:
        self.inner.start()

    def begin_window(self) -> None:
        self.inner.begin_window()

    def end_window(self) -> Reading:
        return split_reading(self.inner.end_window(), self.keep)

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> dict[str, str]:
        inside = self.keep == "device"
        return {c: m for c, m in self.inner.describe().items()
                if (c in DEVICE_COMPONENTS) == inside}


class NoPartMeter(WindowOnlyMeter):
    """A rank with nothing of its own to measure (its node part is local rank 0's)."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.name = name

    def end_window(self) -> Reading:
        return Reading(0.0, self._window_s(), {}, {}, self.name)

    def describe(self) -> dict[str, str]:
        return {}


def rank_meter(meter: Meter, *, measures_node: bool) -> Meter:
    """What this rank measures of ``meter``: everything on a node's local rank 0,
    only its own device elsewhere.

    CodeCarbon in machine mode reports the whole node (its "gpu" figure covers
    every GPU it sees), so only local rank 0 runs it; a composite NVML + CodeCarbon
    meter leaves the other ranks their own NVML counter.
    """
    if isinstance(meter, ConstantPowerMeter) and meter.n_devices > 1:
        raise ConfigError(
            f"meter {meter.name!r}: in a multi-process run each rank declares its own device; "
            "use constant:NODE_W+DEVICE_W without xN")
    if measures_node or isinstance(meter, UnavailableMeter):
        return meter
    if isinstance(meter, CompositeMeter):
        return meter.gpu
    if isinstance(meter, CodeCarbonMeter):
        return NoPartMeter(meter.name)
    return PartMeter(meter, "device")


def _combined_method(methods: list[str]) -> str:
    """A measured label only if every rank measured; else the first modelled one."""
    for m in methods:
        if m not in MEASURED:
            return m
    return methods[0]


def reduce_readings(readings: list[Reading], name: str) -> Reading:
    """One reading for the whole group: energy and components summed over ranks.

    The window is as long as the longest rank's; a rank without a number makes
    the total None (a partial sum would pass for a small measurement).
    """
    comps: dict[str, list[float]] = {}
    methods: dict[str, list[str]] = {}
    for r in readings:
        for c, v in r.components_kwh.items():
            comps.setdefault(c, []).append(v)
        for c, m in r.methods.items():
            methods.setdefault(c, []).append(m)
    energies = [r.energy_kwh for r in readings]
    total = None if any(e is None for e in energies) else math.fsum(energies)  # type: ignore[arg-type]
    problems = [f"rank {i}: {r.status}" for i, r in enumerate(readings) if not r.ok]
    status = "ok"
    if problems:
        kind = "error" if any(not r.ok and r.status.startswith("error") for r in readings) \
            else "unavailable"
        status = f"{kind}: " + "; ".join(problems)
    merged = {c: _combined_method(ms) for c, ms in methods.items()}
    if total is None:
        merged = {c: (m if c in comps else UNAVAILABLE) for c, m in merged.items()}
    return Reading(total, max((r.duration_s for r in readings), default=0.0),
                   {c: math.fsum(v) for c, v in comps.items()}, merged, name, status)


class ReducedMeter:
    """This rank's part meter; every window ends with the group's summed reading.

    ``end_window`` is a collective: every rank calls it at the same point.
    """

    def __init__(self, inner: Meter, group: Group, name: str) -> None:
        self.inner, self.group, self.name = inner, group, name

    def start(self) -> None:
        self.inner.start()

    def begin_window(self) -> None:
        self.inner.begin_window()

    def end_window(self) -> Reading:
        return reduce_readings(self.group.gather(self.inner.end_window()), self.name)

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> dict[str, str]:
        return self.inner.describe()


# -- the group --------------------------------------------------------------------


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
    def stop_flags(self, signum: int | None, bad: bool, step: int, *,
                   force: bool = False) -> tuple[int | None, bool]: ...
    def sum_(self, tensor: torch.Tensor) -> torch.Tensor: ...
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

    def stop_flags(self, signum: int | None, bad: bool, step: int, *,
                   force: bool = False) -> tuple[int | None, bool]:
        return signum, bad

    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

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

    def stop_flags(self, signum: int | None, bad: bool, step: int, *,
                   force: bool = False) -> tuple[int | None, bool]:
        """Agreed (signal, non-finite loss) over all ranks, every STOP_CHECK_STEPS
        steps and on the divergence-check steps; between checks, nothing stops."""
        if not force and step % STOP_CHECK_STEPS and step % NONFINITE_CHECK_STEPS:
            return None, False
        flags = torch.tensor([signum or 0, int(bad)], dtype=torch.int64)
        dist.all_reduce(flags, op=dist.ReduceOp.MAX, group=self.ctrl)
        return (int(flags[0]) or None), bool(flags[1])

    # tensors
    def sum_(self, tensor: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

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


# -- local launch: N processes on this machine -----------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Outcome:
    """What one rank of a local launch returned, or why it did not."""

    rank: int
    ok: bool
    value: Any = None
    error: str = ""
    error_type: str = ""
    exitcode: int | None = None


def _die_with_parent(parent_pid: int) -> None:
    """Linux: this rank is killed when the launcher dies (kill -9 leaves no orphan
    that would keep training and hold the run-dir lock)."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:
        os._exit(1)


def _child(env: dict[str, str], parent_pid: int, queue: Any,
           target: Callable[..., Any], args: tuple[Any, ...]) -> None:
    os.environ.update(env)
    # Own session: a terminal's Ctrl-C reaches the launcher only, which forwards
    # it once to every rank (a second Ctrl-C keeps its "stop now" meaning).
    with contextlib.suppress(OSError):
        os.setsid()
    _die_with_parent(parent_pid)
    rank = int(env["RANK"])
    if "OMP_NUM_THREADS" not in os.environ:  # N ranks must not each take every core
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(env["WORLD_SIZE"])))
    try:
        queue.put(Outcome(rank, True, target(*args)))
    except GreensedError as exc:
        queue.put(Outcome(rank, False, error=str(exc), error_type=type(exc).__name__))
        sys.exit(2)
    except BaseException as exc:
        traceback.print_exc()
        queue.put(Outcome(rank, False, error=f"{type(exc).__name__}: {exc}",
                          error_type=type(exc).__name__))
        sys.exit(1)


@contextlib.contextmanager
def _forward_signals(procs: list[Any]) -> Iterator[None]:
    def forward(signum: int, frame: Any) -> None:
        for p in procs:
            if p.is_alive() and p.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signum)

    try:
        old = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread: signals cannot be caught here
        old = {}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def spawn(nproc: int, target: Callable[..., Any], args: tuple[Any, ...], *,
          grace_s: float = KILL_GRACE_S) -> list[Outcome]:
    """Run ``target(*args)`` in ``nproc`` local processes forming one group
    (torchrun's environment variables, a free port), and wait for all of them.

    SIGINT/SIGTERM sent to the launcher are forwarded to every rank. When a
    rank fails, the others get ``grace_s`` to notice it, then are killed.
    """
    ctx = mp.get_context("spawn")
    queue = ctx.SimpleQueue()
    port = str(free_port())
    procs = []
    for rank in range(nproc):
        env = {"RANK": str(rank), "WORLD_SIZE": str(nproc), "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": str(nproc), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
        procs.append(ctx.Process(target=_child, args=(env, os.getpid(), queue, target, args),
                                 name=f"greensed-rank{rank}"))
    outcomes: dict[int, Outcome] = {}
    with _forward_signals(procs):
        for p in procs:
            p.start()
        failed_at: float | None = None
        while True:
            while not queue.empty():
                o = queue.get()
                outcomes[o.rank] = o
            alive = [p for p in procs if p.is_alive()]
            if not alive:
                break
            if failed_at is None and any(p.exitcode not in (None, 0) for p in procs):
                failed_at = time.monotonic()
            if failed_at is not None and time.monotonic() - failed_at > grace_s:
                for p in alive:
                    p.kill()
            multiprocessing.connection.wait([p.sentinel for p in alive], timeout=0.2)
        while not queue.empty():
            o = queue.get()
            outcomes[o.rank] = o
    out = []
    for rank, p in enumerate(procs):
        o = outcomes.get(rank) or Outcome(rank, False, error=f"rank {rank} exited with code "
                                          f"{p.exitcode} before reporting")
        o.exitcode = p.exitcode
        out.append(o)
    return out


def raise_first_error(outcomes: list[Outcome]) -> None:
    """The failing rank's own error (not its peers' echoes of it), one line."""
    failed = [o for o in outcomes if not o.ok]
    if not failed:
        return
    first = next((o for o in failed if o.error_type != "PeerError"), failed[0])
    cls = ConfigError if first.error_type == "ConfigError" else GreensedError
    raise cls(first.error)
