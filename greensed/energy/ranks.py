"""Energy of one run on several processes, counted once (docs/multigpu.md).

Node part vs device part of a Reading: component "gpu" is the device part
(one accelerator, read by its own rank); every other component ("cpu",
"ram") is the node part, measured once per node by local rank 0. Each rank
measures what :func:`rank_meter` leaves it, and :class:`ReducedMeter` sums the
ranks' readings into one Reading per window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from greensed.energy.base import (
    MEASURED,
    UNAVAILABLE,
    Meter,
    Reading,
    WindowOnlyMeter,
    merge_status,
)

# Components a rank measures for its own accelerator; all others are the node's.
DEVICE_COMPONENTS = frozenset({"gpu"})

Gather = Callable[[Reading], list[Reading]]


def split_reading(reading: Reading, keep: str) -> Reading:
    """The device part ("gpu") or the node part (the other components) of a reading."""
    want = (lambda c: c in DEVICE_COMPONENTS) if keep == "device" else (
        lambda c: c not in DEVICE_COMPONENTS)
    comps = {c: v for c, v in reading.components_kwh.items() if want(c)}
    methods = {c: m for c, m in reading.methods.items() if want(c)}
    if reading.energy_kwh is None:
        total = None
    elif reading.components_kwh:
        total = math.fsum(comps.values())
    else:  # no split known: a whole-machine figure, so all of it is the node's
        total = reading.energy_kwh if keep == "node" else 0.0
    return Reading(total, reading.duration_s, comps, methods, reading.meter, reading.status)


class PartMeter:
    """A meter reduced to its device part (or its node part), by component."""

    def __init__(self, inner: Meter, keep: str = "device") -> None:
        if keep not in ("device", "node"):
            raise ValueError(f"keep = {keep!r}: 'device' or 'node'")
        self.inner, self.keep, self.name = inner, keep, inner.name

    def start(self) -> None:
        self.inner.start()

    def begin_window(self) -> None:
        self.inner.begin_window()

    def end_window(self) -> Reading:
        return split_reading(self.inner.end_window(), self.keep)

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> dict[str, str]:
        inside = self.keep == "device"
        return {c: m for c, m in self.inner.describe().items()
                if (c in DEVICE_COMPONENTS) == inside}


class NoPartMeter(WindowOnlyMeter):
    """A rank with nothing of its own to measure (its node part is local rank 0's)."""

    def __init__(self, name: str, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(clock)
        self.name = name

    def end_window(self) -> Reading:
        return Reading(0.0, self._window_s() or 0.0, {}, {}, self.name)

    def describe(self) -> dict[str, str]:
        return {}


def rank_meter(meter: Meter, *, measures_node: bool) -> Meter:
    """What this rank measures of ``meter``: everything on a node's local rank 0,
    only its own device elsewhere.

    A meter may say itself (``for_rank(measures_node)``): CodeCarbon in machine
    mode reports the whole node, so only local rank 0 runs it; a composite NVML +
    CodeCarbon meter leaves the other ranks their own NVML counter. Any other
    meter is reduced to its device part by component.
    """
    for_rank = getattr(meter, "for_rank", None)
    if for_rank is not None:
        return for_rank(measures_node)
    return meter if measures_node else PartMeter(meter, "device")


def _combined_method(methods: list[str]) -> str:
    """A measured label only if every rank measured; else the first modelled one."""
    for m in methods:
        if m not in MEASURED:
            return m
    return methods[0]


def reduce_readings(readings: list[Reading], name: str) -> Reading:
    """One reading for the whole group: energy and components summed over ranks.

    The window is as long as the longest rank's; a rank without a number makes
    the total None (a partial sum would pass for a small measurement).
    """
    comps: dict[str, list[float]] = {}
    methods: dict[str, list[str]] = {}
    for r in readings:
        for c, v in r.components_kwh.items():
            comps.setdefault(c, []).append(v)
        for c, m in r.methods.items():
            methods.setdefault(c, []).append(m)
    energies = [r.energy_kwh for r in readings]
    total = None if any(e is None for e in energies) else math.fsum(energies)  # type: ignore[arg-type]
    status = merge_status([(f"rank {i}", r.status) for i, r in enumerate(readings)])
    merged = {c: _combined_method(ms) for c, ms in methods.items()}
    if total is None:
        merged = {c: (m if c in comps else UNAVAILABLE) for c, m in merged.items()}
    return Reading(total, max((r.duration_s for r in readings), default=0.0),
                   {c: math.fsum(v) for c, v in comps.items()}, merged, name, status)


class ReducedMeter:
    """This rank's part meter; every window ends with the group's summed reading.

    ``end_window`` is a collective (``gather``): every rank calls it at the same point.
    """

    def __init__(self, inner: Meter, gather: Gather, name: str) -> None:
        self.inner, self.gather, self.name = inner, gather, name

    def start(self) -> None:
        self.inner.start()

    def begin_window(self) -> None:
        self.inner.begin_window()

    def end_window(self) -> Reading:
        return reduce_readings(self.gather(self.inner.end_window()), self.name)

    def end_window_alone(self) -> Reading:
        """This rank's own part, without the collective (after an error on some rank)."""
        return self.inner.end_window()

    def close(self) -> None:
        self.inner.close()

    def describe(self) -> dict[str, str]:
        return self.inner.describe()
