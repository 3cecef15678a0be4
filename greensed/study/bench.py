"""The policy benchmark: every policy family over a grid of its parameters, replayed
on every run of a corpus of full-length runs (no early stop), against oracles
that know the whole run, with settings chosen on some seeds and reported on the
others (``greensed bench-policies``, docs/policies.md).

Per run and setting: the stop epoch (the first epoch after which the policy
says stop, exactly as the trainer would ask it), the energy saved against the
full run, the relative loss of max F1 (the best F1 reachable up to the stop vs
the full run's max, and the F1 of the checkpoint that would be kept), and
whether the stop was too early (a loss above ``too_early``). Reads run logs only.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from greensed.config import StopConfig
from greensed.errors import GreensedError
from greensed.runlog import EpochRecord
from greensed.stopping import make_policy
from greensed.study.collect import collect, select
from greensed.study.runs import read_config

# A relative F1 loss above this is "stopped too early" (the goal's tolerance).
TOO_EARLY = 0.02


@dataclass(frozen=True)
class CurveRun:
    """One full-length run as the benchmark sees it."""

    run_dir: Path
    label: str
    batch: str
    seed: int | None
    records: tuple[EpochRecord, ...]
    total_kwh: float
    f1: tuple[float | None, ...]  # the evaluated metric per epoch
    kept_by: tuple[float | None, ...]  # the checkpoint metric per epoch
    metric: str = "teacher_f1"  # the name of the metric f1 holds (load_corpus)

    @property
    def epochs(self) -> int:
        return len(self.records)

    @property
    def max_f1(self) -> float:
        return max(v for v in self.f1 if v is not None)


@dataclass(frozen=True)
class Setting:
    """A policy with fixed parameters, or an oracle; ``stop`` gives the stop epoch."""

    family: str
    label: str
    stop: Callable[[CurveRun], int] = field(compare=False)
    oracle: bool = False
    # Parameters that mean the same on any task and hardware (epochs, relative gains,
    # probabilities; no kWh, F1 per kWh or F1 value): a candidate for the default.
    portable: bool = False


@dataclass(frozen=True)
class Outcome:
    setting: Setting
    run: CurveRun
    stop_epoch: int
    kwh_at_stop: float
    best_to_stop: float
    kept_f1: float

    @property
    def saved(self) -> float:
        return 1.0 - self.kwh_at_stop / self.run.total_kwh

    @property
    def loss(self) -> float:
        """Relative loss of max F1: (full max - best F1 up to the stop) / full max."""
        return (self.run.max_f1 - self.best_to_stop) / self.run.max_f1

    @property
    def kept_loss(self) -> float:
        """The same for the F1 of the checkpoint kept (best by the checkpoint metric)."""
        return (self.run.max_f1 - self.kept_f1) / self.run.max_f1

    @property
    def too_early(self) -> bool:
        return self.loss > TOO_EARLY


def load_corpus(paths: Sequence[str | Path], *, metric: str | None = None,
                checkpoint_metric: str | None = None) -> tuple[list[CurveRun], list[str]]:
    """Every finished full-length run under ``paths``, each once, read on ``metric`` or
    else the runs' own watched metric (greensed.study.collect.select: a run a policy
    stopped early, or without the metric, is left out and named in the warnings)."""
    found = select(collect(paths), paths, metric=metric, full_length=True)
    runs, warnings = [], [f"{p}: left out ({why})" for p, why in found.left_out]
    warnings += [n for sr in found.runs for n in sr.energy.notes]
    used = sorted({sr.metric for sr in found.runs})
    if len(used) > 1:  # the grid's policies watch one metric
        raise GreensedError(f"the runs under {', '.join(map(str, paths))} watch different "
                            f"metrics ({', '.join(used)}); give --metric to benchmark one")
    for sr in found.runs:
        run = sr.log
        if sr.energy.estimated or sr.energy.total_kwh is None:
            warnings.append(f"{sr.path}: left out (epochs without an energy reading)")
            continue
        s = run.summary
        assert s is not None
        runs.append(CurveRun(
            run_dir=sr.path, label=str(sr.path), batch=str(s.batch_size), seed=s.seed,
            records=tuple(run.epochs), total_kwh=sr.energy.total_kwh,
            f1=tuple(run.series(sr.metric)),
            kept_by=tuple(run.series(checkpoint_metric or sr.metric)), metric=sr.metric))
        if read_config(run).get("stop", {}).get("policies"):
            warnings.append(f"{sr.path}: trained with early stopping; a replay can only stop "
                            "earlier")
    if not runs:
        raise GreensedError(f"no finished full-length run under {', '.join(map(str, paths))}")
    return runs, warnings


# --- settings ----------------------------------------------------------------------


def policy_setting(family: str, spec: str, metric: str, *, portable: bool = False) -> Setting:
    """A greensed policy from its spec, replayed as the trainer asks it: after each epoch."""
    base = StopConfig(metric=metric)

    def stop(run: CurveRun) -> int:
        policy = make_policy(spec, max_epochs=run.epochs, base=base)
        for i in range(1, run.epochs + 1):
            if policy.decide(run.records[:i]).stop:
                return i
        return run.epochs

    return Setting(family, spec, stop, portable=portable)


def lightning_setting(patience: int, min_delta: float) -> Setting:
    """Lightning's EarlyStopping(mode="max") semantics, as a reference: the first value
    sets the best, an improvement is ``current - min_delta > best``, a non-finite value
    stops at once (check_finite), and it stops when ``patience`` epochs in a row did
    not improve."""

    def stop(run: CurveRun) -> int:
        best, wait = -math.inf, 0
        for i, v in enumerate(run.f1, start=1):
            if v is None or not math.isfinite(v):
                return i
            if v - min_delta > best:
                best, wait = v, 0
            else:
                wait += 1
                if wait >= patience:
                    return i
        return run.epochs

    return Setting("lightning", f"EarlyStopping(patience={patience}, min_delta={min_delta:g})",
                   stop)


def oracle_settings() -> list[Setting]:
    """Stops that know the whole run: at its best epoch, or at the first epoch that
    reaches 95 % or 98 % of its maximum."""

    def at_fraction(frac: float) -> Callable[[CurveRun], int]:
        return lambda run: next(i for i, v in enumerate(run.f1, start=1)
                                if v is not None and v >= frac * run.max_f1)

    return [Setting("oracle", "best epoch", at_fraction(1.0), oracle=True),
            Setting("oracle", "first at 98% of max", at_fraction(0.98), oracle=True),
            Setting("oracle", "first at 95% of max", at_fraction(0.95), oracle=True)]


def default_grid(metric: str, runs: Sequence[CurveRun]) -> list[Setting]:
    """Every family over a grid of its parameters. Energy-priced thresholds, budgets
    and targets are set relative to the corpus's own scale (its median F1 per kWh over
    a whole run, median kWh, median max F1), so the grid spans cheap and dear settings
    whatever the hardware and the task."""
    scale = statistics.median(r.max_f1 / r.total_kwh for r in runs)
    rates = sorted({float(f"{scale * k:.3g}") for k in (0.03, 0.1, 0.3, 1, 3, 10)})
    kwh = statistics.median(r.total_kwh for r in runs)
    out: list[Setting] = []
    for patience in (2, 3, 5, 8, 10, 15, 20, 30):
        for delta in (0.0, 0.005, 0.01, 0.02):
            for warmup in (0, 10):
                out.append(policy_setting("plateau", f"plateau:patience={patience},"
                                          f"min_delta={delta:g},warmup={warmup}", metric,
                                          portable=True))
    for rate in rates:
        for window in (3, 5, 10):
            out.append(policy_setting("marginal", f"marginal:min_f1_per_kwh={rate:g},"
                                      f"window={window}", metric))
    for rate in (0.0, *rates):
        for prob, rel in ((0.0, 0.01), (0.05, 0.005), (0.05, 0.01), (0.05, 0.02), (0.2, 0.01)):
            if rate == 0 and prob == 0:
                continue
            for warmup in (0, 10):
                out.append(policy_setting("forecast", f"forecast:min_gain_per_kwh={rate:g},"
                                          f"min_prob={prob:g},rel_gain={rel:g},warmup={warmup}",
                                          metric, portable=rate == 0))
    for frac in (0.3, 0.5, 0.7):
        out.append(policy_setting("budget", f"budget:kwh={kwh * frac:.3g}", metric))
    f1 = statistics.median(r.max_f1 for r in runs)  # targets, too, on the corpus's scale
    for frac in (0.8, 0.9, 0.95, 0.98):
        out.append(policy_setting("target", f"target:value={f1 * frac:.3g}", metric))
    for patience in (3, 5, 10, 20):
        for delta in (0.0, 0.01):
            out.append(lightning_setting(patience, delta))
    return out + oracle_settings()


# --- replay --------------------------------------------------------------------------


def outcome(setting: Setting, run: CurveRun) -> Outcome:
    stop = setting.stop(run)
    upto = [v for v in run.f1[:stop] if v is not None]
    kept_i = max((i for i in range(stop) if run.kept_by[i] is not None),
                 key=lambda i: (run.kept_by[i], -i), default=None)
    kept = run.f1[kept_i] if kept_i is not None else None
    kwh = run.total_kwh if stop == run.epochs else run.records[stop - 1].metric("cumulative_kwh")
    return Outcome(setting, run, stop, float(kwh or 0.0), max(upto) if upto else 0.0,
                   kept if kept is not None else 0.0)


@dataclass(frozen=True)
class Aggregate:
    setting: Setting
    runs: int
    saved: float
    loss: float
    kept_loss: float
    too_early: float  # fraction of runs
    stop_epoch: float

    @classmethod
    def of(cls, setting: Setting, outs: Sequence[Outcome]) -> Aggregate:
        m = statistics.fmean
        return cls(setting, len(outs), m(o.saved for o in outs), m(o.loss for o in outs),
                   m(o.kept_loss for o in outs), m(float(o.too_early) for o in outs),
                   m(o.stop_epoch for o in outs))


def choose(aggs: Sequence[Aggregate], max_loss: float) -> Aggregate | None:
    """The setting that saves most with a mean relative loss <= max_loss (ties: the
    fewer too-early stops, then the first in the grid's order)."""
    ok = [a for a in aggs if a.loss <= max_loss]
    return max(ok, key=lambda a: (round(a.saved, 9), -a.too_early)) if ok else None


@dataclass
class Benchmark:
    runs: list[CurveRun]
    outcomes: list[Outcome]
    tune_seeds: tuple[int, ...]
    max_loss: float
    chosen: dict[str, Aggregate] = field(default_factory=dict)  # family -> on tuning runs
    held_out: dict[str, Aggregate] = field(default_factory=dict)  # family -> on the others
    oracles: dict[str, Aggregate] = field(default_factory=dict)  # on the held-out runs
    # The default's candidate: of the portable settings, the one chosen on the tuning
    # runs (across families, as each family's choice), and its held-out figures.
    default: tuple[Aggregate, Aggregate] | None = None

    def tuning(self, o: Outcome) -> bool:
        return o.run.seed in self.tune_seeds


def run_benchmark(runs: list[CurveRun], settings: Sequence[Setting], *,
                  tune_seeds: Sequence[int] | None = None, max_loss: float = TOO_EARLY
                  ) -> Benchmark:
    """Replay every setting on every run; per family, choose on ``tune_seeds`` (default:
    the smallest seed) and report the choice on the other seeds' runs."""
    seeds = sorted({r.seed for r in runs if r.seed is not None})
    tune = tuple(tune_seeds) if tune_seeds else tuple(seeds[:1])
    if not set(seeds) - set(tune):
        raise GreensedError(f"every run's seed ({seeds}) is a tuning seed {list(tune)}: "
                            "nothing is left to report held out")
    outs = [outcome(s, r) for s in settings for r in runs]
    bench = Benchmark(runs, outs, tune, max_loss)
    by_setting: dict[str, list[Outcome]] = {}
    for o in outs:
        by_setting.setdefault(o.setting.label, []).append(o)

    def on(setting: Setting, tuning: bool) -> Aggregate:  # its mean on one split
        return Aggregate.of(setting, [o for o in by_setting[setting.label]
                                      if bench.tuning(o) == tuning])

    tuned = {s.label: on(s, True) for s in settings if not s.oracle}
    for family in dict.fromkeys(s.family for s in settings):
        fam = [s for s in settings if s.family == family]
        if fam[0].oracle:
            bench.oracles.update({s.label: on(s, False) for s in fam})
            continue
        best = choose([tuned[s.label] for s in fam], max_loss)
        if best is not None:
            bench.chosen[family] = best
            bench.held_out[family] = on(best.setting, False)
    best = choose([tuned[s.label] for s in settings if s.portable], max_loss)
    if best is not None:
        bench.default = (best, on(best.setting, False))
    return bench


def all_aggregates(bench: Benchmark, *, held_out: bool) -> list[Aggregate]:
    """Every setting's mean figures on the held-out (or the tuning) runs, for the plot."""
    by: dict[str, list[Outcome]] = {}
    for o in bench.outcomes:
        if bench.tuning(o) != held_out:
            by.setdefault(o.setting.label, []).append(o)
    return [Aggregate.of(outs[0].setting, outs) for outs in by.values()]
