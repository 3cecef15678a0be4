"""Offline replay of stopping policies on full-run logs.

For each run and each policy, the epochs are walked in order and the policy
decides after epoch i on ``history[:i]``, exactly as the trainer would have;
the first stop gives the stop epoch (none: the run's last epoch). The replay
reports what stopping there would have saved (energy) and cost (best F1 up to
the stop vs the full run's max). Policies come from greensed.stopping; this
module only feeds them logged epochs.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greensed.config import StopConfig
from greensed.errors import ConfigError, GreensedError
from greensed.stopping import Forecast, Policy, build_policy, parse_spec
from greensed.stopping.build import POLICIES, expand_default
from greensed.stopping.params import Watched
from greensed.study.collect import StudyRun, collect, metric_notes, metrics_of, select
from greensed.study.runs import DEFAULT_METRIC, check_by, group_key, sort_key
from greensed.study.tables import Table, decimals_for


@dataclass
class NamedPolicy:
    label: str
    cfg: StopConfig
    # The spec names its metric (``metric=...``); else it watches each run's (replay()).
    sets_metric: bool = False


def parse_policy_spec(spec: str, base: StopConfig | None = None) -> NamedPolicy:
    """``"plateau:patience=5,min_delta=0.005"`` -> that policy, labelled by its spec
    (the syntax: greensed.stopping.parse_spec)."""
    keys = {item.partition("=")[0].strip() for item in spec.partition(":")[2].split(",")}
    return NamedPolicy(spec, parse_spec(spec, base), sets_metric="metric" in keys)


def watched_by(cfg: StopConfig) -> str | None:
    """The metric ``cfg``'s policies decide on, or None when none watches one."""
    names = expand_default(cfg, "--policy").policies
    return cfg.metric if any(issubclass(POLICIES[n], Watched) for n in names
                             if n in POLICIES) else None


@dataclass
class ReplayResult:
    run_dir: Path
    group: str
    policy: str
    epochs: int  # epochs in the full run
    stop_epoch: int
    stop_policy: str  # which policy fired ("" when none did: ran to the end)
    stop_reason: str
    kwh_at_stop: float | None
    total_kwh: float | None
    best_f1_to_stop: float | None
    max_f1: float | None

    @property
    def saved(self) -> float | None:
        """Fraction of the full run's energy not spent when stopping here."""
        if self.kwh_at_stop is None or not self.total_kwh:
            return None
        return 1 - self.kwh_at_stop / self.total_kwh

    @property
    def f1_loss(self) -> float | None:
        """Relative loss of best F1: (full max - best up to stop) / full max."""
        if self.best_f1_to_stop is None or not self.max_f1:
            return None
        return (self.max_f1 - self.best_f1_to_stop) / self.max_f1


# Columns of `greensed replay --forecast-csv` (docs/forecast.md).
FORECAST_COLUMNS = ["run", "policy", "epoch", "metric", "max_epochs", "observed_best",
                    "predicted_best", "lo95", "hi95", "lo50", "hi50", "curve_at_cap",
                    "curve_lo95", "curve_hi95", "curve_lo50", "curve_hi50", "noise_std",
                    "noise_phi", "rel_gain", "prob_gain", "prob_curve_gain", "realised_best"]


def _forecasters(policy: Policy) -> list[Forecast]:
    children = getattr(policy, "policies", None)
    if children is not None:
        return [f for c in children for f in _forecasters(c)]
    return [policy] if isinstance(policy, Forecast) else []


def forecast_rows(sr: StudyRun, policy: NamedPolicy, stop_i: int) -> list[list[Any]]:
    """One row per forecast policy in ``policy`` and epoch up to the ``stop_i``-th
    record at which it forecast (docs/forecast.md): its forecast of the best value
    observed by the cap (the log's length) and of the curve there, and the run's
    realised best of the watched metric."""
    history = sr.log.epochs
    rows = []
    for f in _forecasters(build_policy(policy.cfg, max_epochs=len(history))):
        realised = [v for v in sr.log.series(f.metric) if v is not None]
        for i in range(1, stop_i + 1):
            fc = f.forecasts(history[:i])
            if fc is None:
                continue
            rows.append([str(sr.path), policy.label, history[i - 1].epoch, f.metric,
                         f.max_epochs, fc.observed_best, fc.predicted_best, fc.lo95, fc.hi95,
                         fc.lo50, fc.hi50, fc.curve_at_horizon, fc.curve_lo95, fc.curve_hi95,
                         fc.curve_lo50, fc.curve_hi50, fc.noise_std, fc.noise_phi, f.rel_gain,
                         fc.prob_gain_above(f.rel_gain), fc.prob_curve_gain_above(f.rel_gain),
                         max(realised) if realised else None])
    return rows


def write_forecast_csv(rows: Sequence[Sequence[Any]], path: str | Path) -> None:
    """``FORECAST_COLUMNS``, one row per run x policy x epoch at which it forecast."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(FORECAST_COLUMNS)
        for row in rows:
            w.writerow(["" if v is None else repr(v) if isinstance(v, float) else v
                        for v in row])


def replay_run(sr: StudyRun, policy: NamedPolicy, *, metric: str | None = None,
               group: str = "all", forecasts: list[list[Any]] | None = None) -> ReplayResult:
    """Apply one policy to one run's logged epochs; F1 is ``metric`` (default the one
    ``select`` gave the run). A policy never decides on a metric the run lacks.
    ``forecasts``: a list to which the rows of ``forecast_rows`` are appended."""
    run = sr.log
    history = run.epochs
    n = len(history)
    metric = metric or sr.metric or DEFAULT_METRIC
    if n == 0:
        raise GreensedError(f"{run.run_dir}: no finished epoch to replay")
    watched = watched_by(policy.cfg)
    if watched is not None and all(v is None for v in run.series(watched)):
        raise GreensedError(f"{run.run_dir}: policy {policy.label!r} watches {watched!r}, "
                            f"which no epoch has (its metrics: "
                            f"{', '.join(metrics_of(run)) or 'none'}); give --metric")
    decider = build_policy(policy.cfg, max_epochs=n)
    stop_i, fired, reason = n, "", "ran to the last logged epoch"
    for i in range(1, n + 1):
        d = decider.decide(history[:i])
        if d.stop:
            stop_i, fired, reason = i, d.policy, d.reason
            break
    if forecasts is not None:
        forecasts += forecast_rows(sr, policy, stop_i)
    if fired == "max-epochs":  # the cap at the log's length: no policy fired
        fired, reason = "", "ran to the last logged epoch"
    f1 = run.series(metric)
    upto = [v for v in f1[:stop_i] if v is not None]
    allv = [v for v in f1 if v is not None]
    kwh = sr.energy.cumulative_kwh[stop_i - 1]
    total = sr.energy.total_kwh
    if stop_i == n and total is not None:
        kwh = total  # stopping at the end costs the whole run (lost partial epochs included)
    return ReplayResult(
        run_dir=run.run_dir, group=group, policy=policy.label, epochs=n,
        stop_epoch=history[stop_i - 1].epoch, stop_policy=fired,
        stop_reason=reason, kwh_at_stop=kwh,
        total_kwh=total, best_f1_to_stop=max(upto) if upto else None,
        max_f1=max(allv) if allv else None)


def replay(run_dirs: Sequence[str | Path], policies: Sequence[NamedPolicy], *,
           metric: str | None = None, by: str = "all",
           forecasts: list[list[Any]] | None = None) -> tuple[list[ReplayResult], list[str]]:
    """Every policy on every run under ``run_dirs``; returns results and warnings.
    The policies watch, and F1 is, ``metric`` or else each run's own watched metric
    (a spec's own ``metric=`` still wins for what its policy watches); a run without
    it is left out and named (greensed.study.collect.select). ``forecasts``: as
    ``replay_run``."""
    if not policies:
        raise ConfigError("no policy to replay: give --stop ... or --policy SPEC")
    check_by(by, allow_all=True)
    found = select(collect(run_dirs), run_dirs, metric=metric)
    results, warnings = [], found.notes() + metric_notes(found.runs)
    for sr in found.runs:
        fired = sr.log.summary.stop_policy if sr.log.summary else None
        if fired and fired != "max-epochs":
            warnings.append(f"{sr.path}: the run itself stopped early ({fired}); replay can "
                            "only stop earlier, and saved % is relative to its shorter log")
        key = group_key(sr.log, by)
        results += [replay_run(sr, _for_run(pol, sr.metric), group=key, forecasts=forecasts)
                    for pol in policies]
    return results, warnings


def _for_run(policy: NamedPolicy, metric: str) -> NamedPolicy:
    """The policy watching the run's metric, unless its spec names one."""
    if policy.sets_metric or policy.cfg.metric == metric:
        return policy
    return dataclasses.replace(policy, cfg=dataclasses.replace(policy.cfg, metric=metric))


def write_csv(results: Sequence[ReplayResult], path: str | Path) -> None:
    """One row per run x policy: the run directory as given, the policy and its figures."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", "group", "policy", "stop_epoch", "epochs", "stop_policy",
                    "stop_reason", "kwh_at_stop", "total_kwh", "saved_fraction",
                    "best_f1_to_stop", "max_f1", "f1_loss_rel"])
        for r in results:
            w.writerow([str(r.run_dir), r.group, r.policy, r.stop_epoch, r.epochs,
                        r.stop_policy, r.stop_reason] + ["" if v is None else repr(v) for v in (
                            r.kwh_at_stop, r.total_kwh, r.saved, r.best_f1_to_stop, r.max_f1,
                            r.f1_loss)])


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def _kwh(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.{decimals_for(x, 2)}f}"


def per_run_table(results: Sequence[ReplayResult]) -> Table:
    t = Table("Replay per run", ["Run", "Policy", "Stop epoch", "Fired", "kWh at stop",
                                 "kWh full run", "Saved", "Best F1 to stop", "Max F1",
                                 "F1 loss (rel.)"], key_columns=2)
    for r in results:
        t.add([str(r.run_dir), r.policy, f"{r.stop_epoch}/{r.epochs}", r.stop_policy or "-",
               _kwh(r.kwh_at_stop), _kwh(r.total_kwh), _pct(r.saved),
               _pct(r.best_f1_to_stop), _pct(r.max_f1), _pct(r.f1_loss)])
    return t


def summary_table(results: Sequence[ReplayResult], by: str = "all") -> Table:
    """Mean over runs (per group and policy) of each per-run figure."""
    t = Table("Replay, mean over runs (saved % and F1 loss: mean of per-run values)",
              ([] if by == "all" else [by.capitalize()])
              + ["Policy", "Runs", "Stopped early", "Stop epoch", "kWh at stop",
                 "kWh full run", "Saved", "Best F1 to stop", "F1 loss (rel.)"])
    groups: dict[tuple[str, str], list[ReplayResult]] = {}
    order = sorted({r.group for r in results}, key=sort_key)
    labels = list(dict.fromkeys(r.policy for r in results))
    for r in results:
        groups.setdefault((r.group, r.policy), []).append(r)
    for g in order:
        for label in labels:
            rs = groups.get((g, label), [])
            if not rs:
                continue
            row = [] if by == "all" else [g]
            row += [label, str(len(rs)), str(sum(r.stop_epoch < r.epochs for r in rs)),
                    f"{_mean([r.stop_epoch for r in rs]):.1f}",
                    _kwh(_mean([r.kwh_at_stop for r in rs])),
                    _kwh(_mean([r.total_kwh for r in rs])),
                    _pct(_mean([r.saved for r in rs])),
                    _pct(_mean([r.best_f1_to_stop for r in rs])),
                    _pct(_mean([r.f1_loss for r in rs]))]
            t.add(row)
    return t


def _mean(values: Sequence[float | None]) -> float | None:
    have = [v for v in values if v is not None]
    return sum(have) / len(have) if have else None
