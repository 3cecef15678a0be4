"""Stop requests: a signal, or a launcher on this process's behalf, asks the
training in progress to stop after its current step, cleanly and resumably."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# Signals that stop a run cleanly: Ctrl-C, a scheduler's kill, a closed terminal or SSH.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_active: StopSignal | None = None


class StopSignal:
    """A stop signal sets a flag that the loop checks between steps: the epoch is
    cut cleanly, the log flushed, and the run stays resumable."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signum = signum

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
