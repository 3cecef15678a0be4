"""The machine a run trains on, as hardware.json records it. Imports torch: the
run writers import this only when a run starts."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any

import torch


def hardware_info(device: torch.device) -> dict[str, Any]:
    """CPU, GPU, driver, CUDA and torch versions, host and platform of ``device``."""
    cpu_model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "gpu_name": None,
        "gpu_driver": None,
        "cuda_version": torch.version.cuda,
        "torch_version": torch.__version__,
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu_name"] = torch.cuda.get_device_name(device)
        try:
            import pynvml

            pynvml.nvmlInit()
            info["gpu_driver"] = pynvml.nvmlSystemGetDriverVersion()
        except Exception as exc:  # driver query is informational only
            info["gpu_driver"] = f"unknown ({type(exc).__name__})"
    return info
