"""Meters that measure nothing: a declared constant power, or no energy at all."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from greensed.energy.base import (
    CONSTANT_POWER,
    J_PER_KWH,
    UNAVAILABLE,
    Meter,
    Reading,
    WindowOnlyMeter,
)
from greensed.energy.ranks import PartMeter
from greensed.errors import ConfigError


class ConstantPowerMeter(WindowOnlyMeter):
    """energy = declared power x window duration; a model, labelled as such.

    ``node_w`` is reported as component "cpu" (the host: CPU, RAM, board),
    ``device_w`` per accelerator, times ``n_devices``, as "gpu".
    """

    def __init__(
        self,
        node_w: float,
        device_w: float = 0.0,
        n_devices: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        for label, value in (("node power", node_w), ("device power", device_w)):
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"constant meter: {label} {value!r} W must be >= 0")
        if n_devices < 1:
            raise ConfigError(f"constant meter: n_devices = {n_devices!r} must be >= 1")
        if node_w + device_w <= 0:
            raise ConfigError("constant meter: total power must be > 0 W")
        self.node_w = float(node_w)
        self.device_w = float(device_w)
        self.n_devices = n_devices
        super().__init__(clock)
        name = f"constant:{self.node_w:g}"
        if self.device_w > 0:
            name += f"+{self.device_w:g}" + (f"x{n_devices}" if n_devices > 1 else "")
        self.name = name

    def end_window(self) -> Reading:
        duration_s = self._window_s()
        if duration_s is None:
            return Reading(None, 0.0, {}, {}, self.name, "error: end_window without begin_window")
        comps = {"cpu": self.node_w * duration_s / J_PER_KWH}
        if self.device_w > 0:
            comps["gpu"] = self.device_w * self.n_devices * duration_s / J_PER_KWH
        return Reading(
            energy_kwh=math.fsum(comps.values()),
            duration_s=duration_s,
            components_kwh=comps,
            methods={c: CONSTANT_POWER for c in comps},
            meter=self.name,
        )

    def for_rank(self, measures_node: bool) -> Meter:
        if self.n_devices > 1:
            raise ConfigError(
                f"meter {self.name!r}: in a multi-process run each rank declares its own "
                "device; use constant:NODE_W+DEVICE_W without xN")
        return self if measures_node else PartMeter(self, "device")

    def describe(self) -> dict[str, str]:
        out = {"cpu": CONSTANT_POWER}
        if self.device_w > 0:
            out["gpu"] = CONSTANT_POWER
        return out


class UnavailableMeter(WindowOnlyMeter):
    """No energy can be obtained: every reading says so (energy_kwh None)."""

    def __init__(self, why: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.why = why
        self.name = "unavailable"

    def end_window(self) -> Reading:
        duration_s = self._window_s() or 0.0
        return Reading(
            energy_kwh=None,
            duration_s=duration_s,
            methods={"all": UNAVAILABLE},
            meter=self.name,
            status=f"unavailable: {self.why}",
        )

    def for_rank(self, measures_node: bool) -> Meter:
        return self  # nothing to split: every rank says the same

    def describe(self) -> dict[str, str]:
        return {"all": UNAVAILABLE}
