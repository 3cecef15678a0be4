"""Options declared once and shared by several commands.

``@stop_options`` gives a command the stopping flags of ``greensed train`` and
``greensed replay`` (one declaration, the same names, types and help on both);
the command receives the given ones as ``stop_flags``, ready for
:func:`greensed.stopping.stop_flags`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any

import typer

# Help texts of the options several commands take: one wording and one metavar each.
DATA_HELP = ("Dataset: a DESED root (DESED_task 2022 layout), a greensed layout or a "
             "dataset TOML (docs/data.md)")
METER_HELP = "Energy meter: auto | codecarbon | nvml | constant:WATTS[+DEVICE_W] | none"
DEVICE_HELP = "Device: auto | cpu | cuda | cuda:N"
FORMAT_HELP = "Output format: table | csv | markdown"
METRIC_HELP = "Epoch metric, e.g. teacher_f1, student_f1, loss.total (docs/runlog.md)"
EPOCHS_HELP = "Epoch cap (the max-epochs policy)"
RUNS_HELP = "Run directories, or folders holding them"

# (parameter, type, flag, metavar, help): the stopping flags, in --help order.
_STOP: list[tuple[str, Any, str, str, str]] = [
    ("stop", list[str] | None, "--stop", "POLICY", "Stopping policy: plateau, budget, "
     "target, marginal, forecast, max-epochs (repeatable or comma-separated)"),
    ("patience", int | None, "--patience", "N", "plateau: epochs without improvement"),
    ("min_delta", float | None, "--min-delta", "X", "plateau: minimum improvement"),
    ("warmup", int | None, "--warmup", "N",
     "plateau/marginal/forecast: epochs the policies ignore (not the lr ramp-up)"),
    ("budget_kwh", float | None, "--budget-kwh", "KWH", "budget: kWh ceiling"),
    ("target_f1", float | None, "--target-f1", "F1",
     "target: stop when the metric reaches this (a fraction)"),
    ("min_f1_per_kwh", float | None, "--min-f1-per-kwh", "RATE",
     "marginal: minimum F1 gain per kWh"),
    ("window", int | None, "--window", "N", "marginal: epochs of the gain window"),
    ("combine", str | None, "--combine", "any|all", "How the policies combine: any | all"),
    ("mode", str | None, "--mode", "max|min", "max | min (min for a loss metric)"),
]


def stop_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the stopping flags to ``command``, which takes them as ``stop_flags``: a dict
    of the flags' values (None: not given), keyed as stopping.stop_flags wants them."""
    sig = inspect.signature(command)
    own = [p for name, p in sig.parameters.items() if name != "stop_flags"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                               annotation=Annotated[typ, typer.Option(flag, help=text,
                                                                      metavar=metavar)])
             for name, typ, flag, metavar, text in _STOP]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        flags = {name: kwargs.pop(name) for name, *_ in _STOP}
        return command(**kwargs, stop_flags=flags)

    hints = {k: v for k, v in typing.get_type_hints(command, include_extras=True).items()
             if k != "stop_flags"}
    wrapper.__signature__ = sig.replace(parameters=[  # type: ignore[attr-defined]
        p.replace(annotation=hints.get(p.name, p.annotation)) for p in own] + added)
    wrapper.__annotations__ = {**hints, **{p.name: p.annotation for p in added}}
    return wrapper
