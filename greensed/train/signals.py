"""Stop requests: a signal, or a launcher on this process's behalf, asks the
training in progress to stop after its current step, cleanly and resumably."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

# Signals that stop a run cleanly: Ctrl-C, a scheduler's kill, a closed terminal or SSH.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_active: StopSignal | None = None


def acknowledgement(signum: int) -> str:
    """The line printed the moment a stop signal arrives (the stop itself waits for the
    step to end, which can take many seconds on a busy machine)."""
    again = "; Ctrl-C again stops at once" if signum == signal.SIGINT else ""
    return (f"greensed: {signal.Signals(signum).name} received: stopping after the current "
            f"step, then the run can be resumed{again}")


class StopSignal:
    """A stop signal sets a flag that the loop checks between steps: the epoch is
    cut cleanly, the log flushed, and the run stays resumable. Its first arrival is
    acknowledged at once on stderr (``stream``: default sys.stderr, which a terminal's
    progress display prints above its bar)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.signum: int | None = None
        self.stream = stream

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        first = self.signum is None
        self.signum = signum
        if first:
            try:
                out = self.stream or sys.stderr
                out.write(acknowledgement(signum) + "\n")
                out.flush()
            except (OSError, ValueError):
                pass  # a closed terminal (SIGHUP): the stop matters, not the line

    @contextmanager
    def installed(self) -> Iterator[StopSignal]:
        global _active
        old = {s: signal.signal(s, self) for s in STOP_SIGNALS}
        previous, _active = _active, self
        try:
            yield self
        finally:
            _active = previous
            for s, h in old.items():
                signal.signal(s, h)


def request_stop(signum: int = signal.SIGTERM) -> bool:
    """Ask the training in progress in this process to stop after its current step,
    as if ``signum`` had arrived; False when no training is in progress."""
    if _active is None:
        return False
    _active.signum = _active.signum or signum
    return True
