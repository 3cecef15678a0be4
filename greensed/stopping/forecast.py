"""The forecasting policy: stop when the extrapolated learning curve says the rest
of the run to the epoch cap is not worth its energy.

The metric's curve so far is fitted by the ensemble of ``curves.py`` (after
Domhan, Springenberg & Hutter, IJCAI 2015) and extrapolated to the cap. Energy
of the epochs ahead = their number x the median ``energy_kwh`` of the recent
epochs. Like every policy it is a pure function of the history.
``predict_run`` gives the same forecast for people (energy, time and metric at
the cap). See ``docs/forecast.md``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from greensed.errors import ConfigError
from greensed.fields import PositiveInt, check_fields
from greensed.stopping.base import (
    CONTINUE,
    Decision,
    History,
    Watching,
    fmt,
)
from greensed.stopping.curve_noise import BestForecast, forecast_best
from greensed.stopping.curves import CurveForecast, forecast_curve
from greensed.stopping.params import ForecastParams, Watched
from greensed.units import fmt_duration


def _points(history: History, metric: str, warmup_epochs: int) -> tuple[list[int], list[float]]:
    """(epochs, values) of ``metric``'s finite values after ``warmup_epochs``."""
    epochs: list[int] = []
    values: list[float] = []
    for rec in history:
        epoch = rec.epoch
        value = rec.metric(metric)
        if epoch > warmup_epochs and value is not None:
            epochs.append(epoch)
            values.append(value)
    return epochs, values


def _curve(history: History, metric: str, horizon: int, warmup_epochs: int = 0) -> CurveForecast:
    """The forecast of ``metric``'s curve at ``horizon`` from the epochs after ``warmup_epochs``."""
    return forecast_curve(*_points(history, metric, warmup_epochs), horizon)


def _best(history: History, metric: str, horizon: int, warmup_epochs: int = 0,
          autocorr_power: float | None = None) -> BestForecast:
    """The forecast of the best ``metric`` observed by ``horizon`` (curve + AR(1) noise)."""
    return forecast_best(*_points(history, metric, warmup_epochs), horizon,
                         autocorr_power=autocorr_power)


def _recent_median(history: History, key: str, window: int) -> float | None:
    """Median of the finite ``key`` readings among the last ``window`` records
    (``energy_kwh`` or ``duration_s``).

    The median, not the mean or the maximum: the remaining epochs are typical
    ones, and one epoch slowed by a busy neighbour (2-3x on shared cores) or a
    null reading should not move the estimate.
    """
    readings = [v for v in (r.metric(key) for r in history[-window:]) if v is not None]
    return statistics.median(readings) if readings else None


def _best_rate(fc: CurveForecast, now_epoch: int, per_epoch_kwh: float) -> tuple[float, float, int]:
    """The best predicted gain per kWh over every stopping epoch after now, up to the cap.

    (rate, gain, epoch) for the epoch m that maximises (curve(m) - curve(now)) /
    ((m - now) x energy per epoch). Over every m, not only the cap: a curve that
    saturates soon gives its gain in the next epochs, and averaged over all the
    epochs to the cap that gain would look too small to pay for them. ``now`` is
    the last record's epoch, which is after the curve's last point when that
    epoch's value is null.
    """
    start = min(max(now_epoch - fc.last_epoch, 0), len(fc.curve) - 1)
    now = fc.curve[start]
    best = (-math.inf, 0.0, fc.last_epoch + start)
    for step in range(1, len(fc.curve) - start):
        gain = max(fc.curve[start + step] - now, 0.0)
        spent = step * per_epoch_kwh
        rate = gain / spent if spent > 0 else (math.inf if gain > 0 else 0.0)
        if rate > best[0]:
            best = (rate, gain, fc.last_epoch + start + step)
    return best


@dataclass(frozen=True)
class Forecast(Watched, ForecastParams, Watching):
    """Stop when the forecast to ``max_epochs`` says no further epoch is worth its energy.

    From the ensemble forecast of the metric's fitted (noise-free) curve, stop
    after epoch n when either holds:

    - no stopping epoch m in (n, cap] pays ``min_gain_per_kwh``: for every m,
      curve(m) - curve(n) < min_gain_per_kwh x (m - n) x energy per epoch, the
      median ``energy_kwh`` of the last ``energy_window`` epochs. With the rate
      as the price of a kWh in metric units, stopping now is then predicted to
      give the best metric-minus-energy trade of any epoch to the cap. Metric
      units per kWh, as ``marginal``. 0 turns this test off.
    - P(curve at the cap > curve now x (1 + ``rel_gain``)) < ``min_prob``: the
      underlying curve is unlikely to gain ``rel_gain`` (relative) more by the
      cap (after Domhan et al.'s P(y_m > y_best) < delta). The curve's
      uncertainty accounts for the epoch-to-epoch noise being autocorrelated
      (AR(1), ``curve_noise.py``); a gain the noise alone would show is not
      a gain a test set would see. 0 turns this test off.

    Never stops before epoch ``min_epochs``, at or after the cap (max-epochs
    stops there), or while the forecast is not meaningful (too few points,
    a constant curve, values outside [0, 1], no family fitted). Epochs
    ``<= warmup_epochs`` are left out of the fit (a ramp-up is not the curve's
    shape). Mode max only: the families rise and saturate.
    """

    # The epoch cap the forecast looks to: the run's own (the builder passes it).
    max_epochs: PositiveInt = 200
    name: ClassVar[str] = "forecast"
    requires_energy: ClassVar[bool] = True
    # The builder gives this policy the run's epoch cap as max_epochs.
    takes_cap: ClassVar[bool] = True

    def __post_init__(self) -> None:
        check_fields(self, "stop policy 'forecast'")
        if self.mode != "max":
            raise ConfigError(f"stop policy 'forecast': mode = {self.mode!r} must be 'max' "
                              "(its curve families rise and saturate)")
        if self.min_epochs > self.max_epochs:
            raise ConfigError(f"stop policy 'forecast': min_epochs = {self.min_epochs!r} must "
                              f"be <= the epoch cap ({self.max_epochs})")

    def decide(self, history: History) -> Decision:
        if not history:
            return CONTINUE
        last = history[-1].epoch
        if last < self.min_epochs or last >= self.max_epochs:
            return CONTINUE
        fc = _curve(history, self.metric, self.max_epochs, self.warmup_epochs)
        if not fc.meaningful:
            return CONTINUE
        per_epoch = _recent_median(history, "energy_kwh", self.energy_window)

        def head() -> str:  # drawn only for a stop: the noise paths cost a few ms
            best = _best(history, self.metric, self.max_epochs, self.warmup_epochs)
            out = f"forecast: by epoch {self.max_epochs}, best {self.metric} observed " \
                f"{best.predicted_best:.3f} (95 % {best.lo95:.3f}-{best.hi95:.3f}), curve " \
                f"{best.curve_at_horizon:.3f} (95 % {best.curve_lo95:.3f}-{best.curve_hi95:.3f})"
            if per_epoch is not None:
                out += f" for {fmt((self.max_epochs - last) * per_epoch, 2)} kWh more"
            return out + f" (fitted now {fc.now_mean:.3f}"

        why: list[str] = []
        if self.min_gain_per_kwh > 0:
            if per_epoch is None:
                return Decision(
                    True,
                    self.name,
                    f"{head()}); energy unavailable (no energy_kwh in the last "
                    f"{self.energy_window} epochs), cannot price the predicted gain",
                )
            rate, gain, epoch = _best_rate(fc, last, per_epoch)
            if rate < self.min_gain_per_kwh:
                spent = (epoch - last) * per_epoch
                why.append(f"; at most {fmt(rate, 2)} per kWh < {fmt(self.min_gain_per_kwh)}: "
                           f"+{fmt(gain, 2)} by epoch {epoch} for {fmt(spent, 2)} kWh")
        if self.min_prob > 0:
            best = _best(history, self.metric, self.max_epochs, self.warmup_epochs)
            prob = best.prob_curve_gain_above(self.rel_gain)
            if prob < self.min_prob:
                why.append(f"; P(curve > {1 + self.rel_gain:g} x now) = {prob:.3f} "
                           f"< {fmt(self.min_prob)}")
        if not why:
            return CONTINUE
        return Decision(True, self.name, head() + "".join(why) + ")")

    def forecasts(self, history: History, *, autocorr_power: float | None = None
                  ) -> BestForecast | None:
        """The forecast ``decide`` reads on ``history``, when it reads one (after
        ``min_epochs``, before the cap, meaningful); else None. For
        ``greensed replay --forecast-csv`` and calibration (which alone sets
        ``autocorr_power``, curve_noise.AUTOCORR_POWER otherwise)."""
        if not history:
            return None
        last = history[-1].epoch
        if last < self.min_epochs or last >= self.max_epochs:
            return None
        if not _curve(history, self.metric, self.max_epochs, self.warmup_epochs).meaningful:
            return None
        best = _best(history, self.metric, self.max_epochs, self.warmup_epochs,
                     autocorr_power)
        return best if best.meaningful else None


@dataclass(frozen=True)
class RunPrediction:
    """What the rest of a run to its cap should cost and give (``predict_run``).

    Energy and time are None when no recent epoch has a reading; the metric's
    numbers are None until the forecast is meaningful (``why`` says why not).
    ``metric_at_cap`` and ``metric_std`` are the fitted curve's value at the cap
    and its uncertainty; one epoch's value scatters around it by ``noise_std``.
    """

    epoch: int
    max_epochs: int
    epochs_left: int
    metric: str
    energy_per_epoch_kwh: float | None = None
    remaining_kwh: float | None = None
    duration_per_epoch_s: float | None = None
    remaining_s: float | None = None
    metric_now: float | None = None
    metric_at_cap: float | None = None
    metric_std: float | None = None
    noise_std: float | None = None
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (floats or None), for the epoch record."""
        return asdict(self)

    def summary(self) -> str:
        """One line for people, e.g. ``to epoch 200 (140 left): 0.41 kWh, 70 min;
        student_f1 at the cap 0.612 ± 0.008 (fitted now 0.608)``."""
        cost = [f"{fmt(self.remaining_kwh, 2)} kWh" if self.remaining_kwh is not None
                else "energy unknown"]
        if self.remaining_s is not None:
            cost.append(fmt_duration(self.remaining_s))
        head = f"to epoch {self.max_epochs} ({self.epochs_left} left): {', '.join(cost)}"
        if self.metric_at_cap is None or self.metric_std is None or self.metric_now is None:
            return f"{head}; {self.metric}: no forecast ({self.why})"
        return (f"{head}; {self.metric} at the cap {self.metric_at_cap:.3f} ± "
                f"{self.metric_std:.3f} (fitted now {self.metric_now:.3f})")


def predict_run(
    history: History, *, metric: str, max_epochs: int, energy_window: int = 5
) -> RunPrediction:
    """Predicted energy, time and metric from the last record to epoch ``max_epochs``.

    Energy and time per epoch: medians of ``energy_kwh`` and ``duration_s`` of
    the last ``energy_window`` epochs (as the policy). Cheap (the curve fit is
    memoized, shared with the policy's on the same epochs) and never raises on
    odd histories: empty, nulls, NaN, missing keys.
    """
    window = max(int(energy_window), 1)
    last = history[-1].epoch if history else 0
    left = max(int(max_epochs) - last, 0)
    per_kwh = _recent_median(history, "energy_kwh", window) if history else None
    per_s = _recent_median(history, "duration_s", window) if history else None
    out = RunPrediction(
        epoch=last,
        max_epochs=int(max_epochs),
        epochs_left=left,
        metric=metric,
        energy_per_epoch_kwh=per_kwh,
        remaining_kwh=None if per_kwh is None else left * per_kwh,
        duration_per_epoch_s=per_s,
        remaining_s=None if per_s is None else left * per_s,
    )
    fc = _curve(history, metric, int(max_epochs))
    if not fc.meaningful:
        return replace(out, why=fc.why)
    return replace(
        out,
        metric_now=fc.now_mean,
        metric_at_cap=fc.value_mean,
        metric_std=fc.value_std,
        noise_std=fc.noise_std,
    )
