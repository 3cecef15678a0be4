"""One small meter interface: per-epoch windows that return a labelled Reading.

A meter says for every component how its number was obtained (``methods``), and
a failed measurement is a Reading with ``status = "error: ..."``, never a silent
zero. ``start`` may raise :class:`MeterError`; ``begin_window`` and
``end_window`` never raise. Nothing here imports torch or codecarbon at import
time. See ``docs/energy.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from greensed.errors import GreensedError

J_PER_KWH = 3.6e6

# How a component's energy was obtained (the run log's energy_methods values).
RAPL = "rapl counter"
NVML = "nvml counter"
CPU_LOAD = "cpu-load model"
TDP = "tdp constant"
RAM_CONSTANT = "constant ram model"
RAM_USAGE = "ram-usage model"
CONSTANT_POWER = "constant-power model"
UNAVAILABLE = "unavailable"
UNKNOWN = "codecarbon (method unknown)"
# Hardware counters; every other label is a model or an estimate.
MEASURED = frozenset({RAPL, NVML})


class MeterError(GreensedError):
    """A meter cannot start (missing driver, unsupported counter, broken config)."""


@dataclass(frozen=True)
class Reading:
    """Energy of one window, with how each component was obtained."""

    energy_kwh: float | None  # window total; None only when nothing usable was obtained
    duration_s: float
    components_kwh: dict[str, float] = field(default_factory=dict)  # "cpu", "gpu", "ram"
    methods: dict[str, str] = field(default_factory=dict)  # component -> method label
    meter: str = ""
    status: str = "ok"  # "ok" | "unavailable: <why>" | "error: <why>"

    @property
    def avg_power_w(self) -> float | None:
        if self.energy_kwh is None or self.duration_s <= 0:
            return None
        return self.energy_kwh * J_PER_KWH / self.duration_s

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_record(self) -> dict[str, Any]:
        """The run-log fields of an epoch record (docs/runlog.md)."""
        return {
            "energy_kwh": self.energy_kwh,
            "energy_components_kwh": dict(self.components_kwh),
            "energy_methods": dict(self.methods),
            "avg_power_w": self.avg_power_w,
            "meter": self.meter,
            "energy_status": self.status,
        }


@runtime_checkable
class Meter(Protocol):
    name: str

    def start(self) -> None:
        """One-time setup before the first window; raises MeterError."""
        ...

    def begin_window(self) -> None:
        """Start of an epoch window (GPU meters sync the device first)."""
        ...

    def end_window(self) -> Reading:
        """End of the window: its energy, labelled; never raises."""
        ...

    def close(self) -> None: ...

    def describe(self) -> dict[str, str]:
        """Component -> method: what this meter measures and how."""
        ...


def merge_status(parts: list[tuple[str, str]]) -> str:
    """One status for a reading made of parts ((who, status) pairs): "ok" when every
    part is; else "error: ..." if any part erred, "unavailable: ..." otherwise,
    naming each part that was not ok."""
    problems = [(who, st) for who, st in parts if st != "ok"]
    if not problems:
        return "ok"
    kind = "error" if any(st.startswith("error") for _, st in problems) else "unavailable"
    return f"{kind}: " + "; ".join(f"{who}: {st}" for who, st in problems)


def end_alone(meter: Meter) -> Reading:
    """End the window without waiting for other processes: after an error, when
    they may never reach the same point (a meter that sums ranks says how)."""
    alone = getattr(meter, "end_window_alone", None)
    return alone() if alone is not None else meter.end_window()


class MeterWindow:
    """One measured window as a context manager::

        with MeterWindow(meter) as window:
            ...                      # the measured work
            reading = window.end()   # the window's labelled reading

    Leaving the block without ``end()`` (an exception) still ends the window, on
    this process alone; that reading is kept in ``reading`` for the caller.
    """

    def __init__(self, meter: Meter) -> None:
        self.meter = meter
        self.reading: Reading | None = None
        self.ended = False

    def __enter__(self) -> MeterWindow:
        self.meter.begin_window()
        return self

    def end(self) -> Reading:
        self.reading, self.ended = self.meter.end_window(), True
        return self.reading

    def abandon(self) -> Reading:
        """End the window on this process alone, if ``end()`` did not (an error)."""
        if not self.ended:
            self.reading, self.ended = end_alone(self.meter), True
        assert self.reading is not None
        return self.reading

    def __exit__(self, exc_type: object, *_: object) -> None:
        self.abandon()


class WindowOnlyMeter:
    """Base of the meters that only time their windows: start and close do nothing;
    ``_window_s()`` is the window's length, None when it was never begun."""

    name: str

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._t0: float | None = None

    def start(self) -> None:
        pass

    def begin_window(self) -> None:
        self._t0 = self._clock()

    def _window_s(self) -> float | None:
        duration_s = None if self._t0 is None else max(self._clock() - self._t0, 0.0)
        self._t0 = None
        return duration_s

    def close(self) -> None:
        pass


def usable_kwh(value: Any) -> float | None:
    """A finite, non-negative kWh figure as float, else None."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None


def estimated_reading(
    meter: str, duration_s: float, previous: Reading | None, why: str, components: list[str]
) -> Reading:
    """A window whose measurement failed: status error, never a silent zero.

    When an earlier good window exists, each component is estimated at that
    window's average power times this window's duration, labelled
    "constant-power model"; otherwise energy is None.
    """
    prev_power = previous.avg_power_w if previous is not None else None
    if previous is None or prev_power is None or previous.duration_s <= 0:
        return Reading(
            energy_kwh=None,
            duration_s=duration_s,
            methods={c: UNAVAILABLE for c in components},
            meter=meter,
            status=f"error: {why}",
        )
    scale = duration_s / previous.duration_s
    comps = {c: kwh * scale for c, kwh in previous.components_kwh.items()}
    return Reading(
        energy_kwh=math.fsum(comps.values()) if comps else previous.energy_kwh * scale,
        duration_s=duration_s,
        components_kwh=comps,
        methods={c: CONSTANT_POWER for c in (comps or components)},
        meter=meter,
        status=f"error: {why}; estimated at {prev_power:.3g} W from the previous window "
        "(constant-power model)",
    )
