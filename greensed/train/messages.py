"""What `greensed train` prints, formatted from the run's records alone.

Every message is a :class:`Line`: a ``str`` whose text is the whole message, one
line per row with its segments joined by `` | `` (what a plain reporter such as
``print`` or a log file gets: an epoch is one line, never wrapped), and which can
lay itself out in a terminal of a given width (:meth:`Line.fit`): whole when it
fits, else a compact form of its segments packed into lines of that width.
"""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greensed import config
from greensed.energy.carbon import CarbonIntensity
from greensed.numbers import count
from greensed.runlog import EpochRecord, RunStatus, Summary
from greensed.stopping import describe
from greensed.train.outcome import RESUME_HINT
from greensed.units import fmt_duration

INDENT = "  "  # continuation lines of a message laid out in a narrow terminal


class Line(str):
    """A message: the whole text (``str(line)``), and ``fit(width)`` for a terminal."""

    rows: tuple[tuple[str, ...], ...]
    compact: tuple[tuple[str, ...], ...]

    def __new__(cls, *rows: Sequence[str], compact: Sequence[Sequence[str]] | None = None
                ) -> Line:
        full = tuple(tuple(r) for r in rows)
        obj = super().__new__(cls, "\n".join(" | ".join(r) for r in full))
        obj.rows = full
        obj.compact = tuple(tuple(r) for r in compact) if compact is not None else full
        return obj

    def fit(self, width: int) -> list[str]:
        """The lines to print in ``width`` columns, none wider."""
        out: list[str] = []
        for full, short in zip(self.rows, self.compact, strict=True):
            whole = " | ".join(full)
            out += [whole] if len(whole) <= width else pack(short, width)
        return out


def pack(segments: Sequence[str], width: int) -> list[str]:
    """``segments`` joined by `` | `` into lines of at most ``width`` columns; lines after
    the first are indented, and a segment longer than a line is wrapped at spaces (or
    cut, where it has none)."""
    width = max(width, len(INDENT) + 8)
    out: list[str] = []
    cur = ""
    for seg in segments:
        if cur:
            if len(cur) + 3 + len(seg) <= width:
                cur = f"{cur} | {seg}"
                continue
            out.append(cur)
        lead = INDENT if out else ""
        if len(lead) + len(seg) <= width:
            cur = lead + seg
            continue
        first = _wrap(seg, width - len(lead))[0]
        rest = seg[len(first):].lstrip() if seg.startswith(first) else seg  # (no tabs here)
        pieces = [lead + first] + [INDENT + p for p in _wrap(rest, width - len(INDENT))]
        out += pieces[:-1]
        cur = pieces[-1]
    if cur:
        out.append(cur)
    return out


def _wrap(text: str, width: int) -> list[str]:
    return textwrap.wrap(text, width, break_long_words=True, break_on_hyphens=False) or [""]


def fit(message: str, width: int) -> list[str]:
    """Any message (a :class:`Line` or a plain string) as lines of at most ``width``."""
    if isinstance(message, Line):
        return message.fit(width)
    out: list[str] = []
    for row in message.split("\n"):
        out += [row] if len(row) <= width else pack([row], width)
    return out


@dataclass(frozen=True)
class RunShape:
    """The facts of a run the banner and epoch lines show."""

    run_dir: Path
    device: str
    meter: str
    batch_size: int
    shares: tuple[int, int, int]
    sizes: tuple[int, int, int]  # strong, weak, unlabelled clips
    n_validation: int
    steps_per_epoch: int
    world_size: int = 1
    protocol: str = "baseline"
    n_heldout: int | None = None  # held-out weak clips validated each epoch (baseline)
    stop: str = ""  # the listed policies with their key parameters (stopping.describe)
    max_epochs: int | None = None
    metric: str = ""
    mode: str = "max"
    budget_kwh: float | None = None  # when the budget policy is listed
    carbon: str = ""  # the CO2 intensity and its source


def stop_facts(cfg: config.RunConfig, carbon: CarbonIntensity | None = None) -> dict[str, Any]:
    """RunShape's stopping and CO2 fields from a run's config and CO2 intensity."""
    sc = cfg.stop
    return {"stop": describe(sc), "max_epochs": cfg.train.epochs, "metric": sc.metric,
            "mode": sc.mode, "budget_kwh": sc.budget.kwh if "budget" in sc.policies else None,
            "carbon": (f"{carbon.g_per_kwh:.4g} g/kWh ({carbon.source})"
                       if carbon is not None else "")}


def banner(shape: RunShape, *, resume_at: int | None) -> Line:
    s = shape
    verb = f"resuming at epoch {resume_at}" if resume_at is not None else "training"
    held = f" + {s.n_heldout} held-out weak" if s.n_heldout is not None else ""
    clips = f"{s.sizes[0]}/{s.sizes[1]}/{s.sizes[2]}/{s.n_validation}{held}"
    ranks = ([f"{s.world_size} ranks, {s.batch_size // s.world_size} clips each per step"]
             if s.world_size > 1 else [])
    shares = "/".join(map(str, s.shares))  # clips of each kind in one step
    head = [f"greensed: {verb} -> {s.run_dir}", f"protocol {s.protocol}",
            f"device {s.device}", f"meter {s.meter}",
            f"batch {s.batch_size} (strong/weak/unlabelled {shares})",
            f"clips strong/weak/unlabelled/val {clips}",
            f"{s.steps_per_epoch} steps/epoch", *ranks]
    short = [f"greensed: {verb} -> {s.run_dir}", f"protocol {s.protocol}",
             f"{s.device}, meter {s.meter}",
             f"batch {s.batch_size} (s/w/u {shares})", f"clips s/w/u/val {clips}",
             f"{s.steps_per_epoch} steps/epoch", *ranks]
    if not s.stop and s.max_epochs is None:
        return Line(head, compact=[short])
    watch = f"on {s.metric} ({s.mode})" if s.metric else ""
    stop = [f"stop {s.stop or 'max-epochs'}",
            f"cap {count(s.max_epochs, 'epoch')}" if s.max_epochs else "", watch,
            f"CO2 at {s.carbon}" if s.carbon else ""]
    stop = [p for p in stop if p]
    return Line(head, stop, compact=[short, stop])


def epoch_line(r: EpochRecord, shape: RunShape) -> Line:
    clips_s = shape.steps_per_epoch * shape.batch_size / max(r.train_s or 0.0, 1e-9)
    m = r.metric
    if r.energy_kwh is not None:
        cum = f"{r.cumulative_kwh * 1000:.2f} Wh" if r.cumulative_kwh is not None else "n/a"
        energy = f"{r.energy_kwh * 1000:.3f} Wh (cum {cum}, {r.avg_power_w or 0:.0f} W)"
        short_energy = f"{r.energy_kwh * 1000:.3f} Wh, cum {cum}, {r.avg_power_w or 0:.0f} W"
    else:
        energy = short_energy = f"energy {r.energy_status}"
    times = f"{r.train_s or 0:.1f}+{r.val_s or 0:.1f} s"
    # The baseline protocol's checkpoint objective (docs/training.md).
    objective = [f"objective {_f(m('objective'), 3)}"] if m("objective") is not None else []
    ahead = [p for p in (_to_cap(r), _to_budget(r, shape.budget_kwh)) if p]
    full = [f"epoch {r.epoch:3d}", f"loss {_f(r.loss.total)}",
            f"F1 student {_f(m('student_f1'), 3)} teacher {_f(m('teacher_f1'), 3)}",
            f"weak F1 teacher {_f(m('teacher_weak_f1'), 3)}", *objective,
            f"{times} ({clips_s:.1f} clips/s)", energy, *ahead]
    short = [f"epoch {r.epoch}", f"loss {_f(r.loss.total)}",
             f"F1 s/t {_f(m('student_f1'), 3)}/{_f(m('teacher_f1'), 3)}, teacher weak "
             f"{_f(m('teacher_weak_f1'), 3)}", *objective, f"{times}, {clips_s:.1f} clips/s",
             short_energy,
             *(_to_cap(r, short=True), _to_budget(r, shape.budget_kwh, short=True))]
    return Line(full, compact=[[p for p in short if p]])


def _to_cap(r: EpochRecord, *, short: bool = False) -> str:
    """What the rest of the run to the epoch cap would take, from the record's forecast
    (Carbontracker-style): ``to cap (epoch 100): 38 Wh more, 71 min, student_f1 0.701 ±
    0.012``; nothing at the cap or without a forecast."""
    f = r.forecast or {}
    if not f.get("epochs_left"):
        return ""
    kwh, secs = _num(f.get("remaining_kwh")), _num(f.get("remaining_s"))
    parts = [f"{_wh(kwh)} more" if kwh is not None else "energy n/a"]
    if secs is not None:
        parts.append(fmt_duration(secs))
    at_cap, std = _num(f.get("metric_at_cap")), _num(f.get("metric_std"))
    if at_cap is not None and std is not None:
        parts.append(f"{f.get('metric')} {at_cap:.3f}{'±' if short else ' ± '}{std:.3f}")
    cap = f"to cap {f.get('max_epochs')}" if short else f"to cap (epoch {f.get('max_epochs')})"
    return f"{cap}: " + ", ".join(parts)


def _to_budget(r: EpochRecord, budget_kwh: float | None, *, short: bool = False) -> str:
    """The energy left in the budget, how many more epochs it allows at the recent energy
    per epoch, and their time: ``to budget 0.5 kWh: 0.0098 kWh left, 25 epochs, 19 min``
    (nothing without a budget, or at the cap). In kWh, as the budget is given and as the
    budget policy's stop reason says it."""
    f = r.forecast or {}
    per_kwh, per_s = _num(f.get("energy_per_epoch_kwh")), _num(f.get("duration_per_epoch_s"))
    spent, left = _num(r.cumulative_kwh), f.get("epochs_left")
    if budget_kwh is None or spent is None or not per_kwh or not left:
        return ""
    head = f"{'budget' if short else 'to budget'} {budget_kwh:g} kWh"
    if spent >= budget_kwh:
        return f"{head}: spent"
    n = int((budget_kwh - spent) // per_kwh)
    rest = f"{budget_kwh - spent:.3g} kWh left"
    if isinstance(left, int) and n >= left:
        return f"{head}: {rest}, lasts past epoch {f.get('max_epochs')}"
    time = f", {fmt_duration(n * per_s)}" if per_s is not None else ""
    return f"{head}: {rest}, {count(n, 'epoch')}{time}"


def closing(s: Summary, run_dir: Path, *, ranks: int = 1) -> Line:
    """How the run ended, its totals, and the command to run next: evaluate and report
    a run that has a best epoch, resume an interrupted one (``ranks``: its processes)."""
    kwh = s.total_kwh
    energy = f"{kwh * 1000:.2f} Wh ({kwh:.5f} kWh)" if kwh is not None else "unavailable"
    at = (f"{s.best_cumulative_kwh * 1000:.2f} Wh" if s.best_cumulative_kwh is not None
          else "energy unavailable")
    record = f", model of record {s.model_of_record}" if s.model_of_record else ""
    best = (f"best {s.best_metric} {_f(s.best_value, 3)} at epoch {s.best_epoch} "
            f"({at}{record})"
            if s.best_epoch else "no finished epoch")
    co2 = ([f"{co2_text(s.total_co2_kg)} CO2eq at {s.carbon_intensity_g_per_kwh:.4g} g/kWh "
            f"({s.carbon_source})"]
           if s.total_co2_kg is not None and s.carbon_intensity_g_per_kwh is not None else [])
    run = shlex.quote(str(run_dir))
    reason = s.stop_reason
    if s.status is RunStatus.INTERRUPTED:
        nproc = f" --nproc {ranks}" if ranks > 1 else ""
        reason = reason.removesuffix(RESUME_HINT)
        then = [f"resume with: greensed train --resume {run}{nproc}"]
    elif s.best_epoch and s.status is not RunStatus.FAILED:
        # One command a row: " | " between them would read as a shell pipe.
        then = [f"next: greensed evaluate {run}", f"then: greensed report {run}"]
    else:
        then = []
    rows = [[f"stopped after {count(s.epochs, 'epoch')}: {reason}"],
            [f"energy {energy} in {s.total_s or 0:.0f} s", *co2, best, f"run log {run_dir}"]]
    return Line(*rows, *([c] for c in then))


def co2_text(kg: float) -> str:
    """kg CO2eq for people: ``1.23 kg``, ``5.6 g`` (three significant digits)."""
    return f"{kg:.3g} kg" if abs(kg) >= 1 else f"{kg * 1000:.3g} g"


def _wh(kwh: float) -> str:
    return f"{kwh * 1000:.3g} Wh"


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else None


def _f(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"
