"""Which runs a study tool counts, and their energy, said plainly.

Every study tool (report, replay, bench-policies, status) reads runs through
``collect``: a run named twice (another path, a symlink, a copy) counts once; a
run in progress, killed and never resumed, or damaged (a torn epoch line, a
summary whose epoch count disagrees with its log) is left out of the figures and
named; and a run whose meter failed for some epochs gets those epochs estimated
(mean power of its measured epochs x their duration), marked as estimated,
instead of a total that silently misses them. A run's total follows the
ledger's rules (greensed.runlog.ledger), summary.json or not.

``select`` is the one rule of which runs a figure may come from and which metric
it reads: ``--metric``, else each run's own (``own_metric``); a run without it,
or not full length where a tool needs full runs, is left out and named with why.
"""

from __future__ import annotations

import dataclasses
import difflib
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
from greensed.errors import GreensedError
from greensed.numbers import finite_float
from greensed.runlog import (
    EpochRecord,
    RunDir,
    RunLog,
    RunStatus,
    ledger,  # pure arithmetic on run-log records: the same totals
)
from greensed.stopping.params import DEFAULT_METRIC
from greensed.study.runs import read_config


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
    # What a reader must know of this total: a heartbeat estimate, a summary that disagrees.
    notes: tuple[str, ...] = ()

    @property
    def estimated(self) -> bool:
        return bool(self.estimated_epochs)


@dataclass(frozen=True)
class StudyRun:
    log: RunLog
    state: RunState
    why: str
    energy: Energy
    metric: str = ""  # the metric its figures read as F1 (set by ``select``)

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
        out += [f"{r.path}: energy of {_epochs_word(r.energy.estimated_epochs)} "
                f"{_span(r.energy.estimated_epochs)} estimated "
                "(meter failed there): mean power of its other epochs x their duration"
                for r in est]
        out += [n for r in self.runs for n in r.energy.notes]
        return out


def lock_held(run_dir: Path) -> bool | None:
    """Whether a trainer holds ``run_dir/lock`` now: True/False when the lock line
    ("pid N on HOST") names this host, None when that cannot be told. No file: no
    holder (a trainer removes it as it ends). A file outlives a killed holder, so its
    existence says nothing; the kernel's flock table (/proc/locks) does."""
    path = RunDir(run_dir).lock
    try:
        words = path.read_text().split()
        inode = path.stat().st_ino
    except FileNotFoundError:
        return False
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


def energy_of(run: RunLog, *, crashed: bool = False) -> Energy:
    """Cumulative and total energy, by the ledger's rules (greensed.runlog.ledger): the
    total is the last record's cumulative energy plus every lost part no record covers,
    with or without summary.json. Epochs the meter missed are estimated from the run's
    mean power and marked. ``crashed`` (killed, never resumed): the epoch in flight is
    estimated from heartbeat.json, as ``--resume`` would count it. A summary whose total
    disagrees with its log is named in the notes; the figures use the log's."""
    recs, lost = run.epochs, run.dir.read_lost()
    notes: list[str] = []
    if crashed:
        crash = ledger.crash_estimate(recs, lost, run.dir.read_heartbeat())
        if crash is not None and crash.kwh is not None:
            lost = [*lost, crash]
            notes.append(f"{run.run_dir}: epoch {crash.epoch}, in flight when the run was "
                         f"killed, counts {crash.kwh:.3g} kWh estimated from heartbeat.json "
                         f"({crash.duration_s:.0f} s x mean power), as --resume would")
    records, estimated = _with_energy(recs, lost)
    total = ledger.totals(records, lost).total_kwh if records else None
    stated = finite_float(run.summary.total_kwh) if run.summary else None
    if stated is not None and total is not None and not math.isclose(
            stated, total, rel_tol=1e-6, abs_tol=1e-9):
        notes.append(f"{run.dir.summary}: total_kwh {stated:.6g} disagrees with its log's "
                     f"{total:.6g} (epochs.jsonl + lost.jsonl); the figures use the log's")
    return Energy(tuple(r.cumulative_kwh for r in records),
                  total if total is not None else stated, tuple(estimated), tuple(notes))


def _with_energy(recs: Sequence[EpochRecord], lost: Sequence[runlog.LostEntry]
                 ) -> tuple[list[EpochRecord], list[int]]:
    """The records as logged when every epoch has its energy; else with the missing
    epochs estimated (mean power of the measured ones x their duration) and the
    cumulative energy recounted as the writer counts it, and the estimated epochs."""
    if all(r.metric("cumulative_kwh") is not None and r.metric("energy_kwh") is not None
           for r in recs):
        return list(recs), []
    powers = [p for r in recs if (p := r.metric("avg_power_w"))]
    power_w = math.fsum(powers) / len(powers) if powers else None
    out: list[EpochRecord] = []
    estimated: list[int] = []
    for r in recs:
        e, secs = r.metric("energy_kwh"), r.metric("duration_s")
        if e is None and power_w is not None and secs is not None:
            e = power_w * secs / J_PER_KWH
            estimated.append(r.epoch)
        cum = ledger.cumulative_kwh(out[-1] if out else None,
                                    ledger.lost_kwh_of(lost, r.epoch), e)
        out.append(dataclasses.replace(r, energy_kwh=e, cumulative_kwh=cum))
    return out, estimated


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
        out.runs.append(StudyRun(run, state, why,
                                 energy_of(run, crashed=state is RunState.INCOMPLETE)))
    return out


# --- which runs a figure may come from, and which metric it reads ------------------


def own_metric(run: RunLog) -> tuple[str, str]:
    """The metric the run itself watched and its mode: its config's ``[stop] metric``
    and ``mode`` (greensed's trainer writes them; the library and the Lightning
    callback write their ``metric``/``monitor`` there), else its summary's
    ``best_metric``, else greensed's default."""
    stop = read_config(run).get("stop", {})
    metric = stop.get("metric") or (run.summary.best_metric if run.summary else "")
    return str(metric or DEFAULT_METRIC), str(stop.get("mode") or "max")


def metrics_of(run: RunLog) -> list[str]:
    """The metrics with a number in at least one of the run's epochs."""
    return sorted({k for r in run.epochs for k, v in r.metrics.items()
                   if finite_float(v) is not None})


def stopped_early(run: RunLog) -> str:
    """Why the run is not full length ("" when it is): a policy stopped it, or it
    finished fewer epochs than its config's ``train.epochs``."""
    planned = read_config(run).get("train", {}).get("epochs")
    of = f" of {planned}" if isinstance(planned, int) else ""
    fired = run.summary.stop_policy if run.summary else ""
    n = len(run.epochs)
    if fired and fired != "max-epochs":
        return f"stopped early by {fired} at epoch {n}{of}: not a full-length run"
    if isinstance(planned, int) and n < planned:
        return f"ran {n}{of} epochs: not a full-length run"
    return ""


def require_runs(found: Collection, paths: Sequence[str | Path]) -> None:
    """A one-line error when nothing under ``paths`` can be counted, naming the first
    run left out and why."""
    if found.runs:
        return
    why = f" ({len(found.left_out)} left out; first: {found.left_out[0][0]}: " \
          f"{found.left_out[0][1]})" if found.left_out else ""
    raise GreensedError(f"no finished run under {', '.join(map(str, paths))}{why}")


def select(found: Collection, paths: Sequence[str | Path], *, metric: str | None,
           full_length: bool = False) -> Collection:
    """The runs a figure may come from, each with the metric it reads as F1:
    ``metric`` (``--metric``), else the run's own (``own_metric``). A run without
    that metric in any epoch, one whose own metric is minimised (a loss is no F1),
    or, with ``full_length``, one a policy stopped early, is left out and named with
    why. Nothing left: a one-line error naming the metric and what the runs have."""
    require_runs(found, paths)
    out = Collection(left_out=list(found.left_out))
    for sr in found.runs:
        m, mode = (metric, "max") if metric else own_metric(sr.log)
        has = metrics_of(sr.log)
        short = stopped_early(sr.log) if full_length else ""
        if short:
            out.left_out.append((sr.path, short))
        elif mode != "max":
            out.left_out.append((sr.path, f"it watches {m!r} (mode {mode}): not an F1 to "
                                 f"maximise; give --metric (its metrics: {_names(has)})"))
        elif all(v is None for v in sr.log.series(m)):
            out.left_out.append((sr.path, f"no {m!r} in any epoch (its metrics: "
                                 f"{_names(has)})" + ("" if metric else "; give --metric")))
        else:
            out.runs.append(dataclasses.replace(sr, metric=m))
    if out.runs:
        return out
    new = out.left_out[len(found.left_out):]
    if metric and all(why.startswith("no ") for _, why in new):
        have = sorted({k for sr in found.runs for k in metrics_of(sr.log)})
        close = difflib.get_close_matches(metric, have, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise GreensedError(
            f"--metric {metric!r}: no epoch of the {len(found.runs)} run(s) under "
            f"{', '.join(map(str, paths))} has it{hint}; they have: {_names(have)}")
    raise GreensedError(f"no run under {', '.join(map(str, paths))} to count ({len(new)} "
                        f"left out; first: {new[0][0]}: {new[0][1]})")


def metric_notes(runs: Sequence[StudyRun]) -> list[str]:
    """A note when the runs read different metrics as F1 (each its own)."""
    counts: dict[str, int] = {}
    for sr in runs:
        counts[sr.metric] = counts.get(sr.metric, 0) + 1
    if len(counts) < 2:
        return []
    return ["the runs watch different metrics, each read as its own F1 ("
            + ", ".join(f"{m}: {n} run{'' if n == 1 else 's'}" for m, n in counts.items())
            + "); give --metric to read one"]


def _names(names: Sequence[str], most: int = 8) -> str:
    shown = ", ".join(names[:most]) or "none"
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _epochs_word(epochs: Sequence[int]) -> str:
    return "epoch" if len(epochs) == 1 else "epochs"


def _span(epochs: Sequence[int]) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"``."""
    runs: list[list[int]] = []
    for e in epochs:
        if runs and e == runs[-1][-1] + 1:
            runs[-1].append(e)
        else:
            runs.append([e])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
