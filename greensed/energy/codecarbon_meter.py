"""Host (and GPU) energy from CodeCarbon's offline tracker, one task per window.

Facts about codecarbon 3.x that shape this adapter (read from its source):
- ``OfflineEmissionsTracker.__init__``, ``start``, ``stop`` and ``flush`` are
  wrapped in ``@suppress(Exception)``: an exception is logged and the call
  returns None, leaving a half-built tracker. ``start_task`` returns None even
  when it gave up (logged), and ``stop_task`` then returns None.
- ``stop_task`` returns an ``EmissionsData`` with ``energy_consumed``,
  ``cpu_energy``, ``gpu_energy``, ``ram_energy`` (kWh) and ``duration`` (s).
- Without RAPL it models the CPU from system load and a TDP, and the RAM from
  the installed memory; which method it picked is not public (see
  :func:`codecarbon_methods`).
So every call is checked here, and a missing number becomes status "error".
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Callable
from typing import Any

from greensed.energy.base import (
    CPU_LOAD,
    NVML,
    RAM_CONSTANT,
    RAM_USAGE,
    RAPL,
    TDP,
    UNKNOWN,
    Meter,
    MeterError,
    Reading,
    estimated_reading,
    usable_kwh,
)
from greensed.energy.ranks import NoPartMeter

TRACKING_MODES = ("machine", "process")
_CC_COMPONENTS = (("cpu", "cpu_energy"), ("gpu", "gpu_energy"), ("ram", "ram_energy"))


def codecarbon_methods(tracker: Any) -> dict[str, str]:
    """Component -> method label for what CodeCarbon set up on this machine.

    The only adapter that touches CodeCarbon internals: the tracker keeps its
    hardware list in the private ``_hardware`` (CPU ``_mode``, RAM
    ``_force_ram_power``/``_tracking_mode``), the same fields CodeCarbon's own
    hardware cache reads. If that layout changes, components come back as
    "codecarbon (method unknown)" instead of failing.
    """
    hardware = getattr(tracker, "_hardware", None)
    if not isinstance(hardware, list) or not hardware:
        return {"cpu": UNKNOWN, "ram": UNKNOWN}
    out: dict[str, str] = {}
    for hw in hardware:
        kind = type(hw).__name__
        if kind == "CPU":
            mode = getattr(hw, "_mode", None)
            out["cpu"] = {
                "intel_rapl": RAPL,
                "windows_emi": RAPL,  # Windows' Energy Meter Interface exposes RAPL
                "intel_power_gadget": RAPL,  # Power Gadget reads the RAPL MSRs
                "cpu_load": CPU_LOAD,
                "constant": TDP,
            }.get(mode, UNKNOWN)
        elif kind == "RAM":
            if getattr(hw, "_force_ram_power", None) is not None:
                out["ram"] = RAM_CONSTANT
            elif getattr(hw, "_tracking_mode", None) == "machine":
                out["ram"] = RAM_CONSTANT  # a function of installed memory only
            elif getattr(hw, "_tracking_mode", None) == "process":
                out["ram"] = RAM_USAGE
            else:
                out["ram"] = UNKNOWN
        elif kind == "GPU":
            # CodeCarbon reads nvmlDeviceGetTotalEnergyConsumption (falls back to power).
            out["gpu"] = NVML
        else:  # Apple powermetrics, Raspberry Pi PMIC: sampled power
            part = str(getattr(hw, "chip_part", "cpu")).lower()
            out[part] = f"codecarbon {kind} sampling"
    return out


class CodeCarbonMeter:
    """CodeCarbon's OfflineEmissionsTracker, one ``start_task``/``stop_task`` per window.

    No network, no files: outputs are off and its output dir is a temp dir.
    A window whose numbers are missing is status "error" and, when an earlier
    window was good, estimated from that window's power (labelled a
    constant-power model).
    """

    def __init__(
        self,
        tracking_mode: str = "machine",
        output_dir: str | None = None,
        *,
        country_iso_code: str = "FRA",
        clock: Callable[[], float] = time.monotonic,
        tracker_factory: Callable[..., Any] | None = None,
    ) -> None:
        if tracking_mode not in TRACKING_MODES:
            raise MeterError(
                f"codecarbon meter: tracking_mode {tracking_mode!r} must be 'machine' or 'process'"
            )
        self.tracking_mode = tracking_mode
        self.output_dir = output_dir
        self.country_iso_code = country_iso_code
        self.name = "codecarbon"
        self.tracker: Any = None
        # For tests: builds the tracker instead of OfflineEmissionsTracker.
        self._tracker_factory = tracker_factory
        self._methods: dict[str, str] = {}
        self._clock = clock
        self._t0: float | None = None
        self._task: str | None = None
        self._begin_error: str | None = None
        self._count = 0
        self._last_good: Reading | None = None

    def start(self) -> None:
        factory = self._tracker_factory
        if factory is None:
            try:
                from codecarbon import OfflineEmissionsTracker as factory
            except ImportError as exc:
                raise MeterError(f"codecarbon meter: cannot import codecarbon ({exc})") from None
            # Quiet before construction (after import, which sets its own level):
            # the constructor logs at INFO/WARNING before it applies log_level.
            logging.getLogger("codecarbon").setLevel(logging.ERROR)
        try:
            tracker = factory(
                country_iso_code=self.country_iso_code,
                output_methods=[],  # nothing written: no emissions.csv, no API
                output_dir=self.output_dir or tempfile.gettempdir(),
                log_level="error",
                tracking_mode=self.tracking_mode,
                allow_multiple_runs=True,  # no lock file; greensed owns one tracker
            )
            # Public call; runs hardware detection (~1-2 s) now, not in epoch 1.
            tracker.get_detected_hardware()
        except Exception as exc:  # a half-built tracker (suppressed __init__) lands here
            raise MeterError(f"codecarbon meter: tracker did not initialise ({exc})") from None
        self.tracker = tracker
        self._methods = codecarbon_methods(tracker)
        # A throw-away task: its first call loads the emissions engine (~0.1 s),
        # and a tracker whose task API yields nothing is caught before epoch 1.
        try:
            tracker.start_task("greensed-warmup")
            data = tracker.stop_task("greensed-warmup")
        except Exception as exc:
            data, why = None, repr(exc)
        else:
            why = "stop_task returned None"
        if data is None:
            self.close()
            raise MeterError(f"codecarbon meter: task API gave no data at start ({why})")

    def begin_window(self) -> None:
        self._begin_error = None
        self._count += 1
        self._task = f"greensed-window-{self._count}"
        if self.tracker is None:
            self._begin_error = "codecarbon meter not started"
        else:
            try:
                self.tracker.start_task(self._task)
            except Exception as exc:
                self._begin_error = f"codecarbon start_task raised {exc!r}"
        self._t0 = self._clock()

    def end_window(self) -> Reading:
        if self._t0 is None:
            return Reading(None, 0.0, {}, dict(self._methods), self.name,
                           "error: end_window without begin_window")
        data: Any = None
        why = self._begin_error
        if why is None:
            try:
                data = self.tracker.stop_task(self._task)
            except Exception as exc:
                why = f"codecarbon stop_task raised {exc!r}"
        duration_s = max(self._clock() - self._t0, 0.0)
        self._t0 = None
        if why is None:
            reading, why = self._reading_from(data, duration_s)
            if reading is not None:
                self._last_good = reading
                return reading
        return estimated_reading(self.name, duration_s, self._last_good, why or "unknown",
                                 list(self._methods) or ["cpu", "ram"])

    def _reading_from(self, data: Any, duration_s: float) -> tuple[Reading | None, str | None]:
        if data is None:
            return None, "codecarbon stop_task returned None (its error was logged and swallowed)"
        total = usable_kwh(getattr(data, "energy_consumed", None))
        if total is None:
            return None, f"codecarbon energy_consumed = {getattr(data, 'energy_consumed', None)!r}"
        comps: dict[str, float] = {}
        for comp, attr in _CC_COMPONENTS:
            value = usable_kwh(getattr(data, attr, None))
            if value is None:
                return None, f"codecarbon {attr} = {getattr(data, attr, None)!r}"
            # Report only what CodeCarbon set up hardware for (no GPU here: no "gpu": 0.0).
            if comp in self._methods:
                comps[comp] = value
        extra = [c for c in self._methods if c not in comps]
        methods = {c: self._methods[c] for c in comps}
        if extra:  # e.g. Apple chip parts: fold into the total as they are
            methods.update({c: self._methods[c] for c in extra})
        if comps and not math.isclose(math.fsum(comps.values()), total, rel_tol=1e-6,
                                      abs_tol=1e-15) and not extra:
            return None, (f"codecarbon components sum to {math.fsum(comps.values()):.6g} kWh "
                          f"but energy_consumed = {total:.6g} kWh")
        return Reading(total, duration_s, comps, methods, self.name), None

    def close(self) -> None:
        tracker, self.tracker = self.tracker, None
        if tracker is not None:
            try:
                if self._t0 is not None and self._task is not None:
                    tracker.stop_task(self._task)
                # Stops the 1 s power-monitor thread; suppressed by codecarbon itself.
                tracker.stop()
            except Exception:
                pass  # closing: there is no window left to record an error in

    def describe(self) -> dict[str, str]:
        return dict(self._methods) if self._methods else {"cpu": "codecarbon", "ram": "codecarbon"}

    def for_rank(self, measures_node: bool) -> Meter:
        """Machine mode reports the whole node (its "gpu" figure covers every GPU it
        sees): only a node's local rank 0 runs it."""
        return self if measures_node else NoPartMeter(self.name)
