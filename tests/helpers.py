"""Shared test helpers: tiny training configs, hand-made run logs, tiny grids."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from greensed import config as C
from greensed.cli import main

# --- training ------------------------------------------------------------------

def tweak(cfg: C.RunConfig, **values: Any) -> C.RunConfig:
    """``cfg`` with dotted keys set: ``tweak(cfg, **{"train.lr": 5e-4})``."""
    raw: dict[str, Any] = {}
    for key, value in values.items():
        *path, last = key.split(".")
        node = raw
        for part in path:
            node = node.setdefault(part, {})
        node[last] = value
    return C.override(cfg, raw, "test")


def tiny_config(dataset: Path, cache: Path, epochs: int = 2,
                protocol: str = "greensed") -> C.RunConfig:
    """Batch 4, 2 steps per epoch. The tiny sets' 4 weak clips leave none held out by the
    baseline's 90/10 split, so the greensed protocol unless told."""
    return tweak(C.RunConfig(), **{
        "train.protocol": protocol,
        "data.path": str(dataset), "data.cache_dir": str(cache), "train.epochs": epochs,
        "train.batch_size": 4, "train.rampup_epochs": 1.0, "train.max_steps_per_epoch": 2,
        "meter.spec": "constant:40"})


def quiet(_: str) -> None:
    pass



# --- trainers as processes (reliability tests) -----------------------------------

# A `greensed train` that parks at a chosen moment, so that a test signals or kills
# it there every time. GREENSED_TEST_PARK: "validate:N" (in epoch N's validation, after
# its steps), "step:N" (in the N-th training step: one step per epoch in these tests)
# or "extract" (in the feature extraction); GREENSED_TEST_PARK_S: how long (600 s).
# GREENSED_TEST_PARKED names a file created when it parks.
PARK = """
import os, sys, time
where, _, n = os.environ.get("GREENSED_TEST_PARK", "validate:2").partition(":")
secs = float(os.environ.get("GREENSED_TEST_PARK_S", "600"))
def park():
    open(os.environ["GREENSED_TEST_PARKED"], "w").close()
    time.sleep(secs)
def hook(module, name):
    real, calls = getattr(module, name), []
    def parked(*args, **kwargs):
        calls.append(1)
        if not n or len(calls) == int(n):
            park()
        return real(*args, **kwargs)
    setattr(module, name, parked)
if where == "extract":
    import greensed.data.cache as target
    hook(target, "_extract")
else:
    import greensed.train.epoch as target
    hook(target, "validate" if where == "validate" else "optimize")
from greensed.cli import main
sys.argv = ["greensed", *sys.argv[1:]]
main()
"""
PARK_IN_EPOCH_2 = PARK  # the default: in epoch 2's validation


def train_args(dataset: Path, cache: Path, run: Path, epochs: int) -> list[str]:
    return ["train", "--data", str(dataset), "--cache-dir", str(cache), "--out", str(run),
            "--batch-size", "4", "--max-steps-per-epoch", "1", "--epochs", str(epochs),
            "--meter", "constant:40"]


def _default_sigint() -> None:
    # A suite started in the background (`make test &`, nohup) has SIGINT ignored, and
    # a child inherits that: Python then installs no KeyboardInterrupt handler. The
    # child should see Ctrl-C as a user's terminal delivers it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(argv: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", **env},
                            preexec_fn=_default_sigint)


def wait_for(cond: Callable[[], bool], proc: subprocess.Popen, timeout_s: float = 240) -> None:
    t0 = time.monotonic()
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"trainer exited {proc.returncode} early:\n{out}\n{err}")
        if time.monotonic() - t0 > timeout_s:
            proc.kill()
            proc.communicate()
            pytest.fail(f"timed out after {timeout_s} s")
        time.sleep(0.05)


def park_and_signal(argv: list[str], where: str, signum: int, parked: Path,
                    park_s: float = 3.0) -> subprocess.Popen:
    """A `greensed train` (argv) parked at ``where`` (see PARK), sent ``signum`` there."""
    proc = spawn([sys.executable, "-c", PARK, *argv], GREENSED_TEST_PARK=where,
                 GREENSED_TEST_PARK_S=str(park_s), GREENSED_TEST_PARKED=str(parked))
    wait_for(parked.exists, proc)
    proc.send_signal(signum)
    return proc


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: object
        ) -> tuple[int, str, str]:
    """`greensed ARGS` in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["greensed", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err



# --- hand-made run logs: exactly the files training writes (docs/runlog.md) -----

def write_run(run_dir: Path, f1: Sequence[float | None], epoch_kwh: float | Sequence[float],
              epoch_s: float = 60.0, *, batch_size: int = 16, seed: int = 1,
              gpu: str | None = "NVIDIA A100", cpu: str = "Test CPU", recipe: str = "test",
              psds: dict[str, float] | None = None, summary: dict[str, Any] | None = None,
              write_summary: bool = True) -> Path:
    """A run whose epoch i has teacher_f1 = f1[i] and energy epoch_kwh[i]."""
    run_dir.mkdir(parents=True, exist_ok=True)
    n = len(f1)
    kwh = [float(epoch_kwh)] * n if isinstance(epoch_kwh, (int, float)) else list(epoch_kwh)
    cumulative = 0.0
    lines = []
    for i, value in enumerate(f1):
        cumulative += kwh[i]
        lines.append(json.dumps({
            "schema": 1, "epoch": i + 1, "steps": 10 * (i + 1), "lr": 1e-3,
            "loss": {"total": 1.0}, "metrics": {"teacher_f1": value, "student_f1": value},
            "train_s": epoch_s * 0.9, "val_s": epoch_s * 0.1, "duration_s": epoch_s,
            "energy_kwh": kwh[i], "cumulative_kwh": round(cumulative, 12),
            "energy_components_kwh": {"gpu": kwh[i]}, "energy_methods": {"gpu": "nvml counter"},
            "avg_power_w": kwh[i] * 3.6e6 / epoch_s, "meter": "test", "energy_status": "ok",
            "time_utc": "2023-01-01T00:00:00Z"}))
    (run_dir / "epochs.jsonl").write_text("\n".join(lines) + "\n")
    (run_dir / "config.toml").write_text(
        f"[train]\nbatch_size = {batch_size}\nseed = {seed}\nepochs = {n}\n")
    (run_dir / "hardware.json").write_text(json.dumps({"gpu_name": gpu, "cpu_model": cpu}))
    if write_summary:
        s = {"schema": 1, "status": "finished", "stop_policy": "max-epochs", "epochs": n,
             "stop_epoch": n, "total_kwh": round(cumulative, 12), "total_s": epoch_s * n,
             "lost_kwh": 0.0, "batch_size": batch_size, "seed": seed, "recipe": recipe}
        s.update(summary or {})
        (run_dir / "summary.json").write_text(json.dumps(s))
    if psds is not None:
        (run_dir / "psds.json").write_text(json.dumps(psds))
    return run_dir



# --- tiny grids for the launcher tests (local and SLURM) -----------------------



def write_grid(folder: Path, data: Path, *, seeds: list[int], epochs: int,
               bad_cell: bool = False, slurm: str = "") -> Path:
    """A grid of tiny cells: batch 4 on ``data`` (1 step per epoch, meter
    constant:40: no CodeCarbon start-up) and, with ``bad_cell``, a batch-8
    column whose data path does not exist."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "good.toml").write_text(f'[data]\npath = "{data}"\n[train]\nbatch_size = 4\n'
                                      'protocol = "greensed"\n')
    (folder / "bad.toml").write_text('[data]\npath = "/nonexistent/desed"\n'
                                     '[train]\nbatch_size = 8\n')
    recipes = '["good.toml", "bad.toml"]' if bad_cell else '["good.toml"]'
    grid = folder / "grid.toml"
    grid.write_text(f"""[grid]
name = "tiny"
recipes = {recipes}
seed = {seeds}

[overrides]
data = {{ cache_dir = "{folder / 'cache'}" }}
train = {{ epochs = {epochs}, max_steps_per_epoch = 1, rampup_epochs = 1.0 }}
meter = {{ spec = "constant:40" }}
{slurm}""")
    return grid


def epochs_of(run_dir: Path) -> list[int]:
    path = run_dir / "epochs.jsonl"
    if not path.exists():
        return []
    return [json.loads(line)["epoch"] for line in path.read_text().splitlines() if line.strip()]


def wait_for_epochs(run_dir: Path, n: int, timeout_s: float = 120.0) -> None:
    t0 = time.monotonic()
    while len(epochs_of(run_dir)) < n:
        assert time.monotonic() - t0 < timeout_s, f"{run_dir}: no epoch {n} after {timeout_s} s"
        time.sleep(0.1)


def lock_pid(run_dir: Path) -> int:
    """The trainer's pid from its lock line 'pid N on HOST'."""
    return int((run_dir / "lock").read_text().split()[1])
