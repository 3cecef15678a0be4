"""GPU energy from the NVML total-energy counter (Volta and newer).

``nvmlDeviceGetTotalEnergyConsumption`` is a hardware counter in millijoules
since the driver was loaded: reading it at both window edges gives the energy
of the window, with no sampling gap (power sampling misses short peaks). The
device is synchronised first so queued kernels land inside their window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from greensed.energy.base import (
    J_PER_KWH,
    NVML,
    MeterError,
    Reading,
    estimated_reading,
)

_U64 = 2**64
# A GPU board drawing more than this is a counter glitch, not physics.
MAX_PLAUSIBLE_W = 2000.0
# The counter ticks in steps; allow this much extra time when checking a jump.
_SLACK_S = 0.1


def load_nvml() -> Any:
    try:
        import pynvml
    except ImportError as exc:  # pragma: no cover - nvidia-ml-py is a dependency
        raise MeterError(f"nvml meter: cannot import pynvml (nvidia-ml-py): {exc}") from None
    return pynvml


def counter_delta_mj(before: int, after: int, max_mj: float) -> tuple[int, str]:
    """Energy between two counter reads, and what happened to the counter.

    A decrease is a 64-bit wrap when wrapping explains it with a plausible
    amount, otherwise a reset (driver reload): then only the energy counted
    since the reset, ``after``, is known, and that is what is returned. Never
    negative.
    """
    if after >= before:
        return after - before, "ok"
    wrapped = after + _U64 - before
    if wrapped <= max_mj:
        return wrapped, "wrap"
    return after, "reset"


def _cuda_sync() -> None:
    import torch  # at call time: greensed.energy must not import torch at import time

    torch.cuda.synchronize()


class NvmlMeter:
    """GPU ``device_index``'s energy from its NVML counter, synced at window edges."""

    def __init__(
        self,
        device_index: int = 0,
        *,
        sync: Callable[[], None] | None = _cuda_sync,
        nvml: Any = None,
        clock: Callable[[], float] = time.monotonic,
        max_power_w: float = MAX_PLAUSIBLE_W,
    ) -> None:
        self.device_index = device_index
        self.name = "nvml"
        self.gpu_name = ""
        self._sync = sync
        self._nvml = nvml
        self._clock = clock
        self._max_power_w = max_power_w
        self._handle: Any = None
        self._t0: float | None = None
        self._e0: int | None = None
        self._begin_error: str | None = None
        self._last_good: Reading | None = None

    def start(self) -> None:
        nvml = self._nvml if self._nvml is not None else load_nvml()
        self._nvml = nvml
        try:
            nvml.nvmlInit()
            self._handle = nvml.nvmlDeviceGetHandleByIndex(self.device_index)
            name = nvml.nvmlDeviceGetName(self._handle)
            self.gpu_name = name.decode() if isinstance(name, bytes) else str(name)
            nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except Exception as exc:  # NVMLError_NotSupported on pre-Volta GPUs, no driver, ...
            raise MeterError(
                f"nvml meter: GPU {self.device_index} energy counter not readable ({exc})"
            ) from None

    def _read_mj(self) -> int:
        if self._sync is not None:
            self._sync()
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def begin_window(self) -> None:
        self._begin_error = None
        try:
            self._e0 = self._read_mj()
        except Exception as exc:
            self._e0 = None
            self._begin_error = f"nvml read failed at window start ({exc})"
        self._t0 = self._clock()

    def end_window(self) -> Reading:
        if self._t0 is None:
            return Reading(None, 0.0, {}, {"gpu": NVML}, self.name,
                           "error: end_window without begin_window")
        try:
            e1: int | None = self._read_mj()
            read_error = None
        except Exception as exc:
            e1, read_error = None, f"nvml read failed at window end ({exc})"
        duration_s = max(self._clock() - self._t0, 0.0)
        e0, self._t0, self._e0 = self._e0, None, None
        why = self._begin_error or read_error
        if why is not None or e0 is None or e1 is None:
            return estimated_reading(self.name, duration_s, self._last_good,
                                     why or "nvml read failed", ["gpu"])
        max_mj = self._max_power_w * (duration_s + _SLACK_S) * 1000.0
        delta_mj, event = counter_delta_mj(e0, e1, max_mj)
        if delta_mj > max_mj:
            return estimated_reading(
                self.name,
                duration_s,
                self._last_good,
                f"implausible counter jump ({delta_mj / 1000:.3g} J in {duration_s:.3g} s, "
                f"over {self._max_power_w:g} W; counter {event})",
                ["gpu"],
            )
        kwh = delta_mj / 1000.0 / J_PER_KWH
        reading = Reading(
            energy_kwh=kwh,
            duration_s=duration_s,
            components_kwh={"gpu": kwh},
            methods={"gpu": NVML},
            meter=self.name,
        )
        if event == "reset":
            # Energy before the reset inside this window is lost: say so.
            return Reading(kwh, duration_s, {"gpu": kwh}, {"gpu": NVML}, self.name,
                           "error: nvml counter reset during window; counted only "
                           "the energy since the reset")
        self._last_good = reading
        return reading

    def close(self) -> None:
        if self._handle is not None and self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except Exception:
                pass  # shutting down: nothing left to record
            self._handle = None

    def describe(self) -> dict[str, str]:
        return {"gpu": NVML}


def nvml_devices(nvml: Any = None) -> list[dict[str, Any]]:
    """GPUs NVML sees: index, name, whether the energy counter is readable."""
    try:
        nvml = nvml if nvml is not None else load_nvml()
        nvml.nvmlInit()
    except Exception as exc:
        return [{"index": None, "name": "", "counter": False, "why": f"NVML not available ({exc})"}]
    out: list[dict[str, Any]] = []
    try:
        for i in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(i)
            name = nvml.nvmlDeviceGetName(handle)
            name = name.decode() if isinstance(name, bytes) else str(name)
            try:
                nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                out.append({"index": i, "name": name, "counter": True, "why": ""})
            except Exception as exc:
                out.append({"index": i, "name": name, "counter": False,
                            "why": f"energy counter not supported ({exc})"})
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:
            pass
    return out
