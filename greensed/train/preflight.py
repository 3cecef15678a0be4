"""Checks before the first step that need the run's config: the resume config, the
metric, the meter and the energy a policy reads. Each failure is one line and leaves
nothing behind. (The run directory's own checks and its lock: greensed.runlog.lock.)"""

from __future__ import annotations

import difflib

import torch

from greensed import config
from greensed.energy import Meter, make_meter
from greensed.energy.base import UNAVAILABLE
from greensed.energy.carbon import CarbonIntensity, carbon_intensity
from greensed.energy.ranks import ReducedMeter, rank_meter
from greensed.errors import ConfigError
from greensed.runlog import LOSS_KEYS, RunDir
from greensed.runlog.lock import check_run_dir
from greensed.stopping import Policy
from greensed.train.group import Group
from greensed.train.validate import HELDOUT_METRICS, METRICS, PSDS_METRICS

# Keys a resume may change: they do not change what the run trains.
RESUMABLE = ("train.epochs:", "train.tensorboard:", "meter.carbon_intensity:",
             "meter.country_iso_code:", "meter.region:")


def check_resume_config(run: RunDir, cfg: config.RunConfig, *, force: bool) -> None:
    """Refuse to resume with a different config, listing the differing keys."""
    text = run.read_config_text()
    if text is None:
        return
    # A run of an earlier greensed may hold a relative data path: from this folder, as
    # it was read.
    saved = config.with_absolute_paths(config.from_toml_text(text, str(run.config)))
    # Epochs may be raised on resume (continue a finished run), and what only reports
    # may change (CO2 intensity, TensorBoard); other keys may not.
    changed = [d for d in config.diff(saved, config.with_absolute_paths(cfg))
               if not d.startswith(RESUMABLE)]
    if changed and not force:
        raise ConfigError(
            f"{run.root}: resume config differs from the run's config.toml: "
            + "; ".join(changed) + " (pass --force to resume anyway)"
        )


def check_run_config(cfg: config.RunConfig) -> CarbonIntensity:
    """What a config needs besides its keys' own checks, before anything starts; the
    run's CO2 intensity from its [meter] keys, resolved here once for the whole run
    (an unknown country fails now, not after the first epoch)."""
    check_metric(cfg.stop.metric, cfg.train.protocol)
    if cfg.stop.metric in PSDS_METRICS and cfg.validate.psds is False:
        raise ConfigError(f"stop.metric = {cfg.stop.metric!r} needs PSDS every epoch, but "
                          "[validate] psds = false")
    if cfg.train.tensorboard:
        check_tensorboard()
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


def build_meter(cfg: config.RunConfig, device: torch.device, group: Group,
                given: Meter | None = None) -> Meter:
    """The run's meter (not started); on several ranks each measures its own part and
    every window ends with the group's sum."""
    m = given or make_meter(cfg.meter.spec, device=str(device),
                            tracking_mode=cfg.meter.tracking_mode)
    if group.world_size == 1:
        return m
    part = rank_meter(m, measures_node=group.measures_node)
    return ReducedMeter(part, group.gather, f"{m.name} x{group.world_size} ranks")


def check_local_launch(cfg: config.RunConfig, run: RunDir, device: torch.device, nproc: int,
                       meter: Meter | None, resume: bool) -> None:
    """Bad input of ``--nproc N`` fails here, in one line, before any process starts."""
    check_run_dir(run, resume)
    if device.type == "cuda" and nproc > torch.cuda.device_count():
        raise ConfigError(f"--nproc {nproc}: only {torch.cuda.device_count()} CUDA "
                          "device(s) visible; one process per GPU")
    rank_meter(meter or make_meter(cfg.meter.spec, device=str(device),
                                   tracking_mode=cfg.meter.tracking_mode), measures_node=True)


def check_energy(policy: Policy, meter: Meter, cfg: config.RunConfig) -> None:
    """A policy that reads energy cannot run on a meter that has none."""
    methods = meter.describe()
    if policy.requires_energy and methods and all(m == UNAVAILABLE for m in methods.values()):
        raise ConfigError(
            f"stopping policy {cfg.stop.policies} needs energy readings but meter "
            f"'{meter.name}' is unavailable ({methods})")
