"""The benchmark scripts run (tiny sizes, CPU): they must not rot between runs on a GPU
machine."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}

# Trains or spawns trainers: left out of `make test-fast`.
pytestmark = pytest.mark.slow



def test_epoch_bench_runs_on_cpu(tmp_path):
    out = tmp_path / "epoch.json"
    subprocess.run([sys.executable, "benchmarks/epoch_bench.py", "--device", "cpu",
                    "--batch-size", "4", "--steps", "1", "--val-clips", "4", "--epochs", "1",
                    "--meter", "constant:30", "--out", str(out)],
                   cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=300)
    rep = json.loads(out.read_text())
    (epoch,) = rep["epochs"]
    assert epoch["train_clips_per_s"] > 0 and epoch["energy_wh"] > 0
    assert epoch["energy_methods"] == {"cpu": "constant-power model"}


def test_bench_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, "benchmarks/bench.py", "--batch-sizes", "4", "--reps", "1",
                    "--val-clips", "4", "--epoch-steps", "1", "--no-compile", "--out", str(out)],
                   cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=600)
    rep = json.loads(out.read_text())
    assert rep["steps"]["4"]["greensed_clips_per_s"] > 0
    assert rep["steps"]["4"]["reference_clips_per_s"] > 0
    assert rep["epoch"]["ratio"] > 0 and rep["meter"]["window_overhead_ms"] >= 0
    assert rep["validation"]["seconds_per_1000_clips"] > 0


def test_gpu_check_script_runs_every_step_on_the_cpu(tmp_path, tiny_dataset):
    """GREENSED_CHECK_SMOKE=1: the same steps as on a GPU machine, tiny and on the CPU;
    it exits 0 only if every step did, and leaves each step's output in $OUT."""
    env = {**ENV, "GREENSED_CHECK_SMOKE": "1", "GREENSED_CHECK_DATA": str(tiny_dataset),
           "GREENSED_CACHE": str(tmp_path / "cache"), "OUT": str(tmp_path / "out")}
    res = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "FAILED" not in res.stderr
    for p in ("fp32", "bf16"):
        rep = json.loads((tmp_path / "out" / f"gpu-epoch-{p}.json").read_text())
        assert rep["epochs"][0]["energy_wh"] > 0
    summary = json.loads((tmp_path / "out" / "gpu-run" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["epochs"] == 2


def test_gpu_curves_script_lists_its_grid(tmp_path):
    """The GPU corpus script parses its grid: 6 cells of the small preset, 200 epochs."""
    env = {**ENV, "GREENSED_CURVES_OUT": str(tmp_path / "curves")}
    res = subprocess.run(["bash", "benchmarks/gpu_curves.sh", "--dry-run"], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    cells = re.findall(r"^\s+bs\d+/seed\d+\s+start\s", res.stdout, flags=re.MULTILINE)
    assert "6 cells" in res.stdout and len(cells) == 6
    for bs in (8, 16):
        for seed in (1, 2, 3):
            assert f"bs{bs}/seed{seed}" in res.stdout
    from greensed.launch.grid import load_grid

    for cell in load_grid(ROOT / "benchmarks" / "curves" / "gpu-grid.toml").cells():
        # full length, test-scored: what bench-policies judges a kept checkpoint on
        assert cell.config.eval.test and cell.config.stop.policies == ()
        assert cell.config.train.epochs == 200


def test_forecast_speed_runs_and_writes_json(tmp_path):
    out = tmp_path / "forecast.json"
    subprocess.run([sys.executable, "benchmarks/forecast_speed.py", "--epochs", "12",
                    "--out", str(out)], cwd=ROOT, env=ENV, check=True, capture_output=True,
                   timeout=120)
    rep = json.loads(out.read_text())
    assert rep["12"]["cold"]["n"] == 12 - 6 and rep["12"]["cold"]["median_ms"] > 0
    assert rep["12"]["memoized"]["median_ms"] > 0
    assert rep["12"]["cold_with_noise_paths"]["n"] == 12 - 6


def test_synthetic_curves_writes_a_corpus_the_benchmark_reads(tmp_path):
    subprocess.run([sys.executable, "benchmarks/synthetic_curves.py", str(tmp_path / "c")],
                   cwd=ROOT, env=ENV, check=True, capture_output=True, timeout=120)
    from greensed.study.bench import load_corpus

    runs, warnings = load_corpus([tmp_path / "c"], metric="student_f1")
    assert warnings == [] and len(runs) == 20
    assert {r.seed for r in runs} == {1, 2, 3, 4, 5}
    assert all(100 <= r.epochs <= 200 for r in runs)
