"""GPU energy from NVML, host (CPU + RAM) energy from CodeCarbon."""

from __future__ import annotations

import math

from greensed.energy.base import Meter, Reading, merge_status


class CompositeMeter:
    """``gpu`` meter for component "gpu", ``host`` meter for everything else.

    The host's own GPU figure, if any, is dropped: the GPU meter's counter is
    read after a device sync, at the exact window edges.
    """

    def __init__(self, gpu: Meter, host: Meter) -> None:
        self.gpu = gpu
        self.host = host
        self.name = f"{gpu.name}+{host.name}"

    def start(self) -> None:
        self.gpu.start()
        try:
            self.host.start()
        except Exception:
            self.gpu.close()
            raise

    def begin_window(self) -> None:
        self.gpu.begin_window()  # syncs the device
        self.host.begin_window()

    def end_window(self) -> Reading:
        g = self.gpu.end_window()  # syncs first: queued kernels belong to this window
        h = self.host.end_window()
        comps = {c: v for c, v in h.components_kwh.items() if c != "gpu"}
        methods = {c: m for c, m in h.methods.items() if c != "gpu"}
        comps.update({c: v for c, v in g.components_kwh.items()})
        methods.update({c: m for c, m in g.methods.items()})
        if g.energy_kwh is None or h.energy_kwh is None:
            # A partial total would pass for a small measurement: report none.
            total = None
        else:
            host_kwh = h.energy_kwh - h.components_kwh.get("gpu", 0.0)
            total = math.fsum([g.energy_kwh, max(host_kwh, 0.0)])
        status = merge_status([(self.gpu.name, g.status), (self.host.name, h.status)])
        return Reading(total, max(g.duration_s, h.duration_s), comps, methods, self.name, status)

    def for_rank(self, measures_node: bool) -> Meter:
        """Ranks other than a node's local rank 0 keep their own GPU counter only."""
        return self if measures_node else self.gpu

    def close(self) -> None:
        try:
            self.gpu.close()
        finally:
            self.host.close()

    def describe(self) -> dict[str, str]:
        out = {c: m for c, m in self.host.describe().items() if c != "gpu"}
        out.update(self.gpu.describe())
        return out
