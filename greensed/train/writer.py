"""Everything a greensed run writes to its directory: the run log and the ledger
(through greensed.library.journal, which every loop's run directory shares), the
heartbeat, the checkpoints and the TensorBoard scalars.

Rank 0 of a run holds a :class:`RunWriter`; the other ranks hold a
:class:`NullWriter`, which implements the whole :class:`Writer` protocol and
writes nothing, so the loop has one code path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from greensed.energy import Reading
from greensed.errors import GreensedError
from greensed.library.journal import HEARTBEAT_S, Beat, RunJournal
from greensed.runlog import EpochRecord, LostEntry, RunDir, Summary, ledger
from greensed.train import checkpoint
from greensed.train.state import TrainState


class Writer(Protocol):
    """What the loop writes, on every rank (only rank 0's writer writes files)."""

    @property
    def lost(self) -> list[LostEntry]:
        """The ledger's entries (lost.jsonl)."""
        ...

    def start(self, config_toml: str, hardware: Mapping[str, Any]) -> None: ...

    def resume(self, records: Sequence[EpochRecord], held: int,
               last: EpochRecord | None = None) -> list[EpochRecord]: ...

    def heartbeat(self, epoch: int) -> Beat: ...

    def record_cut(self, epoch: int, reading: Reading, why: str, beat: Beat) -> None: ...

    def settle_unknown(self, epoch: int, power_w: float | None) -> None: ...

    def lost_kwh_of(self, epoch: int) -> float: ...

    def commit(self, record: EpochRecord, state: TrainState, beat: Beat, *, is_best: bool,
               metric: str, config_toml: str, rank_rngs: list[Any] | None) -> None: ...

    def totals(self, history: Sequence[EpochRecord]) -> ledger.Totals: ...

    def write_summary(self, summary: Summary) -> None: ...


class RunWriter:
    """Rank 0's writes: the run's journal (run log, epochs.csv, ledger, heartbeat),
    then the checkpoints and, when ``tensorboard``, the TensorBoard scalars."""

    def __init__(self, run: RunDir, *, heartbeat_s: float = HEARTBEAT_S,
                 tensorboard: bool = False) -> None:
        self.run = run
        self.journal = RunJournal(run, heartbeat_s=heartbeat_s)
        self.scalars = Scalars(run) if tensorboard else None

    @property
    def lost(self) -> list[LostEntry]:
        return self.journal.lost

    def start(self, config_toml: str, hardware: Mapping[str, Any]) -> None:
        self.journal.start(config_toml, hardware)

    def resume(self, records: Sequence[EpochRecord], held: int,
               last: EpochRecord | None = None) -> list[EpochRecord]:
        """The history a resume from last.pt continues from (RunJournal.resume)."""
        return self.journal.resume(records, held, last, checkpoint=str(self.run.last))

    def heartbeat(self, epoch: int) -> Beat:
        return self.journal.heartbeat(epoch)

    def record_cut(self, epoch: int, reading: Reading, why: str, beat: Beat) -> None:
        self.journal.cut(epoch, reading, why, beat)

    def settle_unknown(self, epoch: int, power_w: float | None) -> None:
        self.journal.settle_unknown(epoch, power_w)

    def lost_kwh_of(self, epoch: int) -> float:
        return self.journal.lost_kwh_of(epoch)

    def commit(self, record: EpochRecord, state: TrainState, beat: Beat, *, is_best: bool,
               metric: str, config_toml: str, rank_rngs: list[Any] | None) -> None:
        self.journal.append(record, beat)  # from here a crash redoes the epoch from the log
        checkpoint.save_epoch(self.run, state, record, is_best=is_best, metric=metric,
                              config_toml=config_toml, rank_rngs=rank_rngs)
        if self.scalars is not None:
            self.scalars.add(record)

    def totals(self, history: Sequence[EpochRecord]) -> ledger.Totals:
        return self.journal.totals(history)

    def write_summary(self, summary: Summary) -> None:
        self.journal.finish(summary)
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
    """The other ranks of a group: every method of :class:`Writer`, writing nothing
    (rank 0 writes for all); an epoch is accounted once it is committed or cut."""

    @property
    def lost(self) -> list[LostEntry]:
        return []

    def start(self, config_toml: str, hardware: Mapping[str, Any]) -> None:
        pass

    def resume(self, records: Sequence[EpochRecord], held: int,
               last: EpochRecord | None = None) -> list[EpochRecord]:
        return list(records[:held])

    def heartbeat(self, epoch: int) -> Beat:
        return Beat(None, epoch, HEARTBEAT_S)

    def record_cut(self, epoch: int, reading: Reading, why: str, beat: Beat) -> None:
        beat.accounted = True

    def settle_unknown(self, epoch: int, power_w: float | None) -> None:
        pass

    def lost_kwh_of(self, epoch: int) -> float:
        return 0.0

    def commit(self, record: EpochRecord, state: TrainState, beat: Beat, *, is_best: bool,
               metric: str, config_toml: str, rank_rngs: list[Any] | None) -> None:
        beat.accounted = True

    def totals(self, history: Sequence[EpochRecord]) -> ledger.Totals:
        return ledger.totals(history, self.lost)

    def write_summary(self, summary: Summary) -> None:
        pass
