"""Run-directory plumbing: lock, config, hardware, checkpoints, lost-energy ledger."""

from __future__ import annotations

import fcntl
import io
import json
import os
import platform
import socket
from pathlib import Path
from typing import Any

import torch

from greensed import config as C
from greensed import runlog
from greensed.errors import ConfigError, GreensedError

CHECKPOINT_DIR = "checkpoints"
LOCK_FILE = "lock"
LOST_FILE = "lost.jsonl"
HEARTBEAT_FILE = "heartbeat.json"


class RunLock:
    """An exclusive flock on RUN_DIR/lock: a second trainer is refused, and a
    killed process releases it automatically (the kernel drops the lock)."""

    def __init__(self, run_dir: Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
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


def check_writable(run_dir: Path) -> None:
    """Fail before training if the run directory cannot be written."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / f".write-test-{os.getpid()}"
        probe.write_bytes(b"x" * 4096)
        probe.unlink()
    except OSError as exc:
        raise GreensedError(f"{run_dir}: run directory is not writable ({exc.strerror})") from None


def write_config(run_dir: Path, cfg: C.RunConfig) -> None:
    runlog.atomic_write_bytes(run_dir / runlog.CONFIG_FILE, C.to_toml(cfg).encode())


def check_resume_config(run_dir: Path, cfg: C.RunConfig, *, force: bool) -> None:
    """Refuse to resume with a different config, listing the differing keys."""
    path = run_dir / runlog.CONFIG_FILE
    if not path.exists():
        return
    saved = C.from_toml_text(path.read_text(), str(path))
    # Epochs may be raised on resume (continue a finished run); other keys may not.
    changed = [d for d in C.diff(saved, cfg) if not d.startswith("train.epochs:")]
    if changed and not force:
        raise ConfigError(
            f"{run_dir}: resume config differs from the run's config.toml: "
            + "; ".join(changed) + " (pass --force to resume anyway)"
        )


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


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save into memory, then an atomic replace: a crash mid-write
    leaves the previous checkpoint intact."""
    buf = io.BytesIO()
    torch.save(state, buf)
    path.parent.mkdir(parents=True, exist_ok=True)
    runlog.atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise GreensedError(f"{path}: checkpoint not found") from None
    except Exception as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise GreensedError(f"{path}: unreadable checkpoint ({why})") from None


def read_lost(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / LOST_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # torn line from a crash while appending
    return out


def append_lost(run_dir: Path, entry: dict[str, Any]) -> None:
    with open(run_dir / LOST_FILE, "a") as fh:
        fh.write(json.dumps(entry) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def rewrite_lost(run_dir: Path, entries: list[dict[str, Any]]) -> None:
    """Replace lost.jsonl at once (temp file + rename): a crash keeps the old one."""
    runlog.atomic_write_bytes(run_dir / LOST_FILE,
                              "".join(json.dumps(e) + "\n" for e in entries).encode())


def write_heartbeat(run_dir: Path, epoch: int, elapsed_s: float) -> None:
    runlog.atomic_write_bytes(
        run_dir / HEARTBEAT_FILE,
        json.dumps({"epoch": epoch, "elapsed_s": elapsed_s, "pid": os.getpid()}).encode(),
    )


def read_heartbeat(run_dir: Path) -> dict[str, Any] | None:
    try:
        return runlog.read_json(run_dir / HEARTBEAT_FILE)
    except GreensedError:
        return None
