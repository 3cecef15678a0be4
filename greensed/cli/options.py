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

# (parameter, type, flag, help): the stopping flags, in --help order.
_STOP: list[tuple[str, Any, str, str]] = [
    ("stop", list[str] | None, "--stop", "Stopping policy: plateau, budget, target, marginal, "
     "forecast, max-epochs (repeatable or comma-separated)"),
    ("patience", int | None, "--patience", "plateau: epochs without improvement"),
    ("min_delta", float | None, "--min-delta", "plateau: minimum improvement"),
    ("warmup", int | None, "--warmup",
     "plateau/marginal/forecast: epochs the policies ignore (not the lr ramp-up)"),
    ("budget_kwh", float | None, "--budget-kwh", "budget: kWh ceiling"),
    ("target_f1", float | None, "--target-f1",
     "target: stop when the metric reaches this (a fraction)"),
    ("min_f1_per_kwh", float | None, "--min-f1-per-kwh", "marginal: minimum F1 gain per kWh"),
    ("window", int | None, "--window", "marginal: epochs of the gain window"),
    ("combine", str | None, "--combine", "any | all"),
    ("mode", str | None, "--mode", "max | min (min for a loss metric)"),
]


def stop_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the stopping flags to ``command``, which takes them as ``stop_flags``: a dict
    of the flags' values (None: not given), keyed as stopping.stop_flags wants them."""
    sig = inspect.signature(command)
    own = [p for name, p in sig.parameters.items() if name != "stop_flags"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                               annotation=Annotated[typ, typer.Option(flag, help=text)])
             for name, typ, flag, text in _STOP]

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
