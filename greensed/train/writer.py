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
    """Rank 0's writes: run log (and its views: epochs.csv, TensorBoard scalars when
    ``tensorboard``), ledger, heartbeat, checkpoints."""

    def __init__(self, run: RunDir, *, heartbeat_s: float = HEARTBEAT_S,
                 tensorboard: bool = False) -> None:
        self.run, self.heartbeat_s = run, heartbeat_s
        self.lost: list[LostEntry] = run.read_lost()
        self.scalars = Scalars(run) if tensorboard else None

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
            self.run.write_epochs_csv()
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
        self.views(record)

    def views(self, record: EpochRecord) -> None:
        """What is derived from the log: epochs.csv, rewritten from epochs.jsonl (always:
        a few kB, and it can never disagree with the log), and the TensorBoard scalars."""
        self.run.write_epochs_csv()
        if self.scalars is not None:
            self.scalars.add(record)

    def totals(self, history: list[EpochRecord]) -> ledger.Totals:
        return ledger.totals(history, self.run.read_lost())

    def write_summary(self, summary: Summary) -> None:
        self.run.write_summary(summary)
        if self.scalars is not None:
            self.scalars.close()


# TensorBoard tags of the record's scalars, DESED_task 2022's names where it has one
# (its sed_trainer.py logs per step; these are per epoch, the step being the epoch).
TB_TAGS = {
    "loss.strong": "train/student/loss_strong",
    "loss.weak": "train/student/loss_weak",
    "loss.consistency_strong": "train/student/strong_self_sup_loss",
    "loss.consistency_weak": "train/student/weak_self_sup_loss",
    "loss.total": "train/student/tot_loss",
    "loss.consistency_weight": "train/weight",
    "lr": "train/lr",
    "steps": "train/step",
    "student_f1": "val/synth/student/intersection_f1_macro",
    "teacher_f1": "val/synth/teacher/intersection_f1_macro",
    "student_weak_f1": "val/weak/student/macro_F1",
    "teacher_weak_f1": "val/weak/teacher/macro_F1",
    "student_loss_strong": "val/synth/student/loss_strong",
    "teacher_loss_strong": "val/synth/teacher/loss_strong",
    "energy_kwh": "energy/epoch_kwh",
    "cumulative_kwh": "energy/cumulative_kwh",
    "avg_power_w": "energy/avg_power_w",
    "co2_kg": "co2/epoch_kg",
    "cumulative_co2_kg": "co2/cumulative_kg",
    "duration_s": "time/epoch_s",
}


class Scalars:
    """TensorBoard event files under RUN_DIR/tensorboard/ (torch.utils.tensorboard,
    opened at the first epoch). A resumed run's first epoch purges the events of any
    later epoch an earlier session wrote, so each epoch shows once."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._writer: Any = None

    def add(self, record: EpochRecord) -> None:
        if self._writer is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # preflight.check_tensorboard says it before the start
                raise GreensedError("--tensorboard: the tensorboard package is not "
                                    "installed (pip install 'greensed[tensorboard]')") from None
            self._writer = SummaryWriter(str(self.run.tensorboard), purge_step=record.epoch)
        for key, tag in TB_TAGS.items():
            value = record.metric(key)
            if value is not None:
                self._writer.add_scalar(tag, value, global_step=record.epoch)
        for key in record.metrics:
            value = record.metric(key) if key not in TB_TAGS else None
            if value is not None:  # metrics of other names (a custom model's)
                self._writer.add_scalar(f"val/{key}", value, global_step=record.epoch)
        self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


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
