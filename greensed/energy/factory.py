"""Choosing a meter from its spec string, and probing what this machine can measure."""

from __future__ import annotations

import difflib
import os
import time
from pathlib import Path
from typing import Any

from greensed.energy.base import MEASURED, UNAVAILABLE, Meter, MeterError
from greensed.energy.codecarbon_meter import TRACKING_MODES, CodeCarbonMeter
from greensed.energy.composite import CompositeMeter
from greensed.energy.constant import ConstantPowerMeter, UnavailableMeter
from greensed.energy.nvml import NvmlMeter, nvml_devices
from greensed.errors import ConfigError

SPECS = ("auto", "codecarbon", "nvml", "constant:WATTS", "none")
RAPL_ROOT = Path("/sys/class/powercap")


def _cuda_index(device: str) -> int:
    _, _, idx = device.partition(":")
    try:
        return int(idx) if idx else 0
    except ValueError:
        raise ConfigError(f"device {device!r}: expected cuda or cuda:N") from None


def nvml_index(cuda_index: int) -> int | None:
    """NVML numbers all GPUs; CUDA_VISIBLE_DEVICES renumbers them for torch.

    None when the mapping is not known (UUID or MIG entries): better no GPU
    counter than the counter of another GPU.
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None or not visible.strip():
        return cuda_index
    entries = [e.strip() for e in visible.split(",") if e.strip()]
    if cuda_index >= len(entries) or not entries[cuda_index].isdigit():
        return None
    return int(entries[cuda_index])


def _parse_constant(spec: str) -> ConstantPowerMeter:
    # constant:NODE_W[+DEVICE_W[xN_DEVICES]]
    body = spec.split(":", 1)[1]
    node, _, device = body.partition("+")
    count = "1"
    if "x" in device:
        device, _, count = device.partition("x")
    try:
        node_w = float(node)
        device_w = float(device) if device else 0.0
        n = int(count)
    except ValueError:
        raise ConfigError(
            f"meter {spec!r}: expected constant:NODE_W or constant:NODE_W+DEVICE_W[xN], "
            "e.g. constant:40 or constant:60+300"
        ) from None
    return ConstantPowerMeter(node_w, device_w, n)


def make_meter(
    spec: str,
    *,
    device: str = "cpu",
    tracking_mode: str = "machine",
    country_iso_code: str = "FRA",
    nvml: Any = None,
) -> Meter:
    """A meter (not started) for ``spec``: auto, codecarbon, nvml, constant:W[+D], none.

    "auto": CodeCarbon for the host, plus the NVML counter for the GPU when
    ``device`` is cuda and the counter is readable.
    """
    raw = spec
    spec = spec.strip().lower()
    if tracking_mode not in TRACKING_MODES:
        raise ConfigError(
            f"[meter] tracking_mode = {tracking_mode!r} must be 'machine' or 'process'"
        )
    on_cuda = device.startswith("cuda")
    if spec == "auto":
        host = CodeCarbonMeter(tracking_mode, country_iso_code=country_iso_code)
        if on_cuda:
            idx = nvml_index(_cuda_index(device))
            if idx is not None and any(
                d["index"] == idx and d["counter"] for d in nvml_devices(nvml)
            ):
                return CompositeMeter(NvmlMeter(idx, nvml=nvml), host)
        return host
    if spec == "codecarbon":
        return CodeCarbonMeter(tracking_mode, country_iso_code=country_iso_code)
    if spec == "nvml":
        if not on_cuda:
            raise ConfigError(f"meter 'nvml' measures a GPU, but the device is {device!r}")
        idx = nvml_index(_cuda_index(device))
        if idx is None:
            raise ConfigError(
                f"meter 'nvml': cannot map {device} to an NVML index with "
                f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}; "
                "use integer indices"
            )
        return NvmlMeter(idx, nvml=nvml)
    if spec.startswith("constant:"):
        return _parse_constant(spec)
    if spec == "none":
        return UnavailableMeter("no meter (meter spec 'none')")
    close = difflib.get_close_matches(spec, ["auto", "codecarbon", "nvml", "none", "constant:"], 1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"meter {raw!r} unknown{hint}; use one of {', '.join(SPECS)}")


def _kind(method: str) -> str:
    if method == UNAVAILABLE:
        return "unavailable"
    return "measured" if method in MEASURED else "modelled"


def probe(
    *,
    rapl_root: Path = RAPL_ROOT,
    nvml: Any = None,
    codecarbon: bool = True,
    tracking_mode: str = "machine",
) -> list[dict[str, str]]:
    """What this machine can measure and how: one row per (source, component)."""
    rows: list[dict[str, str]] = []
    zones = sorted(Path(rapl_root).glob("intel-rapl*")) if Path(rapl_root).exists() else []
    readable = []
    for zone in zones:
        try:
            (zone / "energy_uj").read_text()
            readable.append(zone.name)
        except OSError:
            pass
    if readable:
        rows.append({"source": "rapl", "component": "cpu", "method": "rapl counter",
                     "detail": f"readable zones: {', '.join(readable)}"})
    else:
        why = (
            "zones present but not readable (needs root?)"
            if zones
            else f"no {rapl_root}/intel-rapl*"
        )
        rows.append({"source": "rapl", "component": "cpu", "method": UNAVAILABLE, "detail": why})

    for dev in nvml_devices(nvml):
        if dev["index"] is None:
            rows.append({"source": "nvml", "component": "gpu", "method": UNAVAILABLE,
                         "detail": dev["why"]})
        else:
            rows.append({"source": "nvml", "component": f"gpu{dev['index']}",
                         "method": "nvml counter" if dev["counter"] else UNAVAILABLE,
                         "detail": dev["name"] + (f" ({dev['why']})" if dev["why"] else "")})
    if not any(r["source"] == "nvml" for r in rows):
        rows.append({"source": "nvml", "component": "gpu", "method": UNAVAILABLE,
                     "detail": "NVML sees no GPU"})

    if codecarbon:
        meter = CodeCarbonMeter(tracking_mode)
        try:
            meter.start()
            hw = meter.tracker.get_detected_hardware()
            for comp, method in meter.describe().items():
                detail = {"cpu": str(hw.get("cpu_model") or ""),
                          "ram": f"{hw.get('ram_total_size') or 0:.1f} GB",
                          "gpu": str(hw.get("gpu_model") or "")}.get(comp, "")
                rows.append({"source": "codecarbon", "component": comp, "method": method,
                             "detail": detail})
        except MeterError as exc:
            rows.append({"source": "codecarbon", "component": "all", "method": UNAVAILABLE,
                         "detail": str(exc)})
        finally:
            meter.close()
    for row in rows:
        row["kind"] = _kind(row["method"])
    return rows


def window_overhead_ms(meter: Meter, n: int = 20) -> float:
    """Mean cost of one empty begin_window/end_window pair, in ms (meter started)."""
    t0 = time.perf_counter()
    for _ in range(n):
        meter.begin_window()
        meter.end_window()
    return (time.perf_counter() - t0) * 1000.0 / n
