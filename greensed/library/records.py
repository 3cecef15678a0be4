"""The one builder of each run-log record, for every loop: an epoch record from
(epoch, metrics, reading), and a run's summary from its records (docs/library.md).
CO2 comes from the run's carbon intensity, resolved once per run
(greensed.energy.carbon). greensed's trainer adds its protocol's fields (forecast,
clips, model of record) through the same two functions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from greensed.energy import Reading
from greensed.energy.carbon import CarbonIntensity
from greensed.errors import ConfigError
from greensed.runlog import EpochRecord, Losses, LostEntry, RunStatus, Summary, ledger
from greensed.stopping import Budget, Policy, best_record
from greensed.stopping.params import DEFAULT_METRIC


def _number(value: Any, where: str) -> Any:
    """A metric value as the run log holds it: a float (tensors and numpy scalars
    too), a list of them, or a string."""
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_number(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if hasattr(value, "tolist") and getattr(value, "ndim", 0) > 0:  # an array or tensor
        return _number(value.tolist(), where)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} = {value!r}: not a number, a list of numbers or a "
                          "string") from None


def _losses(loss: float | Mapping[str, Any] | None) -> Losses:
    if loss is None:
        return Losses()
    if not isinstance(loss, Mapping):
        return Losses(total=_number(loss, "loss"))
    known = {f for f in Losses.__dataclass_fields__}
    unknown = sorted(set(loss) - known)
    if unknown:
        raise ConfigError(f"loss: unknown term(s) {unknown}; the run log's are "
                          f"{sorted(known)} (put others in metrics)")
    return Losses(**{k: _number(v, f"loss.{k}") for k, v in loss.items()})


def epoch_record(epoch: int, metrics: Mapping[str, Any], reading: Reading, *,
                 previous: EpochRecord | None = None, lost_kwh: float = 0.0,
                 loss: float | Mapping[str, Any] | None = None, steps: int = 0,
                 lr: float | None = None, train_s: float | None = None,
                 val_s: float | None = None, time_utc: str | None = None,
                 carbon: CarbonIntensity | None = None, **extra: Any) -> EpochRecord:
    """One run-log record from an epoch's metrics and its energy reading.

    ``metrics``: name -> number (``{"val_f1": 0.41}``; tensors and numpy scalars are
    read as floats) or list of numbers; the policies and ``greensed report --metric``
    name them. ``previous``: the record before this one, whose ``cumulative_kwh``
    this one continues (None: the first epoch); ``lost_kwh``: energy of earlier,
    cut attempts at this epoch. ``loss``: the mean training loss (a number: ``total``)
    or terms of ``greensed.runlog.LOSS_KEYS``. ``steps``: optimizer steps since the
    start of the run (cumulative). ``duration_s`` is the reading's window.
    ``carbon``: the run's intensity, for ``co2_kg`` and ``cumulative_co2_kg``.
    ``extra``: other fields of :class:`EpochRecord` as they are (a protocol's own).
    """
    if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 1:
        raise ConfigError(f"epoch = {epoch!r}: a 1-based epoch number")
    if previous is not None and epoch != previous.epoch + 1:
        raise ConfigError(f"epoch {epoch} after epoch {previous.epoch}: epochs are contiguous "
                          "(the policies count them)")
    e = reading.to_record()
    cumulative_kwh = ledger.cumulative_kwh(previous, lost_kwh, e["energy_kwh"])
    if carbon is not None:
        extra = {"co2_kg": carbon.kg(e["energy_kwh"]),
                 "cumulative_co2_kg": carbon.kg(cumulative_kwh), **extra}
    return EpochRecord(
        epoch=epoch, steps=int(steps), lr=None if lr is None else float(lr), loss=_losses(loss),
        metrics={str(k): _number(v, f"metrics[{k!r}]") for k, v in metrics.items()},
        train_s=train_s, val_s=val_s, duration_s=reading.duration_s,
        energy_kwh=e["energy_kwh"],
        cumulative_kwh=cumulative_kwh,
        energy_components_kwh=e["energy_components_kwh"], energy_methods=e["energy_methods"],
        avg_power_w=e["avg_power_w"], meter=e["meter"], energy_status=e["energy_status"],
        time_utc=time_utc or now_utc(), **extra)


def now_utc() -> str:
    """A record's time stamp: UTC, to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def budget_of(policy: Policy | None) -> float | None:
    """The kWh budget a policy (or one it combines) holds, if any."""
    if isinstance(policy, Budget):
        return policy.kwh
    for child in policy.children if policy is not None else ():
        found = budget_of(child)
        if found is not None:
            return found
    return None


def run_summary(history: Sequence[EpochRecord], lost: Sequence[LostEntry], *,
                status: RunStatus, stop_policy: str, stop_reason: str,
                metric: str = DEFAULT_METRIC, mode: str = "max",
                budget_kwh: float | None = None, meter: str = "",
                batch_size: int | None = None, seed: int | None = None, recipe: str = "",
                classes: Sequence[str] = (), error: str | None = None,
                carbon: CarbonIntensity | None = None, **extra: Any) -> Summary:
    """A run's summary from its records and lost entries: best epoch by ``metric``,
    totals (every epoch and lost part once), the budget's overrun, and with
    ``carbon`` the total CO2, the intensity and its source. ``extra``: other
    fields of :class:`Summary`, or a loop's own ``steps``/``steps_per_epoch``."""
    best = best_record(history, metric, mode)
    t = ledger.totals(history, lost)
    methods: dict[str, str] = {}
    for r in history:
        methods.update(r.energy_methods)
    steps = history[-1].steps if history else None
    fields: dict[str, Any] = dict(
        status=status, stop_reason=stop_reason, stop_policy=stop_policy,
        epochs=len(history), stop_epoch=history[-1].epoch if history else 0,
        best_epoch=best.epoch if best else None, best_metric=metric,
        best_value=best.metric(metric) if best else None,
        best_cumulative_kwh=best.cumulative_kwh if best else None,
        total_kwh=t.total_kwh, total_s=t.total_s, lost_kwh=t.lost_kwh, budget_kwh=budget_kwh,
        budget_overrun_kwh=max(0.0, t.total_kwh - budget_kwh)
        if (budget_kwh and t.total_kwh) else 0.0,
        energy_methods=methods, meter=meter, classes=tuple(classes), batch_size=batch_size,
        seed=seed, recipe=recipe, steps=steps or None,
        steps_per_epoch=(steps // len(history)) if steps and history else None, error=error)
    if carbon is not None:
        fields.update(total_co2_kg=carbon.kg(t.total_kwh),
                      carbon_intensity_g_per_kwh=carbon.g_per_kwh, carbon_source=carbon.source)
    return Summary(**{**fields, **extra})


def rank_summary(history: Sequence[EpochRecord], *, status: RunStatus, stop_policy: str,
                 stop_reason: str, steps: int, error: str | None = None) -> Summary:
    """What a rank that writes nothing knows of its run's end (not its energy: rank 0
    holds the ledger)."""
    return Summary(status=status, stop_reason=stop_reason, stop_policy=stop_policy,
                   epochs=len(history), stop_epoch=len(history), steps=steps, error=error)
