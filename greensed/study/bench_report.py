"""The policy benchmark's outputs: its table, its CSVs and its Pareto plot."""

from __future__ import annotations

import csv
from pathlib import Path

from greensed.numbers import count
from greensed.study.bench import Aggregate, Benchmark, all_aggregates
from greensed.study.tables import Table


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def bench_table(bench: Benchmark) -> Table:
    """Oracles and each family's chosen setting: figures on the held-out runs."""
    held = sorted({o.run.label for o in bench.outcomes if not bench.tuning(o)})
    seeds = "seed" if len(bench.tune_seeds) == 1 else "seeds"
    t = Table(f"Policies on {count(len(held), 'held-out run')} (settings chosen on {seeds} "
              f"{', '.join(map(str, bench.tune_seeds))} with mean F1 loss <= "
              f"{bench.max_loss:.0%}; F1 loss relative to each run's max)",
              ["Family", "Setting", "Saved (tuning)", "Loss (tuning)", "Saved", "F1 loss",
               "Kept F1 loss", "Too early", "Stop epoch"], key_columns=2)
    for label, a in bench.oracles.items():
        t.add(["oracle", label, "-", "-", _pct(a.saved), _pct(a.loss), _pct(a.kept_loss),
               _pct(a.too_early), f"{a.stop_epoch:.1f}"])
    rows = [(family, bench.chosen[family], a) for family, a in bench.held_out.items()]
    if bench.default is not None:
        rows.append(("default", *bench.default))
    for family, tuned, a in rows:
        t.add([family, a.setting.label, _pct(tuned.saved), _pct(tuned.loss), _pct(a.saved),
               _pct(a.loss), _pct(a.kept_loss), _pct(a.too_early), f"{a.stop_epoch:.1f}"])
    families = dict.fromkeys(o.setting.family for o in bench.outcomes if not o.setting.oracle)
    for family in families:
        if family not in bench.chosen:
            t.notes.append(f"{family}: no setting with a mean F1 loss <= {bench.max_loss:.0%} "
                           "on the tuning runs.")
    t.notes.append("Too early: share of runs whose best F1 up to the stop is more than 2% "
                   "below the run's max. Kept F1: the F1 of the checkpoint a run would keep. "
                   "default: of the settings whose parameters hold on any task and hardware "
                   "(plateau; forecast without a kWh price), the one chosen on the tuning "
                   "runs.")
    return t


def write_outcomes_csv(bench: Benchmark, path: Path) -> None:
    """One row per (setting, run), raw numbers."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["family", "setting", "run", "batch", "seed", "split", "stop_epoch",
                    "epochs", "kwh_at_stop", "total_kwh", "saved_fraction", "best_f1_to_stop",
                    "kept_f1", "max_f1", "f1_loss_rel", "kept_f1_loss_rel", "too_early"])
        for o in bench.outcomes:
            w.writerow([o.setting.family, o.setting.label, o.run.label, o.run.batch, o.run.seed,
                        "tuning" if bench.tuning(o) else "held-out", o.stop_epoch, o.run.epochs,
                        repr(o.kwh_at_stop), repr(o.run.total_kwh), repr(o.saved),
                        repr(o.best_to_stop), repr(o.kept_f1), repr(o.run.max_f1),
                        repr(o.loss), repr(o.kept_loss), int(o.too_early)])


def write_summary_csv(bench: Benchmark, path: Path) -> None:
    """One row per setting: its mean figures on the tuning and on the held-out runs."""
    tuning = {a.setting.label: a for a in all_aggregates(bench, held_out=False)}
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["family", "setting", "chosen", "tuning_runs", "tuning_saved",
                    "tuning_f1_loss", "held_out_runs", "saved_fraction", "f1_loss_rel",
                    "kept_f1_loss_rel", "too_early_fraction", "stop_epoch"])
        chosen = {a.setting.label for a in bench.chosen.values()}
        for a in all_aggregates(bench, held_out=True):
            t = tuning.get(a.setting.label)
            w.writerow([a.setting.family, a.setting.label, int(a.setting.label in chosen),
                        t.runs if t else 0, repr(t.saved) if t else "", repr(t.loss) if t else "",
                        a.runs, repr(a.saved), repr(a.loss), repr(a.kept_loss),
                        repr(a.too_early), repr(a.stop_epoch)])


def plot_pareto(bench: Benchmark, path: Path) -> Path:
    """Energy saved vs relative F1 loss, every setting's mean on the held-out runs;
    each family's chosen setting circled, the oracles as stars."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    aggs = all_aggregates(bench, held_out=True)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    families = list(dict.fromkeys(a.setting.family for a in aggs if not a.setting.oracle))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, family in enumerate(families):
        pts = [a for a in aggs if a.setting.family == family]
        ax.scatter([a.loss * 100 for a in pts], [a.saved * 100 for a in pts], s=12,
                   alpha=0.5, color=colours[i % len(colours)], label=family)
        chosen: Aggregate | None = bench.held_out.get(family)
        if chosen is not None:
            ax.scatter([chosen.loss * 100], [chosen.saved * 100], s=120, facecolors="none",
                       edgecolors=colours[i % len(colours)], linewidths=2)
    for a in aggs:
        if a.setting.oracle:
            ax.scatter([a.loss * 100], [a.saved * 100], marker="*", s=160, color="black")
            ax.annotate(a.setting.label, (a.loss * 100, a.saved * 100), fontsize=8,
                        xytext=(5, -10), textcoords="offset points")
    ax.axvline(bench.max_loss * 100, color="grey", lw=0.8, ls="--")
    ax.set(xlabel="relative loss of max F1 (%)", ylabel="energy saved (%)",
           title=f"Stopping policies on {len({o.run.label for o in bench.outcomes})} "
                 "full-length runs (held-out means; circles: chosen on tuning seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
