"""Checks before the first step: the run directory, the lock, the resume config,
the metric and the meter. Each failure is one line and leaves nothing behind."""

from __future__ import annotations

import difflib
import fcntl
import os
import platform
import socket
from pathlib import Path
from typing import Any

import torch

from greensed import config as C
from greensed.energy import Meter, make_meter
from greensed.energy.base import UNAVAILABLE
from greensed.energy.ranks import ReducedMeter, rank_meter
from greensed.errors import ConfigError, GreensedError
from greensed.runlog import LOSS_KEYS, RunDir
from greensed.stopping import Policy
from greensed.train.group import Group
from greensed.train.validate import HELDOUT_METRICS, METRICS


class RunLock:
    """An exclusive flock on RUN_DIR/lock: a second trainer is refused, and a
    killed process releases it automatically (the kernel drops the lock)."""

    def __init__(self, run: RunDir) -> None:
        self.path = run.lock
        self._fh: Any = None

    def __enter__(self) -> RunLock:
        self._fh = open(self.path, "a+")
        try:
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.seek(0)
            owner = self._fh.read().strip() or "another process"
            self._fh.close()
            raise GreensedError(
                f"{self.path.parent}: run directory is in use by {owner}; "
                "wait for it or choose another --out"
            ) from None
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self._fh.flush()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()


def check_run_dir(run: RunDir, resume: bool) -> None:
    if resume and not run.epochs.exists() and not run.last.exists() \
            and not run.config.exists():
        raise GreensedError(f"{run.root}: nothing to resume (no run log or checkpoint)")
    # A fresh start on a run's files would mix two runs' energy (lost.jsonl, summary).
    held = [p.name for p in (run.epochs, run.summary, run.lost, run.last) if p.exists()]
    if not resume and held:
        raise GreensedError(f"{run.root}: already holds a run ({', '.join(held)}); use "
                            "--resume or another --out")


def check_writable(run: RunDir) -> None:
    """Fail before training if the run directory cannot be written."""
    try:
        run.root.mkdir(parents=True, exist_ok=True)
        probe = run.root / f".write-test-{os.getpid()}"
        probe.write_bytes(b"x" * 4096)
        probe.unlink()
    except OSError as exc:
        raise GreensedError(f"{run.root}: run directory is not writable ({exc.strerror})"
                            ) from None


def check_resume_config(run: RunDir, cfg: C.RunConfig, *, force: bool) -> None:
    """Refuse to resume with a different config, listing the differing keys."""
    text = run.read_config_text()
    if text is None:
        return
    # A run of an earlier greensed may hold a relative data path: from this folder, as
    # it was read.
    saved = C.with_absolute_paths(C.from_toml_text(text, str(run.config)))
    # Epochs may be raised on resume (continue a finished run); other keys may not.
    changed = [d for d in C.diff(saved, C.with_absolute_paths(cfg))
               if not d.startswith("train.epochs:")]
    if changed and not force:
        raise ConfigError(
            f"{run.root}: resume config differs from the run's config.toml: "
            + "; ".join(changed) + " (pass --force to resume anyway)"
        )


def check_metric(name: str, protocol: str = "baseline") -> None:
    """A misspelt metric, or one this protocol never computes, would silently disable
    the plateau policy (and, under "greensed", best.pt)."""
    known = METRICS + tuple(f"loss.{k}" for k in LOSS_KEYS)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"stop.metric = {name!r}: unknown metric{hint}; choose from "
                          + ", ".join(known))
    if protocol != "baseline" and name in HELDOUT_METRICS:
        raise ConfigError(f"stop.metric = {name!r}: computed on the held-out weak clips, "
                          f"which only [train] protocol = \"baseline\" has (this run: "
                          f"{protocol!r})")


def build_meter(cfg: C.RunConfig, device: torch.device, group: Group,
                given: Meter | None = None) -> Meter:
    """The run's meter (not started); on several ranks each measures its own part and
    every window ends with the group's sum."""
    m = given or make_meter(cfg.meter.spec, device=str(device),
                            tracking_mode=cfg.meter.tracking_mode)
    if group.world_size == 1:
        return m
    part = rank_meter(m, measures_node=group.measures_node)
    return ReducedMeter(part, group.gather, f"{m.name} x{group.world_size} ranks")


def check_local_launch(cfg: C.RunConfig, run: RunDir, device: torch.device, nproc: int,
                       meter: Meter | None, resume: bool) -> None:
    """Bad input of ``--nproc N`` fails here, in one line, before any process starts."""
    check_run_dir(run, resume)
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise ConfigError(f"--nproc {nproc}: only {torch.cuda.device_count()} CUDA "
                          "device(s) visible; one process per GPU")
    rank_meter(meter or make_meter(cfg.meter.spec, device=str(device),
                                   tracking_mode=cfg.meter.tracking_mode), measures_node=True)


def check_energy(policy: Policy, meter: Meter, cfg: C.RunConfig) -> None:
    """A policy that reads energy cannot run on a meter that has none."""
    methods = meter.describe()
    if policy.requires_energy and methods and all(m == UNAVAILABLE for m in methods.values()):
        raise ConfigError(
            f"stopping policy {cfg.stop.policies} needs energy readings but meter "
            f"'{meter.name}' is unavailable ({methods})")


def hardware_info(device: torch.device) -> dict[str, Any]:
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
