"""Tables 1 and 2 of the paper (and plots) from run logs.

Per run: max F1, energy to reach an F1 level, time, energy per epoch and per
minute; per group (batch size, hardware or recipe): mean ± sample standard
deviation (ddof = 1) over the group's runs. Column definitions: docs/report.md.
Reads run directories only (greensed.runlog); imports no training code.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greensed import runlog
from greensed.errors import GreensedError
from greensed.runlog import RunLog
from greensed.study.tables import Table, decimals_for

GROUP_BY = ("batch", "hardware", "recipe")
DEFAULT_METRIC = "teacher_f1"
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


def first_reaching(epochs: Sequence[dict[str, Any]], key: str, level: float) -> int | None:
    """Index of the first epoch whose ``key`` is >= level, or None."""
    for i, rec in enumerate(epochs):
        v = runlog.metric(rec, key)
        if _finite(v) and v >= level:
            return i
    return None


def run_total_kwh(run: RunLog) -> float | None:
    """Energy of the whole run: summary total_kwh (includes lost partial epochs),
    else the last epoch's cumulative_kwh."""
    total = (run.summary or {}).get("total_kwh")
    if _finite(total):
        return float(total)
    for rec in reversed(run.epochs):
        if _finite(rec.get("cumulative_kwh")):
            return float(rec["cumulative_kwh"])
    return None


def run_total_s(run: RunLog) -> float | None:
    total = (run.summary or {}).get("total_s")
    if _finite(total):
        return float(total)
    secs = [r.get("duration_s") for r in run.epochs]
    return float(sum(secs)) if secs and all(_finite(s) for s in secs) else None


def run_stats(run: RunLog, *, metric: str = DEFAULT_METRIC, target_f1: float = TARGET_F1,
              group: str = "all") -> RunStats:
    epochs = run.epochs
    values = [runlog.metric(r, metric) for r in epochs]
    finite = [v for v in values if _finite(v)]
    max_f1 = max(finite) if finite else None

    def kwh_at(i: int | None) -> float | None:
        if i is None:
            return None
        v = epochs[i].get("cumulative_kwh")
        return float(v) if _finite(v) else None

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
        best_epoch=epochs[best_i]["epoch"] if best_i is not None else None,
        near_max_f1=near,
        kwh_at_target=kwh_at(first_reaching(epochs, metric, target_f1)),
        kwh_at_near_max=kwh_at(near_i),
        kwh_at_max=kwh_at(best_i),
        total_kwh=total_kwh,
        total_s=total_s,
        stop_epoch=(run.summary or {}).get("stop_epoch") or (
            epochs[-1]["epoch"] if epochs else None),
    )
    if total_kwh is not None and s.epochs:
        s.wh_per_epoch = total_kwh * 1000 / s.epochs
    if total_kwh is not None and total_s:
        s.wh_per_min = total_kwh * 1000 / (total_s / 60)
    if s.kwh_at_max is not None and s.kwh_at_near_max:
        s.extra_cost = (s.kwh_at_max - s.kwh_at_near_max) / s.kwh_at_near_max
    psds = runlog.read_json(run.run_dir / "psds.json") or {}
    s.psds = {k: float(v) for k, v in psds.items()
              if k.startswith("psds") and _finite(v)}
    return s


# --- grouping -------------------------------------------------------------------

def _config(run: RunLog) -> dict[str, Any]:
    if not run.config_text:
        return {}
    try:
        return tomllib.loads(run.config_text)
    except tomllib.TOMLDecodeError as exc:
        raise GreensedError(f"{run.run_dir / runlog.CONFIG_FILE}: invalid TOML: {exc}") from None


def hardware_key(run: RunLog) -> str:
    hw = run.hardware or {}
    return str(hw.get("gpu_name") or hw.get("cpu_model") or "unknown hardware")


def group_key(run: RunLog, by: str) -> str:
    summary = run.summary or {}
    if by == "batch":
        b = summary.get("batch_size") or _config(run).get("train", {}).get("batch_size")
        return str(b) if b is not None else "unknown"
    if by == "hardware":
        return hardware_key(run)
    if by == "recipe":
        return str(summary.get("recipe") or _config(run).get("recipe", {}).get("name")
                   or "unknown")
    if by == "all":
        return "all"
    raise GreensedError(f"--by {by!r}: choose from {', '.join(GROUP_BY)}")


def _sort_key(key: str) -> tuple[int, float, str]:
    try:
        return (0, float(key), key)
    except ValueError:
        return (1, 0.0, key)


# --- statistics -----------------------------------------------------------------

def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof = 1; None for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean of no values")
    mean = sum(values) / n
    if n == 1:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


@dataclass
class Agg:
    """A column over a group's runs: mean ± std of the runs that have a value."""

    mean: float | None
    std: float | None
    n: int  # runs with a value
    missing: int  # runs without one

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Agg:
        have = [v for v in values if v is not None]
        if not have:
            return cls(None, None, 0, len(values))
        m, s = mean_std(have)
        return cls(m, s, len(have), len(values) - len(have))


def fmt_agg(a: Agg, scale: float = 1.0, min_decimals: int = 2, suffix: str = "",
            missing: str = "no data", decimals: int | None = None) -> str:
    total = a.n + a.missing
    if a.mean is None:
        return f"n/a ({missing})" if total == 1 else f"n/a ({total} of {total} {missing})"
    d = decimals if decimals is not None else decimals_for(a.mean * scale, min_decimals)
    text = f"{a.mean * scale:.{d}f}{suffix}"
    if a.std is not None:
        text += f" ± {a.std * scale:.{d}f}{suffix}"
    if a.missing:
        text += f" ({a.missing} of {total} {missing})"
    return text


def fmt_duration(a: Agg) -> str:
    """hh:mm as in the paper; hh:mm:ss when the mean is under an hour."""
    if a.mean is None:
        return "n/a"
    secs = a.mean < 3600
    text = _hms(a.mean, secs)
    if a.std is not None:
        std = _hms(a.std, secs)
        text += " ± " + (std[1:] if std.startswith("0") else std)  # paper: "08:28 ± 0:45"
    return text


def _hms(seconds: float, with_seconds: bool) -> str:
    if with_seconds:
        s = round(seconds)
        return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    m = round(seconds / 60)
    return f"{m // 60:02d}:{m % 60:02d}"


# --- the report -----------------------------------------------------------------

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
    if by not in GROUP_BY:
        raise GreensedError(f"--by {by!r}: choose from {', '.join(GROUP_BY)}")
    paths = runlog.find_runs(run_dirs)
    if not paths:
        raise GreensedError(f"no run directories under {', '.join(map(str, run_dirs))}")
    rep = Report(by, metric, {})
    for p in paths:
        run = runlog.load_run(p)
        if not run.epochs:
            rep.warnings.append(f"{p}: no finished epoch, skipped")
            continue
        if all(runlog.metric(r, metric) is None for r in run.epochs):
            raise GreensedError(f"{p / runlog.EPOCHS_FILE}: no metric {metric!r} in any epoch")
        if run.summary and run.summary.get("status") != "finished":
            rep.warnings.append(f"{p}: status {run.summary.get('status')!r}, "
                                "figures cover its finished epochs only")
        elif not run.summary:
            rep.warnings.append(f"{p}: no summary.json (still running?)")
        key = group_key(run, by)
        rep.groups.setdefault(key, []).append(
            run_stats(run, metric=metric, target_f1=target_f1, group=key))
    rep.groups = dict(sorted(rep.groups.items(), key=lambda kv: _sort_key(kv[0])))

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


# --- plots ----------------------------------------------------------------------

def plot_runs(rep: Report, out_dir: str | Path) -> list[Path]:
    """F1 vs cumulative kWh per run (stop and best epoch marked) and Wh per
    epoch per run, as PNG files in ``out_dir``."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    fig1, ax1 = plt.subplots(figsize=(8, 5))
    fig2, ax2 = plt.subplots(figsize=(8, 5))
    for gi, (key, runs) in enumerate(rep.groups.items()):
        colour = colours[gi % len(colours)]
        for ri, s in enumerate(runs):
            run = runlog.load_run(s.run_dir)
            label = f"{rep.by} {key}" if ri == 0 else None
            pts = [(r["epoch"], r.get("cumulative_kwh"), runlog.metric(r, rep.metric),
                    r.get("energy_kwh")) for r in run.epochs]
            xy = [(kwh, f1 * 100) for _, kwh, f1, _ in pts if _finite(kwh) and _finite(f1)]
            if xy:
                ax1.plot(*zip(*xy, strict=True), color=colour, alpha=0.8, lw=1, label=label)
            for ep, kwh, f1, _ in pts:
                if not (_finite(kwh) and _finite(f1)):
                    continue
                if ep == s.best_epoch:
                    ax1.plot(kwh, f1 * 100, "o", color=colour, ms=6)
                if ep == s.stop_epoch:
                    ax1.plot(kwh, f1 * 100, "x", color="black", ms=7)
            e_pts = [(ep, e * 1000) for ep, _, _, e in pts if _finite(e)]
            if e_pts:
                ax2.plot(*zip(*e_pts, strict=True), color=colour, alpha=0.8, lw=1, label=label)
    ax1.plot([], [], "o", color="grey", label="best epoch")
    ax1.plot([], [], "x", color="black", label="stop epoch")
    ax1.set(xlabel="cumulative energy (kWh)", ylabel=f"{rep.metric} (%)",
            title="F1 vs cumulative energy, per run")
    ax2.set(xlabel="epoch", ylabel="energy per epoch (Wh)", title="Energy per epoch, per run")
    paths = []
    for fig, ax, name in ((fig1, ax1, "f1_vs_kwh.png"), (fig2, ax2, "wh_per_epoch.png")):
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=120)
        plt.close(fig)
        paths.append(out_dir / name)
    return paths


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
