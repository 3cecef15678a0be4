"""greensed in a training loop it does not run: energy windows, epoch records,
policies and a run writer whose directories ``greensed report``, ``replay`` and
``status`` read like greensed's own (docs/library.md).

Importing this package imports neither torch nor codecarbon: a meter loads what
it needs when it starts, and :class:`RunRecorder` reads the hardware when a run
starts.
"""

from greensed.library.energy import EnergyMonitor, EnergyWindow, default_device, measure
from greensed.library.recorder import RunRecorder
from greensed.library.records import budget_of, epoch_record, run_summary

__all__ = [
    "EnergyMonitor",
    "EnergyWindow",
    "RunRecorder",
    "budget_of",
    "default_device",
    "epoch_record",
    "measure",
    "run_summary",
]
