"""Everything a run writes to its directory, in one place: the run log, the
lost-energy ledger, the heartbeat and the checkpoints.

Rank 0 of a run holds a :class:`RunWriter`; the other ranks hold a
:class:`NullWriter` with the same methods doing nothing, so the loop has one
code path.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from greensed.energy import Reading
from greensed.errors import GreensedError
from greensed.runlog import (
    EpochRecord,
    Heartbeat,
    LostEntry,
    RunDir,
    Summary,
    atomic_write_bytes,
    atomic_write_json,
)
from greensed.train import checkpoint, ledger
from greensed.train.state import TrainState

# Seconds between heartbeats within an epoch: after a kill -9 the lost partial
# epoch is estimated from the last heartbeat's elapsed time (docs/reliability.md).
HEARTBEAT_S = 5.0


class Beat:
    """The heartbeat of the epoch in flight, written every ``period_s`` by a thread
    (a step or a validation can take longer than that) until the epoch is accounted."""

    def __init__(self, run: RunDir | None, epoch: int, period_s: float) -> None:
        self.run, self.epoch, self.period_s = run, epoch, period_s
        self.pid = os.getpid()
        self.t0 = time.monotonic()
        # Set once the epoch's energy is in the run log or the ledger.
        self.accounted = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def now(self) -> Heartbeat:
        return Heartbeat(self.epoch, time.monotonic() - self.t0, self.pid)

    def __enter__(self) -> Beat:
        if self.run is not None:
            self.run.write_heartbeat(self.now())
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name="greensed-heartbeat")
            self._thread.start()
        return self

    def _loop(self) -> None:
        assert self.run is not None
        while not self._stop.wait(self.period_s):
            try:
                self.run.write_heartbeat(self.now())
            except OSError:
                pass  # a full disk: the trainer's own writes will say so

    def __exit__(self, exc_type: object, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.run is None:
            return
        if self.accounted:  # nothing in flight any more
            self.run.write_heartbeat(Heartbeat(0, 0.0, self.pid))
        elif exc_type is not None:
            try:  # the estimate on resume covers up to here
                self.run.write_heartbeat(self.now())
            except OSError:
                pass


class RunWriter:
    """Rank 0's writes: run log, ledger, heartbeat, checkpoints."""

    def __init__(self, run: RunDir, *, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.run, self.heartbeat_s = run, heartbeat_s
        self.lost: list[LostEntry] = run.read_lost()

    def start(self, config_toml: str, hardware: dict[str, Any]) -> None:
        self.run.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.run.config, config_toml.encode())
        atomic_write_json(self.run.hardware, hardware)

    def resume(self, records: list[EpochRecord], held: int,
               last: EpochRecord | None = None) -> list[EpochRecord]:
        """The history a resume continues from; moves what the checkpoint lacks to the
        ledger and cuts epochs.jsonl to the checkpoint (docs/reliability.md). A log that
        lost the checkpoint's own last record (a cut line) gets it back from last.pt, so
        the log and the weights agree."""
        if held == len(records) + 1 and last is not None and last.epoch == held:
            self.run.append_epoch(last)
            records = [*records, last]
        elif held > len(records):
            raise GreensedError(
                f"{self.run.epochs}: holds {len(records)} epochs but {self.run.last} holds "
                f"{held}: the log lost records the weights have (and this checkpoint cannot "
                "restore them); keep a copy and start a new run")
        plan = ledger.plan_resume(records, held, self.lost, self.run.read_heartbeat(),
                                  checkpoint=str(self.run.last))
        for entry in plan.moved:  # before the truncation: a crash here redoes no harm
            self.run.append_lost(entry)
            self.lost.append(entry)
        if plan.truncate_to is not None:
            self.run.keep_epochs(plan.truncate_to)
        return plan.history

    def heartbeat(self, epoch: int) -> Beat:
        return Beat(self.run, epoch, self.heartbeat_s)

    def record_cut(self, epoch: int, reading: Reading, why: str, beat: Beat) -> None:
        entry = ledger.cut_entry(epoch, reading.energy_kwh, reading.duration_s, why, beat.now())
        self.run.append_lost(entry)
        self.lost.append(entry)
        beat.accounted = True

    def lost_kwh_of(self, epoch: int, reading: Reading) -> float:
        """Energy of earlier attempts at ``epoch``, settling an unknown one from this
        reading's power (lost.jsonl rewritten at once)."""
        settled = ledger.settle_unknown(self.lost, epoch, reading.avg_power_w)
        if settled is not None:
            self.run.rewrite_lost(settled)
            self.lost = settled
        return ledger.lost_kwh_of(self.lost, epoch)

    def commit(self, record: EpochRecord, state: TrainState, beat: Beat, *, is_best: bool,
               metric: str, config_toml: str, rank_rngs: list[Any] | None) -> None:
        self.run.append_epoch(record)
        beat.accounted = True  # from here a crash redoes the epoch from the log's record
        checkpoint.save_epoch(self.run, state, record, is_best=is_best, metric=metric,
                              config_toml=config_toml, rank_rngs=rank_rngs)

    def totals(self, history: list[EpochRecord]) -> ledger.Totals:
        return ledger.totals(history, self.run.read_lost())

    def write_summary(self, summary: Summary) -> None:
        self.run.write_summary(summary)


class NullWriter:
    """The other ranks of a group: they write nothing (rank 0 writes for all)."""

    lost: list[LostEntry] = []

    def heartbeat(self, epoch: int) -> Beat:
        return Beat(None, epoch, HEARTBEAT_S)

    def record_cut(self, epoch: int, reading: Reading, why: str, beat: Beat) -> None:
        beat.accounted = True

    def commit(self, record: EpochRecord, state: TrainState, beat: Beat, **_: Any) -> None:
        beat.accounted = True


Writer = RunWriter | NullWriter
