"""Shape, noise and cost figures of the curves-v2 corpus (README.md beside this file),
per run and per batch size, from the run logs alone; tests/test_curves_v2_corpus.py
checks the corpus's criteria with these functions.

    python benchmarks/curves-v2/figures.py benchmarks/curves-v2 [--metric teacher_f1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from greensed import config as C
from greensed.runlog import EpochRecord, RunDir

# The criteria (issue: "Corpus v2"), on the watched metric of each run.
SHARE_95 = (0.15, 0.50)  # 95 % of the run's maximum within this share of its energy
MIN_LAST_5_EXTRA = 0.50  # the last 5 % of F1 costs at least this much more energy
MAX_NOISE = 0.015  # std of first differences, second half, / the run's maximum


@dataclass(frozen=True)
class RunFigures:
    path: Path
    batch: int
    seed: int
    epochs: int
    finished: bool
    max_f1: float
    max_epoch: int
    epoch_95: int
    share_95: float  # cumulative kWh at the first epoch >= 0.95 x max, over the run's total
    last_5_extra: float  # kWh to the maximum / kWh to 95 % of it, minus 1
    noise: float  # std of the first differences of the second half, over the maximum
    test_scored: bool  # every epoch has record.test student_f1 and teacher_f1
    total_s: float  # train + validation (energy window) of all epochs
    test_s: float  # test scoring of all epochs
    epoch_s: float  # median duration_s + test_s of an epoch


def run_figures(run_dir: Path, metric: str = "teacher_f1") -> RunFigures | None:
    """The figures of one run directory, finished or still running; None without a
    config, an epoch or a finite metric in every epoch."""
    d = RunDir(run_dir)
    summary, text = d.read_summary(), d.read_config_text()
    records: list[EpochRecord] = d.read_epochs()
    values = [r.metric(metric) for r in records]
    if text is None or not records or any(v is None for v in values):
        return None
    train = C.from_toml_text(text, str(d.config)).train
    f1 = [float(v) for v in values]  # type: ignore[arg-type]
    kwh = [r.cumulative_kwh or 0.0 for r in records]
    top = max(f1)
    i_max = f1.index(top)
    i_95 = next(i for i, v in enumerate(f1) if v >= 0.95 * top)
    half = f1[len(f1) // 2:]
    diffs = [b - a for a, b in zip(half, half[1:], strict=False)]
    epoch_s = [(r.duration_s or 0.0) + (r.test_s or 0.0) for r in records]
    return RunFigures(
        path=Path(run_dir), batch=train.batch_size, seed=train.seed, epochs=len(records),
        finished=bool(summary and summary.finished and summary.stop_policy == "max-epochs"
                      and len(records) == train.epochs),
        max_f1=top, max_epoch=i_max + 1, epoch_95=i_95 + 1,
        share_95=kwh[i_95] / kwh[-1] if kwh[-1] else float("nan"),
        last_5_extra=kwh[i_max] / kwh[i_95] - 1 if kwh[i_95] else float("nan"),
        noise=(statistics.pstdev(diffs) / top) if len(diffs) > 1 and top else float("nan"),
        test_scored=all({"student_f1", "teacher_f1"} <= set(r.test) for r in records),
        total_s=sum((r.train_s or 0.0) + (r.val_s or 0.0) for r in records),
        test_s=sum(r.test_s or 0.0 for r in records), epoch_s=statistics.median(epoch_s))


def corpus_figures(root: Path, metric: str = "teacher_f1") -> list[RunFigures]:
    """Every run under ``root`` (``<batch>/<seed>/`` in a corpus), finished or not, by
    batch and seed."""
    out = [f for p in sorted(root.rglob("config.toml"))
           if (f := run_figures(p.parent, metric)) is not None]
    return sorted(out, key=lambda f: (f.batch, f.seed))


def by_batch(runs: list[RunFigures]) -> dict[int, dict[str, float]]:
    """Per batch size: the mean of each criterion's figure over its runs."""
    out: dict[int, dict[str, float]] = {}
    for b in sorted({r.batch for r in runs}):
        rs = [r for r in runs if r.batch == b]
        out[b] = {"runs": len(rs), "share_95": statistics.mean(r.share_95 for r in rs),
                  "last_5_extra": statistics.mean(r.last_5_extra for r in rs),
                  "noise": statistics.mean(r.noise for r in rs)}
    return out


def table(runs: list[RunFigures]) -> str:
    lines = ["| batch | seed | epochs | max F1 (epoch) | 95 % at epoch | 95 % at % of energy "
             "| last 5 % extra energy | noise (% of max) | s/epoch (test s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r.batch} | {r.seed} | {r.epochs}{'' if r.finished else ' (running)'} "
                     f"| {r.max_f1:.3f} ({r.max_epoch}) | {r.epoch_95} | {100 * r.share_95:.0f} % "
                     f"| {100 * r.last_5_extra:.0f} % | {100 * r.noise:.2f} % "
                     f"| {r.epoch_s:.1f} ({r.test_s / r.epochs:.1f}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--metric", default="teacher_f1")
    args = ap.parse_args(argv)
    runs = corpus_figures(args.root, args.metric)
    print(table(runs))
    print()
    for b, f in by_batch(runs).items():
        print(f"batch {b}: {f['runs']} runs, 95 % at {100 * f['share_95']:.0f} % of the energy, "
              f"last 5 % +{100 * f['last_5_extra']:.0f} %, noise {100 * f['noise']:.2f} % of max")
    hours = sum(r.total_s + r.test_s for r in runs) / 3600
    print(f"{len(runs)} runs, {hours:.2f} h of run time (train + validation + test scoring)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
