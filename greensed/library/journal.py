"""The run log's writes, once, for every loop that writes a run directory:
greensed's trainer (greensed.train.writer.RunWriter) and any other loop
(greensed.library.RunRecorder, and the Lightning callback through it).

A :class:`RunJournal` writes config.toml and hardware.json at the start, plans a
resume (what the checkpoint lacks moves to the ledger), appends each epoch's
record (and rewrites epochs.csv), puts a cut epoch's energy in lost.jsonl, settles
an unknown one and writes the summary. The rules are pure functions of
greensed.runlog.ledger; this module holds only their file writes. No torch.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping, Sequence
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
    ledger,
)

# Seconds between heartbeats within an epoch: after a kill -9 the lost partial
# epoch is estimated from the last heartbeat's elapsed time (docs/reliability.md).
HEARTBEAT_S = 5.0


class Beat:
    """The heartbeat of the epoch in flight, written every ``period_s`` by a thread
    (a step or a validation can take longer than that) until the epoch is accounted.
    ``run`` None: a rank that writes nothing."""

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
                pass  # a full disk: the run log's own writes will say so

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


class RunJournal:
    """The writes of one run directory, with the ledger's entries kept in ``lost``."""

    def __init__(self, run: RunDir, *, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.run, self.heartbeat_s = run, heartbeat_s
        self.lost: list[LostEntry] = run.read_lost()

    def start(self, config_toml: str, hardware: Mapping[str, Any]) -> None:
        """config.toml and hardware.json (the directory is created if needed)."""
        self.run.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.run.config, config_toml.encode())
        atomic_write_json(self.run.hardware, dict(hardware))

    def resume(self, records: Sequence[EpochRecord], held: int,
               last: EpochRecord | None = None, *, checkpoint: str,
               max_ahead: int | None = 1) -> list[EpochRecord]:
        """The history a resume from ``checkpoint`` (holding ``held`` epochs) continues
        from; moves what the checkpoint lacks (up to ``max_ahead`` epochs, None: any) to
        the ledger and cuts epochs.jsonl to the checkpoint (docs/reliability.md). A log
        that lost the checkpoint's own last record (a cut line) gets ``last`` back, so
        the log and the weights agree."""
        records = list(records)
        if held == len(records) + 1 and last is not None and last.epoch == held:
            self.run.append_epoch(last)
            records.append(last)
        elif held > len(records):
            raise GreensedError(
                f"{self.run.epochs}: holds {len(records)} epochs but {checkpoint} holds "
                f"{held}: the log lost records the weights have (and this checkpoint cannot "
                "restore them); keep a copy and start a new run")
        plan = ledger.plan_resume(records, held, self.lost, self.run.read_heartbeat(),
                                  checkpoint=checkpoint, max_ahead=max_ahead)
        for entry in plan.moved:  # before the truncation: a crash here redoes no harm
            self.run.append_lost(entry)
            self.lost.append(entry)
        if plan.truncate_to is not None:
            self.run.keep_epochs(plan.truncate_to)
            self.run.write_epochs_csv()
        return plan.history

    def heartbeat(self, epoch: int) -> Beat:
        """The heartbeat of ``epoch`` (a context manager: enter it when the epoch starts)."""
        return Beat(self.run, epoch, self.heartbeat_s)

    def append(self, record: EpochRecord, beat: Beat | None = None) -> None:
        """The epoch's record to epochs.jsonl, then epochs.csv rewritten from it (a few
        kB: it can never disagree with the log). From the record on, ``beat``'s epoch
        is accounted: a crash redoes it from the log's record."""
        self.run.append_epoch(record)
        if beat is not None:
            beat.accounted = True
        self.run.write_epochs_csv()

    def cut(self, epoch: int, reading: Reading, why: str, beat: Beat | None = None
            ) -> LostEntry:
        """A partial epoch that will not be recorded (cut by ``why``): its measured
        energy to lost.jsonl; a later record of ``epoch`` counts it."""
        entry = ledger.cut_entry(epoch, reading.energy_kwh, reading.duration_s, why,
                                 beat.now() if beat is not None else None)
        self.run.append_lost(entry)
        self.lost.append(entry)
        if beat is not None:
            beat.accounted = True
        return entry

    def settle_unknown(self, epoch: int, power_w: float | None) -> None:
        """Estimate an earlier attempt at ``epoch`` whose energy is unknown (a kill
        before any epoch finished) from ``power_w``, the power of its redo; rewrites
        lost.jsonl when that changes anything."""
        settled = ledger.settle_unknown(self.lost, epoch, power_w)
        if settled is not None:
            self.run.rewrite_lost(settled)
            self.lost = settled

    def lost_kwh_of(self, epoch: int) -> float:
        """Energy of earlier attempts at ``epoch``, which its record counts (a read)."""
        return ledger.lost_kwh_of(self.lost, epoch)

    def totals(self, history: Sequence[EpochRecord]) -> ledger.Totals:
        return ledger.totals(history, self.lost)

    def finish(self, summary: Summary) -> None:
        self.run.write_summary(summary)
