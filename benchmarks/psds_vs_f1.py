"""How well the paper's per-epoch F1 stands in for PSDS1, on runs trained with --psds.

    python benchmarks/psds_vs_f1.py RUN_DIR... [--model student] [--patience 2 ...]

For each run directory (epochs.jsonl with ``<model>_f1`` and ``<model>_psds1``): the
Spearman rank correlation of the two over the epochs, the epoch each one peaks at (the
checkpoint a run keeps when it picks by that metric), and where a plateau policy
(``--patience``, ``--min-delta``) stops when it watches one or the other, with the kept
checkpoint's PSDS1 either way ("-": no stop within the run). Reads run logs only.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from greensed.runlog import load_run
from greensed.stopping import build_policy
from greensed.stopping.params import StopConfig


def stop_epoch(run, metric: str, patience: int, min_delta: float, warmup: int) -> int | None:
    """The epoch after which plateau:patience,min_delta (no stop before ``warmup``
    epochs) watching ``metric`` stops; None if it does not within the run."""
    cfg = StopConfig()
    cfg = replace(cfg, metric=metric, policies=("plateau",), warmup_epochs=warmup,
                  plateau=replace(cfg.plateau, patience=patience, min_delta=min_delta))
    policy = build_policy(cfg, max_epochs=10**6)
    for n in range(1, len(run.epochs) + 1):
        if policy.decide(run.epochs[:n]).stop:
            return n
    return None


def best_upto(values: list[float], n: int) -> int:
    """1-based epoch of the maximum among the first n (the first one on ties)."""
    return int(np.argmax(values[:n])) + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", type=Path)
    ap.add_argument("--model", default="student", choices=("student", "teacher"))
    ap.add_argument("--patience", type=int, default=2)
    ap.add_argument("--min-delta", type=float, default=0.01)
    ap.add_argument("--warmup", type=int, default=0, help="epochs before any stop")
    args = ap.parse_args()
    f1_key, psds_key = f"{args.model}_f1", f"{args.model}_psds1"
    pooled_f1, pooled_psds = [], []
    print(f"{'run':<28} epochs  spearman  best F1 ep  best PSDS1 ep  stop F1  stop PSDS1  "
          "kept PSDS1 (F1 stop / PSDS1 stop)")
    for path in args.runs:
        run = load_run(path)
        f1, psds = run.series(f1_key), run.series(psds_key)
        if any(v is None for v in f1 + psds):
            raise SystemExit(f"{path}: an epoch lacks {f1_key} or {psds_key}")
        rho = spearmanr(f1, psds).statistic if len(f1) > 2 else float("nan")
        pooled_f1 += f1
        pooled_psds += psds
        s_f1, s_ps = (stop_epoch(run, key, args.patience, args.min_delta, args.warmup)
                      for key in (f1_key, psds_key))
        # The kept checkpoint: the best epoch by the watched metric up to the stop.
        kept_f1 = best_upto(f1, s_f1 or len(f1))
        kept_ps = best_upto(psds, s_ps or len(psds))
        print(f"{str(path):<28} {len(f1):>6}  {rho:8.3f}  {best_upto(f1, len(f1)):>10}  "
              f"{best_upto(psds, len(psds)):>13}  {s_f1 or '-':>7}  {s_ps or '-':>10}  "
              f"ep {kept_f1}: {psds[kept_f1 - 1]:.3f} / ep {kept_ps}: {psds[kept_ps - 1]:.3f}")
    rho_all = spearmanr(pooled_f1, pooled_psds).statistic
    print(f"pooled over {len(pooled_f1)} epochs: spearman {rho_all:.3f}")


if __name__ == "__main__":
    main()
