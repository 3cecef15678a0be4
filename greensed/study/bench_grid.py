"""The policy benchmark's settings: each family over a grid of its parameters, the
Lightning reference and the oracles (greensed.study.bench replays them)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from greensed.config import StopConfig
from greensed.stopping import make_policy
from greensed.study.bench import CurveRun, Setting


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
