"""A local multi-process launch of one run: N processes on this machine forming
one group, with torchrun's environment variables (``greensed train --nproc N``)."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from greensed.errors import ConfigError, GreensedError

# Seconds a local launch waits for the other ranks after one has failed.
KILL_GRACE_S = 10.0


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
