"""A synthetic corpus of full-length runs with paper-like curves and AR(1) noise, for
timing and calibrating ``greensed bench-policies`` at the size of a real corpus.

    python benchmarks/synthetic_curves.py OUT [--seed 7]
    greensed bench-policies OUT --metric student_f1

4 batch sizes x 5 seeds = 20 runs of 100 to 200 epochs. Each curve is
top x (1 - 0.9 exp(-(epoch / tau)^shape)) with top in [0.45, 0.65], tau 6-20 %
of the run and shape 0.6-1.2 (95 % of the top within about 15-50 % of the
run, as the paper's), plus AR(1) noise (phi 0.5, sd 1.5 % of the top); energy
per epoch falls with the batch size. Run logs are written as the tests' helper
writes them (tests/helpers.py ``write_run``); no test scores.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import write_run  # noqa: E402  (the tests' run-log writer)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    for batch in (4, 8, 16, 32):
        for seed in range(1, 6):
            n = int(rng.integers(100, 201))
            t = np.arange(1, n + 1)
            top, tau, shape = rng.uniform(0.45, 0.65), n * rng.uniform(0.06, 0.2), \
                rng.uniform(0.6, 1.2)
            curve = top * (1 - 0.9 * np.exp(-((t / tau) ** shape)))
            phi, sd = 0.5, 0.015 * top
            noise = lfilter([1.0], [1.0, -phi],
                            rng.standard_normal(n) * sd * math.sqrt(1 - phi**2))
            f1 = np.clip(curve + noise, 0.0, 1.0)
            write_run(args.out / str(batch) / str(seed), [round(float(v), 5) for v in f1],
                      0.001 * (40 / batch + 1), batch_size=batch, seed=seed)
    print(f"wrote 20 runs under {args.out}")


if __name__ == "__main__":
    main()
