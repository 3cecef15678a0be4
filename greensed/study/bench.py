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

from greensed.errors import GreensedError
from greensed.runlog import EpochRecord
from greensed.study.bootstrap import Interval, bootstrap_mean
from greensed.study.collect import collect, select
from greensed.study.runs import read_config

# A relative F1 loss above this is "stopped too early" (the goal's tolerance).
TOO_EARLY = 0.02
# What a chosen setting may give up, on the runs it is chosen on: a mean judged loss of
# at most MAX_LOSS, and at most MAX_TOO_EARLY of the runs above TOO_EARLY (the goal
# greensed's default is held to; `bench-policies --max-loss/--max-too-early`).
MAX_LOSS = 0.01
MAX_TOO_EARLY = 0.05


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
    # The test score of the evaluated metric per epoch (EpochRecord.test, that no
    # decision reads); all None when the corpus has none.
    test: tuple[float | None, ...] = ()

    @property
    def epochs(self) -> int:
        return len(self.records)

    @property
    def max_f1(self) -> float:
        return max(v for v in self.f1 if v is not None)

    def kept_epoch(self, stop: int) -> int | None:
        """The 0-based index of the checkpoint a run stopped after ``stop`` epochs keeps:
        the best so far by the checkpoint metric (the first of equals), as the trainer."""
        return max((i for i in range(stop) if self.kept_by[i] is not None),
                   key=lambda i: (self.kept_by[i], -i), default=None)

    @property
    def has_test(self) -> bool:
        """Every epoch has a test score (a run scored only now and then has no kept
        test loss: its kept checkpoint may be an unscored epoch)."""
        return len(self.test) == self.epochs and all(v is not None for v in self.test)


def test_scores(records: Sequence[EpochRecord], metric: str) -> tuple[float | None, ...]:
    """Each epoch's test score under ``metric``'s name (EpochRecord.test); None where absent
    (a record written before test scores existed has none)."""
    out = []
    for r in records:
        v = (getattr(r, "test", None) or {}).get(metric)
        out.append(float(v) if isinstance(v, (int, float)) and math.isfinite(v) else None)
    return tuple(out)


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
    # Test score of the checkpoint kept at the stop and of the one the full run keeps
    # (None: the corpus has no test scores there).
    kept_test: float | None = None
    full_test: float | None = None

    @property
    def kept_test_loss(self) -> float | None:
        """(test of the full run's kept checkpoint - test of the kept one) / the former."""
        if self.kept_test is None or not self.full_test:
            return None
        return (self.full_test - self.kept_test) / self.full_test

    def judged_loss(self, by_test: bool) -> float:
        """The loss a choice is judged on: kept test loss, or the validation-max loss."""
        if by_test:
            assert self.kept_test_loss is not None
            return self.kept_test_loss
        return self.loss

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
            kept_by=tuple(run.series(checkpoint_metric or sr.metric)), metric=sr.metric,
            test=test_scores(run.epochs, sr.metric)))
        if read_config(run).get("stop", {}).get("policies"):
            warnings.append(f"{sr.path}: trained with early stopping; a replay can only stop "
                            "earlier")
    if not runs:
        raise GreensedError(f"no finished full-length run under {', '.join(map(str, paths))}")
    return runs, warnings


# --- replay --------------------------------------------------------------------------


def outcome(setting: Setting, run: CurveRun) -> Outcome:
    stop = setting.stop(run)
    upto = [v for v in run.f1[:stop] if v is not None]
    kept_i, full_i = run.kept_epoch(stop), run.kept_epoch(run.epochs)
    kept = run.f1[kept_i] if kept_i is not None else None
    kwh = run.total_kwh if stop == run.epochs else run.records[stop - 1].metric("cumulative_kwh")
    tests = run.test if run.has_test else ()
    return Outcome(setting, run, stop, float(kwh or 0.0), max(upto) if upto else 0.0,
                   kept if kept is not None else 0.0,
                   tests[kept_i] if tests and kept_i is not None else None,
                   tests[full_i] if tests and full_i is not None else None)


@dataclass(frozen=True)
class Aggregate:
    """A setting's means over some runs (kept_test_loss None: a run without test scores)."""

    setting: Setting
    runs: int
    saved: float
    loss: float
    kept_loss: float
    too_early: float  # fraction of runs whose judged loss is above TOO_EARLY
    stop_epoch: float
    kept_test_loss: float | None = None

    @classmethod
    def of(cls, setting: Setting, outs: Sequence[Outcome], by_test: bool = False) -> Aggregate:
        m = statistics.fmean
        tests = [o.kept_test_loss for o in outs]
        test = m(t for t in tests if t is not None) if all(t is not None for t in tests) \
            else None
        return cls(setting, len(outs), m(o.saved for o in outs), m(o.loss for o in outs),
                   m(o.kept_loss for o in outs),
                   m(float(o.judged_loss(by_test) > TOO_EARLY) for o in outs),
                   m(o.stop_epoch for o in outs), test)

    def judged(self, by_test: bool) -> float:
        if by_test:
            assert self.kept_test_loss is not None
            return self.kept_test_loss
        return self.loss


def choose(aggs: Sequence[Aggregate], max_loss: float, by_test: bool = False,
           max_too_early: float = 1.0) -> Aggregate | None:
    """The setting that saves most with a mean judged loss (kept test loss, or the
    validation-max loss) <= max_loss and at most max_too_early of its runs above
    TOO_EARLY (ties: the fewer too-early stops, then the first in the grid's order)."""
    ok = [a for a in aggs
          if a.judged(by_test) <= max_loss and a.too_early <= max_too_early + 1e-12]
    return max(ok, key=lambda a: (round(a.saved, 9), -a.too_early)) if ok else None


@dataclass(frozen=True)
class HeldOut:
    """A family's (or the default's) figures on held-out runs: each run under the setting
    chosen without its seed (leave-one-seed-out), means with bootstrap intervals."""

    outcomes: tuple[Outcome, ...]
    chosen: tuple[tuple[int, str], ...]  # (held-out seed, setting chosen on the others)
    saved: Interval
    loss: Interval  # validation-max loss
    kept_test_loss: Interval | None
    too_early: float  # share of runs whose judged loss is above TOO_EARLY

    @classmethod
    def of(cls, outs: Sequence[Outcome], chosen: Sequence[tuple[int, str]], by_test: bool
           ) -> HeldOut:
        tests = [o.kept_test_loss for o in outs]
        return cls(tuple(outs), tuple(chosen), bootstrap_mean([o.saved for o in outs]),
                   bootstrap_mean([o.loss for o in outs]),
                   bootstrap_mean([t for t in tests if t is not None])
                   if all(t is not None for t in tests) else None,
                   statistics.fmean(float(o.judged_loss(by_test) > TOO_EARLY) for o in outs))

    @property
    def runs(self) -> int:
        return len(self.outcomes)

    @property
    def stop_epoch(self) -> float:
        return statistics.fmean(o.stop_epoch for o in self.outcomes)


@dataclass
class Benchmark:
    runs: list[CurveRun]
    outcomes: list[Outcome]
    max_loss: float
    max_too_early: float
    # Choices are judged on kept test loss when every run has test scores, else on
    # the validation-max loss (the table says which).
    by_test: bool
    seeds: tuple[int, ...]
    # fold (held-out seed) -> family -> its choice's figures on the other seeds' runs
    chosen: dict[int, dict[str, Aggregate]] = field(default_factory=dict)
    held_out: dict[str, HeldOut] = field(default_factory=dict)  # family -> pooled folds
    oracles: dict[str, HeldOut] = field(default_factory=dict)  # every run
    # The default's candidate: of the portable settings, the one chosen in each fold
    # (across families), on its held-out runs.
    default: HeldOut | None = None
    # The same rule on every run: the setting the benchmark recommends (greensed's
    # DEFAULT_SETTING when it is this corpus's choice); ``default`` estimates what
    # choosing so gives on runs it has not seen.
    final: Aggregate | None = None
    unchosen: dict[str, list[int]] = field(default_factory=dict)  # family -> folds w/o one


def run_benchmark(runs: list[CurveRun], settings: Sequence[Setting], *,
                  max_loss: float = MAX_LOSS, max_too_early: float = MAX_TOO_EARLY
                  ) -> Benchmark:
    """Replay every setting on every run; choose by leave-one-seed-out cross-validation:
    for each seed, each family's setting (and the default's, among the portable ones) is
    chosen on the other seeds' runs and reported on that seed's. A family's held-out
    figures pool its folds (each run once); a fold where nothing is within ``max_loss``
    and ``max_too_early`` is named in ``unchosen`` and its runs are left out of that
    family's figures. ``final`` is the default's rule applied to every run."""
    seeds = tuple(sorted({r.seed for r in runs if r.seed is not None}))
    if len(seeds) < 2:
        raise GreensedError(f"leave-one-seed-out needs runs of at least 2 seeds, not {seeds}")
    # Run by run: a run's forecasts stay in the memo while its settings replay.
    outs = [outcome(s, r) for r in runs for s in settings]
    by_test = all(r.has_test for r in runs)
    bench = Benchmark(runs, outs, max_loss, max_too_early, by_test, seeds)
    by_setting: dict[str, list[Outcome]] = {}
    for o in outs:
        by_setting.setdefault(o.setting.label, []).append(o)
    families = list(dict.fromkeys(s.family for s in settings))
    held: dict[str, list[Outcome]] = {}
    picks: dict[str, list[tuple[int, str]]] = {}
    for seed in seeds:
        tuned = {s.label: Aggregate.of(s, [o for o in by_setting[s.label] if o.run.seed != seed],
                                       by_test) for s in settings if not s.oracle}
        groups = {f: [s for s in settings if s.family == f and not s.oracle] for f in families}
        groups["default"] = [s for s in settings if s.portable]
        bench.chosen[seed] = {}
        for name, group in groups.items():
            if not group:
                continue
            best = choose([tuned[s.label] for s in group], max_loss, by_test, max_too_early)
            if best is None:
                bench.unchosen.setdefault(name, []).append(seed)
                continue
            bench.chosen[seed][name] = best
            held.setdefault(name, []).extend(o for o in by_setting[best.setting.label]
                                             if o.run.seed == seed)
            picks.setdefault(name, []).append((seed, best.setting.label))
    for name, got in held.items():
        h = HeldOut.of(got, picks[name], by_test)
        if name == "default":
            bench.default = h
        else:
            bench.held_out[name] = h
    for s in settings:
        if s.oracle:
            bench.oracles[s.label] = HeldOut.of(by_setting[s.label], (), by_test)
    bench.final = choose([Aggregate.of(s, by_setting[s.label], by_test) for s in settings
                          if s.portable], max_loss, by_test, max_too_early)
    return bench


def all_aggregates(bench: Benchmark) -> list[Aggregate]:
    """Every setting's mean figures over every run, for the plot and settings.csv."""
    by: dict[str, list[Outcome]] = {}
    for o in bench.outcomes:
        by.setdefault(o.setting.label, []).append(o)
    return [Aggregate.of(outs[0].setting, outs, bench.by_test) for outs in by.values()]
