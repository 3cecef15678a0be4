"""Energy meters: per-epoch windows returning labelled readings (docs/energy.md).

Importing this package imports neither torch nor codecarbon.
"""

from greensed.energy.base import MEASURED, Meter, MeterError, Reading
from greensed.energy.codecarbon_meter import CodeCarbonMeter, codecarbon_methods
from greensed.energy.composite import CompositeMeter
from greensed.energy.constant import ConstantPowerMeter, UnavailableMeter
from greensed.energy.factory import make_meter, probe, window_overhead_ms
from greensed.energy.nvml import NvmlMeter, counter_delta_mj

__all__ = [
    "MEASURED",
    "CodeCarbonMeter",
    "CompositeMeter",
    "ConstantPowerMeter",
    "Meter",
    "MeterError",
    "NvmlMeter",
    "Reading",
    "UnavailableMeter",
    "codecarbon_methods",
    "counter_delta_mj",
    "make_meter",
    "probe",
    "window_overhead_ms",
]
