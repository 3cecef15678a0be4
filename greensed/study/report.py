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

from greensed import runlog
from greensed.errors import GreensedError
from greensed.numbers import finite_float
from greensed.runlog import EpochRecord, RunLog
from greensed.study.runs import (
    DEFAULT_METRIC,
    check_by,
    group_key,
    hardware_key,
    run_total_kwh,
    run_total_s,
    sort_key,
)
from greensed.study.stats import Agg, fmt_agg, fmt_duration
from greensed.study.tables import Table, decimals_for

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


def run_stats(run: RunLog, *, metric: str = DEFAULT_METRIC, target_f1: float = TARGET_F1,
              group: str = "all") -> RunStats:
    epochs = run.epochs
    finite = [v for v in run.series(metric) if v is not None]
    max_f1 = max(finite) if finite else None

    def kwh_at(i: int | None) -> float | None:
        return None if i is None else epochs[i].metric("cumulative_kwh")

    best_i = first_reaching(epochs, metric, max_f1) if max_f1 is not None else None
    near = NEAR_MAX * max_f1 if max_f1 is not None else None
    near_i = first_reaching(epochs, metric, near) if near is not None else None
    total_kwh, total_s = run_total_kwh(run), run_total_s(run)
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
    )
    if total_kwh is not None and s.epochs:
        s.wh_per_epoch = total_kwh * 1000 / s.epochs
    if total_kwh is not None and total_s:
        s.wh_per_min = total_kwh * 1000 / (total_s / 60)
    if s.kwh_at_max is not None and s.kwh_at_near_max:
        s.extra_cost = (s.kwh_at_max - s.kwh_at_near_max) / s.kwh_at_near_max
    s.points = [(r.epoch, r.metric("cumulative_kwh"), r.metric(metric), r.metric("energy_kwh"))
                for r in epochs]
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

    def reference_for(self, s: RunStats) -> float | None:
        if s.hardware in self.reference_kwh:
            return self.reference_kwh[s.hardware]
        if len(self.reference_kwh) == 1:
            return next(iter(self.reference_kwh.values()))
        return None


def build_report(run_dirs: Sequence[str | Path], *, by: str = "batch",
                 metric: str = DEFAULT_METRIC, target_f1: float = TARGET_F1,
                 reference_dirs: Sequence[str | Path] = (),
                 reference_kwh: float | None = None) -> Report:
    """Read every run under ``run_dirs`` and group it by ``by``.

    ``reference_dirs``: reference runs (the baseline on each hardware); a run is
    normalised by the reference on its own hardware, or by the only reference.
    ``reference_kwh``: one reference energy for every run.
    """
    check_by(by)
    paths = runlog.find_runs(run_dirs)
    if not paths:
        raise GreensedError(f"no run directories under {', '.join(map(str, run_dirs))}")
    rep = Report(by, metric, {})
    for p in paths:
        run = runlog.load_run(p)
        if not run.epochs:
            rep.warnings.append(f"{p}: no finished epoch, skipped")
            continue
        if all(v is None for v in run.series(metric)):
            raise GreensedError(f"{run.dir.epochs}: no metric {metric!r} in any epoch")
        if run.summary and not run.summary.finished:
            rep.warnings.append(f"{p}: status {run.summary.status.value!r}, "
                                "figures cover its finished epochs only")
        elif not run.summary:
            rep.warnings.append(f"{p}: no summary.json (still running?)")
        key = group_key(run, by)
        rep.groups.setdefault(key, []).append(
            run_stats(run, metric=metric, target_f1=target_f1, group=key))
    rep.groups = dict(sorted(rep.groups.items(), key=lambda kv: sort_key(kv[0])))

    if reference_kwh is not None:
        if not (reference_kwh > 0):
            raise GreensedError(f"--reference-kwh {reference_kwh}: must be > 0")
        rep.reference_kwh["*"] = reference_kwh
    for d in reference_dirs:
        ref = runlog.load_run(d)
        kwh = run_total_kwh(ref)
        if not kwh:
            raise GreensedError(f"{d}: reference run has no energy reading")
        rep.reference_kwh[hardware_key(ref)] = kwh
    if rep.reference_kwh and "*" not in rep.reference_kwh:
        for runs in rep.groups.values():
            for s in runs:
                if s.hardware not in rep.reference_kwh:
                    rep.warnings.append(
                        f"{s.run_dir}: no reference run on its hardware ({s.hardware})"
                        + ("; normalised by the only reference anyway"
                           if len(rep.reference_kwh) == 1 else "; not normalised"))
    return rep


def _col(runs: list[RunStats], get: Callable[[RunStats], float | None]) -> Agg:
    return Agg.of([get(s) for s in runs])


def _f1(a: Agg) -> str:
    return fmt_agg(a, scale=100, min_decimals=1, decimals=1)


def table1(rep: Report) -> Table:
    t = Table(f"Table 1: performance, time and energy by {rep.by} "
              f"(mean ± std over runs, ddof=1; F1 = max {rep.metric}, %)",
              [rep.by.capitalize(), "Runs", "Max F1", "Time", "Total (kWh)",
               "Epoch (Wh)", "Minute (Wh)"])
    for key, runs in rep.groups.items():
        t.add([key, str(len(runs)),
               _f1(_col(runs, lambda s: s.max_f1)),
               fmt_duration(_col(runs, lambda s: s.total_s)),
               fmt_agg(_col(runs, lambda s: s.total_kwh)),
               fmt_agg(_col(runs, lambda s: s.wh_per_epoch), min_decimals=1),
               fmt_agg(_col(runs, lambda s: s.wh_per_min), min_decimals=1)])
    return t


def table2(rep: Report, target_f1: float = TARGET_F1) -> Table:
    t = Table(f"Table 2: energy (kWh) to reach F1 levels by {rep.by} "
              "(mean ± std over runs, ddof=1)",
              [rep.by.capitalize(), "Max F1", "95% Max F1", f"@F1 = {target_f1:.0%}",
               "@95% Max F1", "@Max F1", "All epochs", "Extra 95%→Max (mean of runs)",
               "Extra 95%→Max (of means)"])
    for key, runs in rep.groups.items():
        near = _col(runs, lambda s: s.kwh_at_near_max)
        at_max = _col(runs, lambda s: s.kwh_at_max)
        t.add([key,
               _f1(_col(runs, lambda s: s.max_f1)),
               _f1(_col(runs, lambda s: s.near_max_f1)),
               fmt_agg(_col(runs, lambda s: s.kwh_at_target), missing="never reached"),
               fmt_agg(near), fmt_agg(at_max),
               fmt_agg(_col(runs, lambda s: s.total_kwh)),
               fmt_agg(_col(runs, lambda s: s.extra_cost), scale=100, decimals=0, suffix="%"),
               _ratio_of_means(near, at_max)])
    return t


def _ratio_of_means(near: Agg, at_max: Agg) -> str:
    if near.mean is None or at_max.mean is None or near.mean == 0:
        return "n/a"
    return f"{(at_max.mean - near.mean) / near.mean:.0%}"


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
            vals = []
            for s in runs:
                ref, v = rep.reference_for(s), get(s)
                vals.append(v / ref if ref and v is not None else None)
            return Agg.of(vals)

        row = [key, ", ".join(f"{r:.{decimals_for(r, 2)}f}" for r in sorted(refs)) or "none",
               fmt_agg(norm(lambda s: s.kwh_at_target), missing="never reached"),
               fmt_agg(norm(lambda s: s.kwh_at_near_max)),
               fmt_agg(norm(lambda s: s.kwh_at_max)),
               fmt_agg(norm(lambda s: s.total_kwh))]
        for k in psds_keys:
            vals = []
            for s in runs:
                ref = rep.reference_for(s)
                ok = ref and k in s.psds and s.total_kwh
                vals.append(s.psds[k] * ref / s.total_kwh if ok else None)
            row.append(fmt_agg(Agg.of(vals), decimals=3, missing="no psds.json"))
        t.add(row)
    return t


def runs_table(rep: Report) -> Table:
    """One row per run, raw numbers (fractions, kWh, seconds): for CSV export."""
    t = Table("Runs", [rep.by, "run_dir", "hardware", "epochs", "stop_epoch", "best_epoch",
                       "max_f1", "near_max_f1", "kwh_at_target", "kwh_at_near_max",
                       "kwh_at_max", "total_kwh", "total_s", "wh_per_epoch", "wh_per_min",
                       "extra_cost"])
    for key, runs in rep.groups.items():
        for s in runs:
            t.add([key, str(s.run_dir), s.hardware] + [
                "" if v is None else repr(v) for v in (
                    s.epochs, s.stop_epoch, s.best_epoch, s.max_f1, s.near_max_f1,
                    s.kwh_at_target, s.kwh_at_near_max, s.kwh_at_max, s.total_kwh,
                    s.total_s, s.wh_per_epoch, s.wh_per_min, s.extra_cost)])
    return t


def tables(rep: Report, target_f1: float = TARGET_F1) -> list[Table]:
    out = [table1(rep), table2(rep, target_f1)]
    norm = table_normalised(rep, target_f1)
    if norm is not None:
        out.append(norm)
    return out
