"""The lost-energy ledger: energy of partial epochs that no epoch record holds.

A partial epoch is cut by a signal or divergence (measured by the meter), by a
crash (estimated on resume from the heartbeat's elapsed time x the mean power
of the finished epochs), or was finished and logged but died before its
checkpoint (measured, and redone on resume). Each lands once in ``lost.jsonl``;
the epoch record that finally covers that epoch adds it to its
``cumulative_kwh``, and a run's total is the last record's cumulative energy
plus what no record covers yet. Pure arithmetic on run-log records: no torch,
no files (see :class:`greensed.library.journal.RunJournal` for those).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from greensed.energy.base import J_PER_KWH
from greensed.errors import GreensedError
from greensed.runlog.records import EpochRecord, Heartbeat, LostEntry

REDONE = "measured: finished epoch redone on resume (died before its checkpoint)"
REDONE_OLDER = "measured: finished epoch redone on resume (from an older checkpoint)"
ESTIMATED = "estimated: elapsed time x mean power of finished epochs"
UNKNOWN = "unknown: no finished epoch to estimate power from"
ESTIMATED_FROM_REDO = "estimated: elapsed time x mean power of the redone epoch"


@dataclass(frozen=True)
class Resume:
    """What a resume keeps and what it moves to the ledger."""

    history: list[EpochRecord]  # the records the checkpoint holds
    moved: list[LostEntry]  # new lost entries (records beyond the checkpoint, a crash)
    truncate_to: int | None  # keep this many records in epochs.jsonl (None: all)


def plan_resume(records: Sequence[EpochRecord], held: int, lost: Sequence[LostEntry],
                beat: Heartbeat | None, *, checkpoint: str, max_ahead: int | None = 1
                ) -> Resume:
    """Resume from a checkpoint holding ``held`` epochs, with ``records`` logged.

    The log may be up to ``max_ahead`` epochs ahead of the checkpoint (greensed's
    trainer checkpoints every epoch: one, when it died between the two writes; a
    loop that keeps older checkpoints: None, any): those epochs are redone and their
    measured energy moves to the ledger. A crash in the epoch in flight (the
    heartbeat's) adds its estimate, once per attempt.
    """
    if max_ahead is not None and len(records) > held + max_ahead:
        raise GreensedError(f"{checkpoint}: holds epoch {held} but the log has "
                            f"{len(records)} epochs; cannot resume")
    moved: list[LostEntry] = []
    how = REDONE if len(records) <= held + 1 else REDONE_OLDER
    seen = {(e.epoch, e.record_time_utc) for e in lost}
    for r in records[held:]:
        if (r.epoch, r.time_utc) in seen:
            continue  # a resume that died before truncating already moved it
        # The heartbeat of that same attempt must not add an estimate on top.
        key = beat.key if beat is not None and beat.epoch == r.epoch else None
        moved.append(LostEntry(epoch=r.epoch, kwh=r.energy_kwh, duration_s=r.duration_s,
                               how=how, record_time_utc=r.time_utc or None,
                               heartbeat_pid_epoch=key))
    history = list(records[:held])
    crash = crash_estimate(history, [*lost, *moved], beat)
    return Resume(history, moved + ([crash] if crash else []),
                  held if len(records) > held else None)


def crash_estimate(history: Sequence[EpochRecord], lost: Sequence[LostEntry],
                   beat: Heartbeat | None) -> LostEntry | None:
    """The energy of the epoch in flight when the process died, from its heartbeat:
    elapsed time x the mean power of the finished epochs (unknown without any)."""
    if beat is None or beat.pid is None or beat.epoch <= len(history):
        return None
    if beat.key in {e.heartbeat_pid_epoch for e in lost}:
        return None  # that attempt is already accounted (measured or estimated)
    powers = [r.avg_power_w for r in history if r.avg_power_w]
    power_w = math.fsum(powers) / len(powers) if powers else None
    kwh = power_w * beat.elapsed_s / J_PER_KWH if power_w else None
    return LostEntry(epoch=beat.epoch, kwh=kwh, duration_s=beat.elapsed_s,
                     how=ESTIMATED if kwh is not None else UNKNOWN,
                     heartbeat_pid_epoch=beat.key)


def cut_entry(epoch: int, kwh: float | None, duration_s: float, why: str,
              beat: Heartbeat | None) -> LostEntry:
    """A partial epoch cut cleanly (signal, divergence, error), as the meter measured it.
    It names its heartbeat, so a kill before the heartbeat is cleared adds no estimate."""
    return LostEntry(epoch=epoch, kwh=kwh, duration_s=duration_s,
                     how=f"measured: partial epoch cut by {why}",
                     heartbeat_pid_epoch=beat.key if beat is not None else None)


def settle_unknown(lost: Sequence[LostEntry], epoch: int, power_w: float | None
                   ) -> list[LostEntry] | None:
    """A kill before any epoch finished left an 'unknown' part of ``epoch``; the redo
    of that same epoch gives the power to estimate it from (same work). Returns the
    updated entries, or None when nothing changed."""
    if power_w is None or not any(_unknown_of(e, epoch) for e in lost):
        return None
    return [replace(e, kwh=power_w * e.duration_s / J_PER_KWH, how=ESTIMATED_FROM_REDO)
            if _unknown_of(e, epoch) else e for e in lost]


def _unknown_of(e: LostEntry, epoch: int) -> bool:
    return e.kwh is None and e.epoch == epoch and bool(e.duration_s)


def lost_kwh_of(lost: Sequence[LostEntry], epoch: int) -> float:
    """Energy of earlier attempts at ``epoch``: the record of ``epoch`` counts it, once."""
    return math.fsum(e.kwh or 0.0 for e in lost if e.epoch == epoch)


def cumulative_kwh(previous: EpochRecord | None, lost_kwh: float,
                   energy_kwh: float | None) -> float | None:
    """Energy from the start of the run to the end of this epoch (None once unknown)."""
    prev = previous.cumulative_kwh if previous is not None else 0.0
    if energy_kwh is None or prev is None:
        return None
    return prev + lost_kwh + energy_kwh


@dataclass(frozen=True)
class Totals:
    total_kwh: float | None
    lost_kwh: float
    total_s: float


def totals(history: Sequence[EpochRecord], lost: Sequence[LostEntry]) -> Totals:
    """The run's energy and time: every epoch plus every lost part, each once."""
    lost_kwh = math.fsum(e.kwh or 0.0 for e in lost)
    # Lost parts of epochs no record covers yet (cut just now, or never redone).
    unrecorded = math.fsum(e.kwh or 0.0 for e in lost if e.epoch > len(history))
    if history:
        last = history[-1].cumulative_kwh
        total = last + unrecorded if last is not None else None
    else:
        total = lost_kwh if lost else None
    total_s = math.fsum(r.duration_s or 0.0 for r in history) + math.fsum(
        e.duration_s or 0.0 for e in lost)
    return Totals(total, lost_kwh, total_s)
