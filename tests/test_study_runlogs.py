"""Hand-made run logs for the study tests: exactly the files training writes
(docs/runlog.md), with chosen F1, energy and time per epoch."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


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


def test_hand_made_log_reads_back_through_runlog(tmp_path: Path) -> None:
    from greensed import runlog

    d = write_run(tmp_path / "r", [0.1, None, 0.3], [0.1, 0.2, 0.3], 30.0, batch_size=8)
    run = runlog.load_run(d)
    assert run.series("teacher_f1") == [0.1, None, 0.3]
    assert run.series("cumulative_kwh") == [0.1, 0.3, 0.6]
    assert run.summary["total_kwh"] == 0.6 and run.summary["total_s"] == 90.0
    assert runlog.find_runs([tmp_path]) == [d]


def test_study_layer_imports_no_training_code() -> None:
    import subprocess
    import sys

    code = ("import sys, greensed.study.grid, greensed.study.report, greensed.study.replay, "
            "greensed.study.status; "
            "bad = [m for m in ('torch', 'torchaudio', 'greensed.train', 'greensed.data', "
            "'greensed.model', 'matplotlib') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
