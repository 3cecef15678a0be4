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
from greensed.energy.carbon import CarbonIntensity, carbon_intensity
from greensed.energy.ranks import ReducedMeter, rank_meter
from greensed.errors import ConfigError, GreensedError
from greensed.runlog import LOSS_KEYS, RunDir
from greensed.stopping import Policy
from greensed.train.group import Group
from greensed.train.validate import HELDOUT_METRICS, METRICS, PSDS_METRICS


class RunLock:
    """An exclusive flock on RUN_DIR/lock: a second trainer is refused, and a
    killed process releases it automatically (the kernel drops the lock)."""

    def __init__(self, run: RunDir, *, fresh: bool = False, created: bool = False) -> None:
        """``fresh``: the start of a new run, whose failure before its first record
        removes what it wrote (the lock, config.toml, hardware.json) and, when this start
        ``created`` the directory, the directory once empty: a failed start leaves
        nothing behind."""
        self.path, self.run, self.fresh, self.created = run.lock, run, fresh, created
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

    def __exit__(self, exc_type: object = None, *exc: object) -> None:
        if self._fh is None:
            return
        try:
            if exc_type is not None and self.fresh:
                self._undo()  # still locked: no other trainer is starting here meanwhile
        finally:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def _undo(self) -> None:
        run = self.run
        if any(p.exists() for p in (run.epochs, run.summary, run.lost, run.last)):
            return  # the run has a log: keep everything
        for p in (run.config, run.hardware, run.heartbeat, run.epochs_csv, run.lock):
            p.unlink(missing_ok=True)
        for folder in (run.checkpoints, *((run.root,) if self.created else ())):
            try:
                folder.rmdir()  # only when empty: never what someone else put there
            except OSError:
                pass


def check_run_dir(run: RunDir, resume: bool) -> None:
    if resume and not run.epochs.exists() and not run.last.exists() \
            and not run.config.exists():
        raise GreensedError(f"{run.root}: nothing to resume (no run log or checkpoint)")
    # A fresh start on a run's files would mix two runs' energy (lost.jsonl, summary).
    held = [p.name for p in (run.epochs, run.summary, run.lost, run.last) if p.exists()]
    if not resume and held:
        raise GreensedError(f"{run.root}: already holds a run ({', '.join(held)}); use "
                            "--resume or another --out")


def check_writable(run: RunDir) -> bool:
    """Fail before training if the run directory cannot be written; True when this
    call created it."""
    created = not run.root.exists()
    try:
        run.root.mkdir(parents=True, exist_ok=True)
        probe = run.root / f".write-test-{os.getpid()}"
        probe.write_bytes(b"x" * 4096)
        probe.unlink()
    except OSError as exc:
        raise GreensedError(f"{run.root}: run directory is not writable ({exc.strerror})"
                            ) from None
    return created


# Keys a resume may change: they do not change what the run trains.
RESUMABLE = ("train.epochs:", "train.tensorboard:", "meter.carbon_intensity:",
             "meter.country_iso_code:", "meter.region:")


def check_resume_config(run: RunDir, cfg: C.RunConfig, *, force: bool) -> None:
    """Refuse to resume with a different config, listing the differing keys."""
    text = run.read_config_text()
    if text is None:
        return
    # A run of an earlier greensed may hold a relative data path: from this folder, as
    # it was read.
    saved = C.with_absolute_paths(C.from_toml_text(text, str(run.config)))
    # Epochs may be raised on resume (continue a finished run), and what only reports
    # may change (CO2 intensity, TensorBoard); other keys may not.
    changed = [d for d in C.diff(saved, C.with_absolute_paths(cfg))
               if not d.startswith(RESUMABLE)]
    if changed and not force:
        raise ConfigError(
            f"{run.root}: resume config differs from the run's config.toml: "
            + "; ".join(changed) + " (pass --force to resume anyway)"
        )


def check_run_config(cfg: C.RunConfig) -> None:
    """What a config needs besides its keys' own checks, before anything starts."""
    check_metric(cfg.stop.metric, cfg.train.protocol)
    if cfg.stop.metric in PSDS_METRICS and cfg.validate.psds is False:
        raise ConfigError(f"stop.metric = {cfg.stop.metric!r} needs PSDS every epoch, but "
                          "[validate] psds = false")
    carbon(cfg)  # an unknown country fails here, not after the first epoch
    if cfg.train.tensorboard:
        check_tensorboard()


def carbon(cfg: C.RunConfig) -> CarbonIntensity:
    """The run's CO2 intensity, from its [meter] keys (resolved once per process)."""
    m = cfg.meter
    return carbon_intensity(m.carbon_intensity, m.country_iso_code, m.region)


def check_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
    except ImportError:
        raise ConfigError("[train] tensorboard = true (--tensorboard): the tensorboard "
                          "package is not installed (pip install 'greensed[tensorboard]')"
                          ) from None


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
