"""The policy benchmark's outputs: its table, its CSVs and its Pareto plot."""

from __future__ import annotations

import csv
from pathlib import Path

from greensed.numbers import count
from greensed.study import bench as B
from greensed.study.bench import Benchmark, all_aggregates
from greensed.study.bootstrap import Interval
from greensed.study.tables import Table


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


def _ci(i: Interval | None) -> str:
    if i is None:
        return "unavailable"
    return f"{i.mean * 100:.1f}% [{i.lo * 100:.1f}, {i.hi * 100:.1f}]"


def bench_table(bench: Benchmark) -> Table:
    """Oracles, each family's choices and the default's: held-out figures, every seed
    held out once (leave-one-seed-out), means with bootstrap 95 % intervals."""
    judged = "kept test loss" if bench.by_test else "validation-max loss"
    t = Table(f"Policies on {count(len(bench.runs), 'run')}, each held out once (settings "
              f"chosen on the other seeds' runs: the most saving with mean {judged} <= "
              f"{bench.max_loss:.0%} and at most {bench.max_too_early:.0%} of runs above "
              f"{B.TOO_EARLY:.0%}; means and bootstrap 95 % intervals over runs)",
              ["Family", "Chosen (held-out seed: setting)", "Saved", "Kept test loss",
               "Val-max loss", f"Runs > {B.TOO_EARLY:.0%}", "Stop epoch"], key_columns=2)
    rows = [("oracle", label, h) for label, h in bench.oracles.items()]
    rows += [(family, "; ".join(f"{s}: {lab}" for s, lab in h.chosen), h)
             for family, h in bench.held_out.items()]
    if bench.default is not None:
        rows.append(("default", "; ".join(f"{s}: {lab}" for s, lab in bench.default.chosen),
                     bench.default))
    for family, label, h in rows:
        t.add([family, label, _ci(h.saved), _ci(h.kept_test_loss), _ci(h.loss),
               f"{h.too_early:.0%} of {h.runs}", f"{h.stop_epoch:.1f}"])
    if bench.final is not None:
        f = bench.final
        t.notes.append(f"Chosen on all {count(f.runs, 'run')} by the default's rule: "
                       f"{f.setting.label} (saved {_pct(f.saved)}, {judged} "
                       f"{_pct(f.judged(bench.by_test))}, "
                       f"{f.too_early:.0%} of runs above {B.TOO_EARLY:.0%}); the default row "
                       "estimates what this choice gives on runs it has not seen.")
    else:
        t.notes.append("No portable setting is within the limits on all runs: no default "
                       "to recommend from this corpus.")
    for family, folds in bench.unchosen.items():
        t.notes.append(f"{family}: no setting within the limits when seed"
                       f"{'s' if len(folds) > 1 else ''} {', '.join(map(str, folds))} "
                       "held out; those runs are not in its figures.")
    t.notes.append(
        "Kept test loss: the test score of the checkpoint kept at the stop (best so far by "
        "the checkpoint metric) relative to that of the checkpoint the full run keeps"
        + ("." if bench.by_test else "; unavailable: the corpus has no test scores, so "
           "choices are judged on the validation-max loss.")
        + " Val-max loss: the best validation value up to the stop vs the run's maximum. "
        f"Runs > {B.TOO_EARLY:.0%}: share of runs whose {judged} is above it. default: of the "
        "settings whose parameters hold on any task and hardware (plateau; forecast without "
        "a kWh price), the one chosen in each fold. Intervals: scipy.stats.bootstrap, "
        "percentile, 2000 resamples of the runs, seed 0.")
    return t


def write_outcomes_csv(bench: Benchmark, path: Path) -> None:
    """One row per (setting, run), raw numbers."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["family", "setting", "run", "batch", "seed", "stop_epoch", "epochs",
                    "kwh_at_stop", "total_kwh", "saved_fraction", "best_f1_to_stop",
                    "kept_f1", "max_f1", "f1_loss_rel", "kept_f1_loss_rel", "kept_test",
                    "full_test", "kept_test_loss_rel", "too_early"])
        for o in bench.outcomes:
            w.writerow([o.setting.family, o.setting.label, o.run.label, o.run.batch, o.run.seed,
                        o.stop_epoch, o.run.epochs, repr(o.kwh_at_stop), repr(o.run.total_kwh),
                        repr(o.saved), repr(o.best_to_stop), repr(o.kept_f1),
                        repr(o.run.max_f1), repr(o.loss), repr(o.kept_loss),
                        *("" if v is None else repr(v)
                          for v in (o.kept_test, o.full_test, o.kept_test_loss)),
                        int(o.judged_loss(bench.by_test) > B.TOO_EARLY)])


def write_summary_csv(bench: Benchmark, path: Path) -> None:
    """One row per setting: its mean figures over every run, and the folds that chose it."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["family", "setting", "chosen_in_folds", "runs", "saved_fraction",
                    "f1_loss_rel", "kept_f1_loss_rel", "kept_test_loss_rel",
                    "too_early_fraction", "stop_epoch"])
        for a in all_aggregates(bench):
            folds = [str(seed) for seed, by in bench.chosen.items()
                     if a.setting.label in {c.setting.label for c in by.values()}]
            w.writerow([a.setting.family, a.setting.label, " ".join(folds), a.runs,
                        repr(a.saved), repr(a.loss), repr(a.kept_loss),
                        "" if a.kept_test_loss is None else repr(a.kept_test_loss),
                        repr(a.too_early), repr(a.stop_epoch)])


def plot_pareto(bench: Benchmark, path: Path) -> Path:
    """Energy saved vs relative F1 loss, every setting's mean on the held-out runs;
    each family's chosen setting circled, the oracles as stars."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    aggs = all_aggregates(bench)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    families = list(dict.fromkeys(a.setting.family for a in aggs if not a.setting.oracle))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, family in enumerate(families):
        pts = [a for a in aggs if a.setting.family == family]
        ax.scatter([a.loss * 100 for a in pts], [a.saved * 100 for a in pts], s=12,
                   alpha=0.5, color=colours[i % len(colours)], label=family)
        chosen = bench.held_out.get(family)
        if chosen is not None:
            ax.scatter([chosen.loss.mean * 100], [chosen.saved.mean * 100], s=120,
                       facecolors="none", edgecolors=colours[i % len(colours)], linewidths=2)
    for a in aggs:
        if a.setting.oracle:
            ax.scatter([a.loss * 100], [a.saved * 100], marker="*", s=160, color="black")
            ax.annotate(a.setting.label, (a.loss * 100, a.saved * 100), fontsize=8,
                        xytext=(5, -10), textcoords="offset points")
    ax.axvline(bench.max_loss * 100, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="relative loss of max F1 (%)", ylabel="energy saved (%)",
           title=f"Stopping policies on {len(bench.runs)} full-length runs\n(dots: means "
                 "over runs; circles: each family's held-out choices)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
