"""Which runs a study tool counts, and their energy, said plainly.

Every study tool (report, replay, bench-policies, status) reads runs through
``collect``: a run named twice (another path, a symlink, a copy) counts once; a
run in progress, killed and never resumed, or damaged (a torn epoch line, a
summary that disagrees with its log) is left out of the figures and named; and
a run whose meter failed for some epochs gets those epochs estimated (mean power
of its measured epochs x their duration), marked as estimated, instead of a total
that silently misses them.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from greensed import runlog
from greensed.energy.base import J_PER_KWH
from greensed.numbers import finite_float
from greensed.runlog import RunDir, RunLog, RunStatus


class RunState(StrEnum):
    """How a run ended (RunStatus's values), or why the study sees no end."""

    FINISHED = RunStatus.FINISHED.value
    INTERRUPTED = RunStatus.INTERRUPTED.value
    DIVERGED = RunStatus.DIVERGED.value
    FAILED = RunStatus.FAILED.value
    RUNNING = "running"  # a live trainer holds its lock
    INCOMPLETE = "incomplete"  # no summary and no trainer: killed and never resumed
    DAMAGED = "damaged"  # its files disagree (torn epoch line, summary vs log)


@dataclass(frozen=True)
class Energy:
    """A run's energy per epoch (lost partial epochs included, in the epoch they belong
    to) and in total; epochs the meter missed are estimated and listed."""

    cumulative_kwh: tuple[float | None, ...]
    total_kwh: float | None
    estimated_epochs: tuple[int, ...] = ()

    @property
    def estimated(self) -> bool:
        return bool(self.estimated_epochs)


@dataclass(frozen=True)
class StudyRun:
    log: RunLog
    state: RunState
    why: str
    energy: Energy

    @property
    def path(self) -> Path:
        return self.log.run_dir


@dataclass
class Collection:
    runs: list[StudyRun] = field(default_factory=list)
    left_out: list[tuple[Path, str]] = field(default_factory=list)

    def notes(self) -> list[str]:
        """Table notes: what was left out and why, and which totals are estimated."""
        out = [f"left out {p}: {why}" for p, why in self.left_out]
        est = [r for r in self.runs if r.energy.estimated]
        out += [f"{r.path}: energy of epochs {_span(r.energy.estimated_epochs)} estimated "
                "(meter failed there): mean power of its other epochs x their duration"
                for r in est]
        return out


def lock_held(run_dir: Path) -> bool | None:
    """Whether a trainer holds ``run_dir/lock`` now: True/False when the lock line
    ("pid N on HOST") names this host, None when that cannot be told. The file
    outlives its holder, so its existence says nothing; the kernel's flock table
    (/proc/locks) does."""
    path = RunDir(run_dir).lock
    try:
        words = path.read_text().split()
        inode = path.stat().st_ino
    except OSError:
        return None
    if len(words) != 4 or words[0] != "pid" or words[2] != "on" or not words[1].isdigit():
        return None
    if words[3] != socket.gethostname():
        return None
    try:
        locks = Path("/proc/locks").read_text().splitlines()
    except OSError:  # not Linux: fall back to whether the named process lives
        try:
            os.kill(int(words[1]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF": device:inode in field 6.
    return any(len(f) > 5 and f[1] == "FLOCK" and f[5].rsplit(":", 1)[-1] == str(inode)
               for f in (line.split() for line in locks))


def state_of(run: RunLog) -> tuple[RunState, str]:
    """The run's state and, when it is not a plain status, why."""
    alive = lock_held(run.run_dir)
    if alive:
        return RunState.RUNNING, f"in progress (epoch {len(run.epochs) + 1})"
    s = run.summary
    if s is None:
        if alive is None and run.dir.lock.exists():
            return RunState.RUNNING, "in progress on another host (its lock is held)"
        return RunState.INCOMPLETE, ("no summary.json and no trainer: killed and never "
                                     "resumed (greensed train --resume finishes it)")
    if run.dir.torn_epoch_line():
        return RunState.DAMAGED, "epochs.jsonl ends in a torn line (--resume repairs it)"
    if s.epochs != len(run.epochs):
        return RunState.DAMAGED, (f"summary.json says {s.epochs} epochs, epochs.jsonl "
                                  f"holds {len(run.epochs)}")
    return RunState(s.status.value), s.stop_reason if s.status is not RunStatus.FINISHED else ""


def energy_of(run: RunLog) -> Energy:
    """Cumulative and total energy. As logged when every epoch has its energy; else the
    missing epochs are estimated from the run's mean power and marked."""
    recs = run.epochs
    logged = [r.metric("cumulative_kwh") for r in recs]
    total = finite_float(run.summary.total_kwh) if run.summary else None
    if all(v is not None for v in logged) and all(r.metric("energy_kwh") is not None
                                                   for r in recs):
        last = logged[-1] if logged else None
        return Energy(tuple(logged), total if total is not None else last)
    powers = [r.metric("avg_power_w") for r in recs if r.metric("avg_power_w")]
    power_w = math.fsum(powers) / len(powers) if powers else None  # type: ignore[arg-type]
    lost = run.dir.read_lost()
    cum: list[float | None] = []
    estimated: list[int] = []
    acc: float | None = 0.0
    for r in recs:
        e = r.metric("energy_kwh")
        if e is None and power_w is not None and r.metric("duration_s") is not None:
            e = power_w * r.metric("duration_s") / J_PER_KWH  # type: ignore[operator]
            estimated.append(r.epoch)
        lost_kwh = math.fsum(x.kwh or 0.0 for x in lost if x.epoch == r.epoch)
        acc = None if (acc is None or e is None) else acc + lost_kwh + e
        cum.append(acc)
    unrecorded = math.fsum(x.kwh or 0.0 for x in lost if x.epoch > len(recs))
    return Energy(tuple(cum), acc + unrecorded if acc is not None else None, tuple(estimated))


def fingerprint(run: RunLog) -> str:
    """Identity of a run's content: a copy of a run directory has the same one."""
    h = hashlib.sha256()
    for path in (run.dir.epochs, run.dir.summary, run.dir.config):
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"-")
    return h.hexdigest()


def collect(paths: Sequence[str | Path], *, include_unfinished: bool = False) -> Collection:
    """The runs under ``paths``, each once, with their state and energy. Runs that are
    running or damaged are left out (and named); incomplete, interrupted, diverged or
    failed runs too, unless ``include_unfinished``."""
    out = Collection()
    seen: dict[str, Path] = {}
    for p in runlog.find_runs(paths):
        run = runlog.load_run(p)
        key = fingerprint(run)
        real = os.path.realpath(p)
        if key in seen or real in seen:
            first = seen.get(key) or seen[real]
            out.left_out.append((p, f"the same run as {first}, counted once"))
            continue
        seen[key] = seen[real] = p
        state, why = state_of(run)
        if not run.epochs:
            out.left_out.append((p, "no finished epoch"))
            continue
        if state in (RunState.RUNNING, RunState.DAMAGED) or (
                state is not RunState.FINISHED and not include_unfinished):
            out.left_out.append((p, why or state.value))
            continue
        out.runs.append(StudyRun(run, state, why, energy_of(run)))
    return out


def _span(epochs: Sequence[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    runs: list[list[int]] = []
    for e in epochs:
        if runs and e == runs[-1][-1] + 1:
            runs[-1].append(e)
        else:
            runs.append([e])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
