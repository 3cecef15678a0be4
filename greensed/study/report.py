"""Tables 1 and 2 of the paper from run logs.

Per run: max F1, energy to reach an F1 level, time, energy per epoch and per
minute; per group (batch size, hardware or recipe): mean ± sample standard
deviation (ddof = 1) over the group's runs. Column definitions: docs/report.md.
Reads run directories only (greensed.runlog); imports no training code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greensed.errors import GreensedError
from greensed.numbers import finite_float
from greensed.runlog import EpochRecord
from greensed.study.collect import Collection, RunState, StudyRun, collect, metric_notes, select
from greensed.study.runs import (
    DEFAULT_METRIC,
    check_by,
    group_key,
    hardware_key,
    run_total_s,
    sort_key,
)
from greensed.study.stats import (
    Agg,
    co2_note,
    estimate_note,
    estimated,
    fmt_agg,
    fmt_duration,
    ratio_of_means,
    spread_note,
)
from greensed.study.tables import Num, Table, decimals_for

TARGET_F1 = 0.40  # the paper's fixed F1 level (Table 2, "@F1 = 40%")
NEAR_MAX = 0.95  # the paper's "95 % of max F1"


@dataclass
class RunStats:
    """One run's figures. F1 values are fractions; energies in kWh."""

    run_dir: Path
    group: str
    hardware: str
    epochs: int
    max_f1: float | None
    best_epoch: int | None
    near_max_f1: float | None
    kwh_at_target: float | None
    kwh_at_near_max: float | None
    kwh_at_max: float | None
    total_kwh: float | None
    total_s: float | None
    stop_epoch: int | None
    wh_per_epoch: float | None = None
    wh_per_min: float | None = None
    extra_cost: float | None = None  # (kWh@max - kWh@95%) / kWh@95%
    psds: dict[str, float] = field(default_factory=dict)
    # The other factor's key (hardware when grouped by batch, ...): runs of one group and
    # one cell differ only by their seed.
    cell: str = ""
    seed: int | None = None
    energy_estimated: bool = False
    estimated_epochs: tuple[int, ...] = ()  # epochs the meter missed, estimated
    meter: str = ""  # the meter the run's records name
    state: str = "finished"
    recipe: str = ""
    stop_policy: str = ""
    steps_per_epoch: int | None = None
    # kg CO2eq of the run and the intensity's source, from its summary (docs/energy.md).
    co2_kg: float | None = None
    carbon_intensity_g_per_kwh: float | None = None
    carbon_source: str = ""
    metric: str = ""  # the metric read as F1 (--metric, or the run's own)
    # (epoch, cumulative kWh, metric, epoch kWh) of every epoch, for the plots.
    points: list[tuple[int, float | None, float | None, float | None]] = field(
        default_factory=list)


def first_reaching(epochs: Sequence[EpochRecord], key: str, level: float) -> int | None:
    """Index of the first epoch whose ``key`` is >= level, or None."""
    for i, rec in enumerate(epochs):
        v = rec.metric(key)
        if v is not None and v >= level:
            return i
    return None


def run_stats(sr: StudyRun, *, metric: str = DEFAULT_METRIC, target_f1: float = TARGET_F1,
              group: str = "all", cell: str = "") -> RunStats:
    run, energy = sr.log, sr.energy
    epochs = run.epochs
    finite = [v for v in run.series(metric) if v is not None]
    max_f1 = max(finite) if finite else None

    def kwh_at(i: int | None) -> float | None:
        return None if i is None else energy.cumulative_kwh[i]

    best_i = first_reaching(epochs, metric, max_f1) if max_f1 is not None else None
    near = NEAR_MAX * max_f1 if max_f1 is not None else None
    near_i = first_reaching(epochs, metric, near) if near is not None else None
    total_kwh, total_s = energy.total_kwh, run_total_s(run)
    s = RunStats(
        run_dir=run.run_dir,
        group=group,
        hardware=hardware_key(run),
        epochs=len(epochs),
        max_f1=max_f1,
        best_epoch=epochs[best_i].epoch if best_i is not None else None,
        near_max_f1=near,
        kwh_at_target=kwh_at(first_reaching(epochs, metric, target_f1)),
        kwh_at_near_max=kwh_at(near_i),
        kwh_at_max=kwh_at(best_i),
        total_kwh=total_kwh,
        total_s=total_s,
        stop_epoch=(run.summary.stop_epoch if run.summary else None) or (
            epochs[-1].epoch if epochs else None),
        cell=cell, seed=run.summary.seed if run.summary else None,
        energy_estimated=energy.estimated, estimated_epochs=energy.estimated_epochs,
        meter=next((r.meter for r in epochs if r.meter), ""), state=sr.state.value,
        recipe=run.summary.recipe if run.summary else "",
        stop_policy=run.summary.stop_policy if run.summary else "",
        steps_per_epoch=run.summary.steps_per_epoch if run.summary else None,
        co2_kg=finite_float(run.summary.total_co2_kg) if run.summary else None,
        carbon_intensity_g_per_kwh=finite_float(run.summary.carbon_intensity_g_per_kwh)
        if run.summary else None,
        carbon_source=run.summary.carbon_source if run.summary else "",
        metric=metric,
    )
    if total_kwh is not None and s.epochs:
        s.wh_per_epoch = total_kwh * 1000 / s.epochs
    if total_kwh is not None and total_s:
        s.wh_per_min = total_kwh * 1000 / (total_s / 60)
    if s.kwh_at_max is not None and s.kwh_at_near_max:
        s.extra_cost = (s.kwh_at_max - s.kwh_at_near_max) / s.kwh_at_near_max
    s.points = [(r.epoch, kwh, r.metric(metric), r.metric("energy_kwh"))
                for r, kwh in zip(epochs, energy.cumulative_kwh, strict=True)]
    psds = run.dir.read_object(run.dir.psds) or {}
    s.psds = {k: v for k, v in ((k, finite_float(v)) for k, v in psds.items()
                                if k.startswith("psds")) if v is not None}
    return s


@dataclass
class Report:
    by: str
    metric: str
    groups: dict[str, list[RunStats]]
    reference_kwh: dict[str, float] = field(default_factory=dict)  # hardware -> kWh
    warnings: list[str] = field(default_factory=list)
    std: str = "seed"
    notes: list[str] = field(default_factory=list)  # what was left out or estimated

    def reference_for(self, s: RunStats) -> float | None:
        if s.hardware in self.reference_kwh:
            return self.reference_kwh[s.hardware]
        if len(self.reference_kwh) == 1:
            return next(iter(self.reference_kwh.values()))
        return None


# The factor a group's runs may differ by besides the seed (the paper's grid: batch x GPU).
OTHER_FACTOR = {"batch": "hardware", "hardware": "batch", "recipe": "hardware"}
STD_WAYS = ("seed", "runs")


def build_report(run_dirs: Sequence[str | Path], *, by: str = "batch",
                 metric: str | None = None, target_f1: float = TARGET_F1,
                 reference_dirs: Sequence[str | Path] = (),
                 reference_kwh: float | None = None, std: str = "seed",
                 include_unfinished: bool = False) -> Report:
    """Read every run under ``run_dirs`` (each once; see greensed.study.collect) and
    group it by ``by``. F1 is ``metric``, else each run's own watched metric; a run
    without it is left out and named (greensed.study.collect.select).

    ``std="seed"`` (the paper's way): the spread over the seeds of each (group, other
    factor) cell, pooled over the cells; ``"runs"``: over all of the group's runs.
    ``reference_dirs``: reference runs (the baseline on each hardware); a run is
    normalised by the reference on its own hardware, or by the only reference.
    ``reference_kwh``: one reference energy for every run.
    """
    check_by(by)
    if std not in STD_WAYS:
        raise GreensedError(f"--std {std!r}: choose from {', '.join(STD_WAYS)}")
    if not 0 < target_f1 <= 1:
        hint = f"; for {target_f1:g} % use {target_f1 / 100:g}" if 1 < target_f1 <= 100 else ""
        raise GreensedError(f"--target-f1 {target_f1:g}: F1 is a fraction in (0, 1]{hint}")
    found = select(collect(run_dirs, include_unfinished=include_unfinished), run_dirs,
                   metric=metric)
    used = sorted({sr.metric for sr in found.runs})
    every = found.notes() + metric_notes(found.runs)
    marked = {Collection([r]).notes()[0] for r in found.runs if r.energy.estimated}  # as "~"
    rep = Report(by, used[0] if len(used) == 1 else "each run's own metric", {}, std=std,
                 notes=[n for n in every if n not in marked])
    rep.warnings += every
    for sr in found.runs:
        if sr.state is not RunState.FINISHED:
            rep.warnings.append(f"{sr.path}: {sr.state.value}, figures cover its finished "
                                "epochs only")
        key = group_key(sr.log, by)
        rep.groups.setdefault(key, []).append(run_stats(
            sr, metric=sr.metric, target_f1=target_f1, group=key,
            cell=group_key(sr.log, OTHER_FACTOR[by])))
    rep.groups = dict(sorted(rep.groups.items(), key=lambda kv: sort_key(kv[0])))

    if reference_kwh is not None:
        if not (reference_kwh > 0):
            raise GreensedError(f"--reference-kwh {reference_kwh}: must be > 0")
        rep.reference_kwh["*"] = reference_kwh
    for d in reference_dirs:
        found_ref = collect([d], include_unfinished=True)
        ref = found_ref.runs
        kwh = ref[0].energy.total_kwh if ref else None
        if not ref and found_ref.left_out:
            raise GreensedError(f"{d}: reference run not readable ({found_ref.left_out[0][1]})")
        if not kwh:
            raise GreensedError(f"{d}: reference run has no energy reading")
        if ref[0].state is not RunState.FINISHED:  # a part of a run is no reference
            why = f"{d}: reference run {ref[0].state.value} ({ref[0].why or 'not finished'})"
            if not include_unfinished:
                raise GreensedError(f"{why}: its energy covers {len(ref[0].log.epochs)} "
                                    "epochs only; finish it or pass --include-unfinished")
            rep.warnings.append(f"{why}: used as the reference anyway (--include-unfinished)")
        rep.warnings += list(ref[0].energy.notes)
        rep.reference_kwh[hardware_key(ref[0].log)] = kwh
    if rep.reference_kwh and "*" not in rep.reference_kwh:
        for runs in rep.groups.values():
            for s in runs:
                if s.hardware not in rep.reference_kwh:
                    rep.warnings.append(
                        f"{s.run_dir}: no reference run on its hardware ({s.hardware})"
                        + ("; normalised by the only reference anyway"
                           if len(rep.reference_kwh) == 1 else "; not normalised"))
    return rep


def _col(rep: Report, runs: list[RunStats], get: Callable[[RunStats], float | None]) -> Agg:
    """A column over a group's runs: mean ± the std the report asks for."""
    if rep.std == "runs":
        return Agg.of([get(s) for s in runs])
    cells: dict[str, list[float | None]] = {}
    for s in runs:
        cells.setdefault(s.cell, []).append(get(s))
    return Agg.of_cells(list(cells.values()))


def std_title(rep: Report) -> str:
    if rep.std == "runs":
        return "mean ± std over the group's runs, ddof=1"
    return (f"mean ± std over seeds, pooled within {rep.by} × {OTHER_FACTOR[rep.by]} "
            "cells, ddof=1")


def _f1(a: Agg) -> str:
    return fmt_agg(a, scale=100, min_decimals=1, decimals=1)


def table1(rep: Report) -> Table:
    t = Table(f"Table 1: performance, time and energy by {rep.by} "
              f"({std_title(rep)}; F1 = max {rep.metric}, %)",
              [rep.by.capitalize(), "Runs", "Max F1", "Time", "Total (kWh)",
               "Epoch (Wh)", "Minute (Wh)", "CO2 (kg)"])
    for key, runs in rep.groups.items():
        t.add([key, str(len(runs)),
               _f1(_col(rep, runs, lambda s: s.max_f1)),
               fmt_duration(_col(rep, runs, lambda s: s.total_s)),
               _kwh(rep, runs, lambda s: s.total_kwh),
               _kwh(rep, runs, lambda s: s.wh_per_epoch, min_decimals=1),
               _kwh(rep, runs, lambda s: s.wh_per_min, min_decimals=1),
               fmt_agg(_col(rep, runs, lambda s: s.co2_kg), missing="no CO2 figure")])
    t.notes += co2_notes(rep) + footnotes(rep)
    return t


def _kwh(rep: Report, runs: list[RunStats], get: Callable[[RunStats], float | None],
         **fmt: Any) -> Num:
    """An energy column's cell, marked ``~`` when a run counted in it has estimated epochs."""
    return _mark(runs, get, fmt_agg(_col(rep, runs, get), **fmt))


def _mark(runs: list[RunStats], get: Callable[[RunStats], float | None], cell: Num) -> Num:
    est = any(s.energy_estimated and get(s) is not None for s in runs)
    return estimated(cell) if est else cell


def footnotes(rep: Report) -> list[str]:
    """What a table's ``~`` and missing ± mean (greensed.study.stats)."""
    est = [(s.run_dir, s.estimated_epochs, s.meter) for runs in rep.groups.values()
           for s in runs if s.energy_estimated]
    lone = [(key, len(runs)) for key, runs in rep.groups.items()
            if _col(rep, runs, lambda s: s.epochs).std is None]
    return estimate_note(est) + spread_note(rep.by, OTHER_FACTOR[rep.by], lone)


def co2_notes(rep: Report) -> list[str]:
    """Where each run's CO2 figure comes from: kWh x the intensity its summary names."""
    return co2_note([(s.carbon_intensity_g_per_kwh, s.carbon_source)
                     for runs in rep.groups.values() for s in runs if s.co2_kg is not None])


def table2(rep: Report, target_f1: float = TARGET_F1) -> Table:
    t = Table(f"Table 2: energy (kWh) to reach F1 levels by {rep.by} ({std_title(rep)})",
              [rep.by.capitalize(), "Max F1", "95% Max F1", f"@F1 = {target_f1:.0%}",
               "@95% Max F1", "@Max F1", "All epochs", "Extra 95%→Max (mean of runs)",
               "Extra 95%→Max (of means)"])
    for key, runs in rep.groups.items():
        near = _col(rep, runs, lambda s: s.kwh_at_near_max)
        at_max = _col(rep, runs, lambda s: s.kwh_at_max)
        t.add([key,
               _f1(_col(rep, runs, lambda s: s.max_f1)),
               _f1(_col(rep, runs, lambda s: s.near_max_f1)),
               _kwh(rep, runs, lambda s: s.kwh_at_target, missing="never reached"),
               _mark(runs, lambda s: s.kwh_at_near_max, fmt_agg(near)),
               _mark(runs, lambda s: s.kwh_at_max, fmt_agg(at_max)),
               _kwh(rep, runs, lambda s: s.total_kwh),
               _kwh(rep, runs, lambda s: s.extra_cost, scale=100, decimals=0, suffix="%"),
               _mark(runs, lambda s: s.extra_cost, ratio_of_means(near, at_max))])
    t.notes += footnotes(rep)
    return t


def table_normalised(rep: Report, target_f1: float = TARGET_F1) -> Table | None:
    """Energies as multiples of the reference run's total kWh, and the
    energy-weighted score PSDS × kWh_ref / kWh_run where psds.json exists."""
    if not rep.reference_kwh:
        return None
    psds_keys = sorted({k for runs in rep.groups.values() for s in runs for k in s.psds})
    t = Table(f"Hardware-normalised energy by {rep.by} (× reference run's total kWh)",
              [rep.by.capitalize(), "Reference (kWh)", f"@F1 = {target_f1:.0%}",
               "@95% Max F1", "@Max F1", "All epochs"]
              + [f"{k.upper()} × kWh_ref/kWh" for k in psds_keys])
    for key, runs in rep.groups.items():
        refs = {rep.reference_for(s) for s in runs} - {None}

        def norm(get: Callable[[RunStats], float | None], runs: list[RunStats] = runs) -> Agg:
            def scaled(run: RunStats) -> float | None:
                ref, v = rep.reference_for(run), get(run)
                return v / ref if ref and v is not None else None

            return _col(rep, runs, scaled)

        row = [key, ", ".join(f"{r:.{decimals_for(r, 2)}f}" for r in sorted(refs)) or "none",
               _mark(runs, lambda s: s.kwh_at_target,
                     fmt_agg(norm(lambda s: s.kwh_at_target), missing="never reached")),
               _mark(runs, lambda s: s.kwh_at_near_max, fmt_agg(norm(lambda s: s.kwh_at_near_max))),
               _mark(runs, lambda s: s.kwh_at_max, fmt_agg(norm(lambda s: s.kwh_at_max))),
               _mark(runs, lambda s: s.total_kwh, fmt_agg(norm(lambda s: s.total_kwh)))]
        for k in psds_keys:
            def weighted(run: RunStats, k: str = k) -> float | None:
                ref = rep.reference_for(run)
                ok = ref and k in run.psds and run.total_kwh
                return run.psds[k] * ref / run.total_kwh if ok else None  # type: ignore[operator]

            row.append(_mark(runs, weighted, fmt_agg(_col(rep, runs, weighted), decimals=3,
                                                     missing="no psds.json")))
        t.add(row)
    t.notes += footnotes(rep)
    return t


def runs_table(rep: Report) -> Table:
    """One row per run, raw numbers (fractions, kWh, seconds): for CSV export. The first
    column is the run's group, ``group_<by>`` (``group_recipe``): never the name of
    another column, as ``recipe`` or ``hardware`` alone would be."""
    t = Table("Runs", [f"group_{rep.by}", "run_dir", "hardware", "seed", "recipe", "state",
                       "stop_policy", "steps_per_epoch", "epochs", "stop_epoch", "best_epoch",
                       "metric", "max_f1", "near_max_f1", "kwh_at_target", "kwh_at_near_max",
                       "kwh_at_max", "total_kwh", "energy_estimated", "total_s",
                       "wh_per_epoch", "wh_per_min", "extra_cost", "co2_kg",
                       "carbon_intensity_g_per_kwh", "carbon_source"])
    for key, runs in rep.groups.items():
        for s in runs:
            t.add([key, str(s.run_dir), s.hardware] + [
                "" if v is None else (str(v) if isinstance(v, str) else repr(v)) for v in (
                    s.seed, s.recipe, s.state, s.stop_policy, s.steps_per_epoch, s.epochs,
                    s.stop_epoch, s.best_epoch, s.metric, s.max_f1, s.near_max_f1,
                    s.kwh_at_target, s.kwh_at_near_max, s.kwh_at_max, s.total_kwh,
                    int(s.energy_estimated), s.total_s, s.wh_per_epoch, s.wh_per_min,
                    s.extra_cost, s.co2_kg, s.carbon_intensity_g_per_kwh,
                    s.carbon_source or None)])
    t.notes += rep.notes
    return t


def tables(rep: Report, target_f1: float = TARGET_F1) -> list[Table]:
    out = [table1(rep), table2(rep, target_f1)]
    out[0].notes += rep.notes
    norm = table_normalised(rep, target_f1)
    if norm is not None:
        out.append(norm)
    return out
