"""greensed: energy-aware early stopping for sound event detection.

As a library (docs/library.md), for any PyTorch training loop::

    import greensed

    policy = greensed.make_policy(["plateau:patience=3", "budget:kwh=0.5"],
                                  metric="val_f1", max_epochs=50)
    with greensed.EnergyMonitor("auto") as monitor, greensed.RunRecorder(
            "runs/mine", metric="val_f1", policy=policy, max_epochs=50,
            monitor=monitor) as run:
        for epoch in range(1, 51):
            with monitor.window() as w:
                loss = train_one_epoch()
                f1 = validate()
            run.add(epoch, {"val_f1": f1}, w.reading, loss=loss)
            if run.decide().stop:
                break

and for Lightning, ``from greensed.lightning import EnergyEarlyStopping``.
The names below are loaded when first used: ``import greensed`` itself imports
neither torch nor codecarbon.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    # energy
    "measure": "greensed.library",
    "EnergyMonitor": "greensed.library",
    "EnergyWindow": "greensed.library",
    "Reading": "greensed.energy",
    "Meter": "greensed.energy",
    "make_meter": "greensed.energy",
    # run log
    "epoch_record": "greensed.library",
    "RunRecorder": "greensed.library",
    "run_summary": "greensed.library",
    "EpochRecord": "greensed.runlog",
    "Summary": "greensed.runlog",
    "RunStatus": "greensed.runlog",
    "RunDir": "greensed.runlog",
    "load_run": "greensed.runlog",
    # stopping
    "make_policy": "greensed.stopping",
    "parse_spec": "greensed.stopping",
    "Decision": "greensed.stopping",
    "Policy": "greensed.stopping",
    "Plateau": "greensed.stopping",
    "Budget": "greensed.stopping",
    "Target": "greensed.stopping",
    "Marginal": "greensed.stopping",
    "Forecast": "greensed.stopping",
    "MaxEpochs": "greensed.stopping",
    "AnyOf": "greensed.stopping",
    "AllOf": "greensed.stopping",
    # errors
    "GreensedError": "greensed.errors",
    "ConfigError": "greensed.errors",
}

# Literal, for the tools that read it (a test checks it lists _EXPORTS).
__all__ = [
    "__version__",
    "measure",
    "EnergyMonitor",
    "EnergyWindow",
    "Reading",
    "Meter",
    "make_meter",
    "epoch_record",
    "RunRecorder",
    "run_summary",
    "EpochRecord",
    "Summary",
    "RunStatus",
    "RunDir",
    "load_run",
    "make_policy",
    "parse_spec",
    "Decision",
    "Policy",
    "Plateau",
    "Budget",
    "Target",
    "Marginal",
    "Forecast",
    "MaxEpochs",
    "AnyOf",
    "AllOf",
    "GreensedError",
    "ConfigError",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'greensed' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:
    from greensed.energy import Meter, Reading, make_meter
    from greensed.errors import ConfigError, GreensedError
    from greensed.library import (
        EnergyMonitor,
        EnergyWindow,
        RunRecorder,
        epoch_record,
        measure,
        run_summary,
    )
    from greensed.runlog import EpochRecord, RunDir, RunStatus, Summary, load_run
    from greensed.stopping import (
        AllOf,
        AnyOf,
        Budget,
        Decision,
        Forecast,
        Marginal,
        MaxEpochs,
        Plateau,
        Policy,
        Target,
        make_policy,
        parse_spec,
    )
