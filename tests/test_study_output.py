"""What the study commands print: counts in the right number, tables fitted to the
terminal's width (whole lines when piped)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest
from helpers import cli, write_grid, write_run

from greensed import energy, launch
from greensed.launch import plan_grid
from greensed.launch.grid import load_grid
from greensed.launch.outcome import CellOutcome
from greensed.launch.reproduce import ReproduceResult
from greensed.study.tables import Table, render, text_lines


def test_reproduce_of_one_cell_says_1_cell(tmp_path, monkeypatch, capsys):
    grid = write_grid(tmp_path, tmp_path / "data", seeds=[1], epochs=1)
    out = tmp_path / "runs"
    plans = plan_grid(load_grid(grid), out)
    out.mkdir()

    def done(*args: object, **kwargs: object) -> ReproduceResult:
        return ReproduceResult(out, plans, [CellOutcome(p, "skipped") for p in plans])

    monkeypatch.setattr(launch, "reproduce", done)
    code, stdout, stderr = cli(monkeypatch, capsys, "reproduce", grid, "--out", out)
    assert code == 0, stdout + stderr
    assert "\n1 cell in " in stdout and "1 cells" not in stdout


# --- fitted to the terminal's width, whole lines when piped ------------------------
# (6-epoch runs: bench-policies leaves out the forecasts, and runs in a fraction of a second)

CURVES = {1: [0.10, 0.30, 0.50, 0.60, 0.62, 0.61, 0.63, 0.62, 0.64, 0.60],
          2: [0.20, 0.40, 0.55, 0.58, 0.60, 0.59, 0.58, 0.60, 0.57, 0.56]}
STOP = "plateau: no improvement of teacher_f1 above 0.005 for 15 epochs (best 0.64 at 9)"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for seed, f1 in CURVES.items():
        for batch in (8, 16):
            write_run(root / f"bs{batch}-seed{seed}-20240101-120000", f1[:6], 0.01 * batch,
                      batch_size=batch, seed=seed, summary={"stop_reason": STOP})
    return root


PROBE = [{"source": "rapl", "component": "cpu", "method": "unavailable",
          "detail": "no /sys/class/powercap/intel-rapl*"},
         {"source": "nvml", "component": "gpu0", "method": "nvml counter",
          "detail": "NVIDIA H100 80GB HBM3 (total energy counter in millijoules since the "
                    "driver loaded, read at each window's start and end)"},
         {"source": "codecarbon", "component": "cpu", "method": "cpu-load model",
          "detail": "Intel(R) Xeon(R) Platinum 8480+ with 112 threads at 2.0 GHz"}]


def commands(runs: Path, out: Path) -> dict[str, list[object]]:
    return {"report": ["report", runs, "--out", out, "--no-plots"],
            "status": ["status", runs],
            "meters": ["meters"],
            "bench-policies": ["bench-policies", runs]}


def run_at(width: int | None, argv: list[object], monkeypatch, capsys) -> str:
    monkeypatch.setattr(importlib.import_module("greensed.cli.app"), "terminal_width",
                        lambda: width)
    monkeypatch.setattr(energy, "probe", lambda **kw: [{**r, "kind": "measured"} for r in PROBE])
    code, stdout, stderr = cli(monkeypatch, capsys, *argv)
    assert code == 0, stdout + stderr
    return stdout


@pytest.mark.parametrize("command", ["report", "status", "meters", "bench-policies"])
@pytest.mark.parametrize("width", [80, 120])
def test_study_commands_fit_the_terminal(command, width, runs, tmp_path, monkeypatch, capsys):
    argv = commands(runs, tmp_path / "r")[command]
    fitted = run_at(width, argv, monkeypatch, capsys)
    whole = run_at(None, argv, monkeypatch, capsys)
    assert max(map(len, whole.splitlines())) > width  # there was something to fit
    assert max(map(len, fitted.splitlines())) <= width, fitted
    # Nothing lost: every figure and name is still there, as often (a header may repeat).
    for token in (r"\d\.\d+%", "±", "finished", "oracle", "plateau:", "codecarbon", "H100"):
        assert len(re.findall(token, fitted)) == len(re.findall(token, whole)), token
    flat = " ".join(fitted.split())
    assert {"report": "Table 2: energy (kWh) to reach F1 levels by batch",
            "status": STOP,
            "meters": "cpu-load model",
            "bench-policies": "first at 95% of max"}[command] in flat


def test_piped_tables_are_whole_lines(runs, tmp_path, monkeypatch, capsys):
    out = run_at(None, commands(runs, tmp_path / "r")["status"], monkeypatch, capsys)
    rows = [ln for ln in out.splitlines() if ln.startswith(str(runs))]
    assert len(rows) == 4 and all(ln.rstrip().endswith(STOP) for ln in rows)
    out = run_at(None, commands(runs, tmp_path / "r")["report"], monkeypatch, capsys)
    assert any(ln.startswith("Table 1: ") and ln.endswith(", %)") for ln in out.splitlines())


def test_a_narrow_table_repeats_its_key_in_each_block():
    t = Table("T", ["Batch", "A long column", "Another long one", "Third"])
    t.add(["16", "1.0 ± 0.1" * 3, "2.0 ± 0.2" * 3, "3"])
    lines = text_lines(t, 50)
    assert max(map(len, lines)) <= 50
    headers = [ln for ln in lines if ln.startswith("Batch")]
    assert len(headers) == 2 and [ln.startswith("16 ") for ln in lines].count(True) == 2
    assert text_lines(t, None) == text_lines(t, 200) == render(t, "table").splitlines()


def test_records_when_the_key_fills_half_the_width():
    t = Table("Policies", ["Family", "Setting", "Saved", "F1 loss"], key_columns=2)
    t.add(["plateau", "plateau:patience=15,min_delta=0.005,warmup=0", "54.5%", "3.4%"])
    assert text_lines(t, 60) == [
        "Policies",
        "plateau | plateau:patience=15,min_delta=0.005,warmup=0",
        "  Saved: 54.5% | F1 loss: 3.4%"]


@pytest.mark.slow  # spawns greensed in a pseudo-terminal
@pytest.mark.parametrize("cols", [80, 120])
def test_a_real_terminal_gets_fitted_tables_and_a_pipe_whole_lines(cols, runs, tmp_path):
    import subprocess
    import sys

    from test_views_train import ANSI, env, in_terminal

    argv = [sys.executable, "-m", "greensed.cli", "status", str(runs)]
    code, raw = in_terminal(argv, cols, timeout_s=120)
    assert code == 0, raw
    shown = [ANSI.sub("", ln).rstrip("\r") for ln in raw.split("\n")]
    assert max(map(len, shown)) <= cols and STOP in " ".join(" ".join(shown).split())
    piped = subprocess.run(argv, capture_output=True, text=True, env=env(), timeout=120)
    assert [ln for ln in piped.stdout.splitlines() if ln.endswith(STOP)]  # one line a run
    assert max(map(len, piped.stdout.splitlines())) > cols
