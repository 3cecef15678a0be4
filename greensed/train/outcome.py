"""What an epoch came to, and how a run ended: the values the loop passes on
instead of side channels."""

from __future__ import annotations

import signal
from dataclasses import dataclass

from greensed.energy import Reading
from greensed.runlog import EpochRecord, RunStatus
from greensed.stopping import Decision

# The end of an interrupted run's stop reason (summary.json); the console's closing
# lines print the whole command instead (greensed.train.messages.closing).
RESUME_HINT = "; resume with --resume"


@dataclass(frozen=True)
class Finished:
    record: EpochRecord


@dataclass(frozen=True)
class Cut:
    """A stop signal cut the epoch; its measured part is in the ledger."""

    signum: int
    reading: Reading


@dataclass(frozen=True)
class Diverged:
    """A non-finite loss; last.pt holds the last good epoch."""

    reading: Reading


EpochOutcome = Finished | Cut | Diverged


@dataclass(frozen=True)
class RunEnd:
    """How the run ended: the summary's status, stop policy, reason and error."""

    status: RunStatus
    policy: str
    reason: str
    error: str | None = None

    @classmethod
    def stopped(cls, decision: Decision) -> RunEnd:
        return cls(RunStatus.FINISHED, decision.policy, decision.reason)

    @classmethod
    def of(cls, outcome: Cut | Diverged) -> RunEnd:
        if isinstance(outcome, Cut):
            return cls.interrupted(outcome.signum)
        return cls(RunStatus.DIVERGED, RunStatus.DIVERGED.value,
                   "diverged: non-finite loss; checkpoints/last.pt holds the last good epoch")

    @classmethod
    def interrupted(cls, signum: int) -> RunEnd:
        return cls(RunStatus.INTERRUPTED, RunStatus.INTERRUPTED.value,
                   f"interrupted by {signal.Signals(signum).name}{RESUME_HINT}")

    @classmethod
    def failed(cls, error: str) -> RunEnd:
        return cls(RunStatus.FAILED, RunStatus.FAILED.value, error, error)
