"""How long the forecast policy's ``decide`` takes on every prefix of a run.

    python benchmarks/forecast_speed.py [--epochs 60 200] [--out forecast.json]

For each length, a synthetic noisy F1 curve (0.6 - 0.55 exp(-epoch / tau),
tau = length / 6, Gaussian noise of sd 0.02, as the 64-clip validation F1 of
the curves corpus) is asked ``decide`` on every prefix: cold (memo cleared
before each call: the live trainer's case, one new epoch per call) and
memoized (the same prefixes again: an offline replay's second policy setting
on the same run); and, cold, ``forecasts`` with its intervals read (the noise
paths a stop's reason, ``replay --forecast-csv`` and the calibration table
draw). ``min_epochs = 1`` so that every prefix of 6 points or more
is fitted. Prints medians, 90th percentiles and maxima in ms, and an estimate
of a replay of 10 settings x 6 runs x 60 prefixes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from greensed.runlog import EpochRecord
from greensed.stopping.curve_noise import clear_cache as clear_noise_cache
from greensed.stopping.curves import MIN_POINTS, clear_cache
from greensed.stopping.forecast import Forecast, predict_run


def noisy_curve(n: int, seed: int) -> list[EpochRecord]:
    x = np.arange(1, n + 1)
    rng = np.random.default_rng(seed)
    f1 = np.clip(0.6 - 0.55 * np.exp(-x / (n / 6)) + rng.normal(0.0, 0.02, n), 0.0, 1.0)
    return [EpochRecord(epoch=int(e), metrics={"student_f1": float(v)}, energy_kwh=0.005,
                        cumulative_kwh=0.005 * int(e), duration_s=30.0)
            for e, v in zip(x, f1, strict=True)]


def _ms(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {"median_ms": 1e3 * statistics.median(s), "p90_ms": 1e3 * s[int(0.9 * (len(s) - 1))],
            "max_ms": 1e3 * s[-1], "n": len(s)}


def time_prefixes(n: int, seed: int) -> dict[str, dict[str, float]]:
    records = noisy_curve(n, seed)
    policy = Forecast(metric="student_f1", max_epochs=n, min_epochs=1)
    prefixes = [records[:k] for k in range(MIN_POINTS, n)]  # the cap itself is not fitted
    cold, warm, report, paths = [], [], [], []
    for prefix in prefixes:
        clear_cache()
        clear_noise_cache()
        t0 = time.perf_counter()
        policy.decide(prefix)
        cold.append(time.perf_counter() - t0)
    for prefix in prefixes:
        clear_cache()
        clear_noise_cache()
        t0 = time.perf_counter()
        fc = policy.forecasts(prefix)
        if fc is not None:
            _ = fc.lo95
        paths.append(time.perf_counter() - t0)
    for prefix in prefixes:  # fill the memo (the cold loop kept only the last)
        policy.decide(prefix)
    for prefix in prefixes:
        t0 = time.perf_counter()
        policy.decide(prefix)
        warm.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        predict_run(prefix, metric="student_f1", max_epochs=n)
        report.append(time.perf_counter() - t0)
    return {"cold": _ms(cold), "memoized": _ms(warm), "predict_run_after_decide": _ms(report),
            "cold_with_noise_paths": _ms(paths)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, nargs="+", default=[60, 200])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="also write the figures as JSON")
    args = ap.parse_args()
    results: dict[str, Any] = {}
    for n in args.epochs:
        results[str(n)] = time_prefixes(n, args.seed)
        for kind, r in results[str(n)].items():
            print(f"{n:4d} epochs  {kind:25s} median {r['median_ms']:7.2f} ms  "
                  f"p90 {r['p90_ms']:7.2f}  max {r['max_ms']:7.2f}  ({r['n']} prefixes)")
    if "60" in results:
        # One cold fit per run and prefix; the other settings read the memo.
        r = results["60"]
        est = 6 * 60 * (r["cold"]["median_ms"] + 9 * r["memoized"]["median_ms"]) / 1e3
        print(f"replay estimate, 10 settings x 6 runs x 60 prefixes (one warm-up): {est:.1f} s")
        results["replay_estimate_s"] = est
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
