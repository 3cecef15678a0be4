"""`greensed train` end to end, as a user sees it: in a real terminal (a pty of 80 and
120 columns) no line is wider than the terminal and a progress bar runs; piped to a
file every epoch is one whole line without control codes; TensorBoard event files,
epochs.csv and the CO2 figures are written and read back (tensorboard's reader,
pandas)."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pandas as pd
import pytest
from helpers import train_args

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
STOP = ["--stop", "plateau,budget", "--patience", "5", "--budget-kwh", "0.5"]


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    return {**out, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "TERM": "xterm-256color"}


def argv(dataset: Path, cache: Path, run: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "greensed.cli", *train_args(dataset, cache, run, 3), *STOP,
            *extra]


def in_terminal(cmd: list[str], cols: int, timeout_s: float = 300) -> tuple[int, str]:
    """Run ``cmd`` with a pseudo-terminal of ``cols`` columns as its stdin/stdout/stderr;
    (exit code, everything it wrote)."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: size its terminal before anything reads it, then exec
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, cols, 0, 0))
            os.execve(cmd[0], cmd, env())
        finally:
            os._exit(127)
    chunks, deadline = [], time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        else:
            os.kill(pid, 9)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace")


@pytest.mark.parametrize("cols", [80, 120])
def test_no_line_wraps_in_a_terminal(cols, tiny_dataset, tmp_path):
    code, raw = in_terminal(argv(tiny_dataset, tmp_path / "cache", tmp_path / "run"), cols)
    assert code == 0, raw
    shown = [ANSI.sub("", seg) for line in raw.split("\n") for seg in line.split("\r")]
    too_wide = [s for s in shown if len(s) > cols]
    assert not too_wide, too_wide
    assert "\x1b[" in raw  # a live display (the bars) ran
    assert any(s.startswith("features strong ") for s in shown)  # the extraction bar
    # An epoch's bar: its step (a refresh may fall in validation only: 1 short step).
    assert any(s.startswith("epoch 1 ") and ("/1 steps" in s or " clips |" in s)
               for s in shown)
    for epoch in (1, 2, 3):  # each epoch's line, in the compact layout at these widths
        assert any(s.startswith(f"epoch {epoch} | loss ") for s in shown), shown
    assert any(s.startswith("stop plateau:patience=5,") and "+ budget:kwh=0.5 | cap 3 epochs"
               in s for s in shown)
    assert any("budget 0.5 kWh: 0.5 kWh left, lasts past epoch 3" in s for s in shown)
    assert any(re.search(r"^epoch 2 .* validating \d+/\d+ clips", s) for s in shown)


def test_piped_every_epoch_is_one_line_and_views_are_written(tiny_dataset, tmp_path):
    run = tmp_path / "run"
    log = tmp_path / "train.log"
    with open(log, "w") as fh:
        res = subprocess.run(argv(tiny_dataset, tmp_path / "cache", run, "--tensorboard",
                                  "--carbon-intensity", "300"),
                             stdout=fh, stderr=subprocess.STDOUT, env=env(), timeout=600)
    text = log.read_text()
    assert res.returncode == 0, text
    assert "\x1b" not in text and "\r" not in text
    lines = text.splitlines()
    assert all(ln == ln.rstrip() for ln in lines)
    epochs = [ln for ln in lines if ln.startswith("epoch ")]
    assert len(epochs) == 3 and all(" Wh (cum " in ln for ln in epochs)
    assert " | to cap (epoch 3): " in epochs[0] and " | to budget 0.5 kWh: " in epochs[0]
    assert f"next: greensed evaluate {run}" in lines and f"then: greensed report {run}" in lines
    closing = next(ln for ln in lines if ln.startswith("energy "))
    assert "g CO2eq at 300 g/kWh (given: 300 g/kWh)" in closing

    records = [json.loads(ln) for ln in (run / "epochs.jsonl").read_text().splitlines()]
    summary = json.loads((run / "summary.json").read_text())
    # CO2: kWh x 300 g/kWh, per epoch, cumulative and per run, with its source.
    for r in records:
        assert r["co2_kg"] == pytest.approx(r["energy_kwh"] * 0.3)
        assert r["cumulative_co2_kg"] == pytest.approx(r["cumulative_kwh"] * 0.3)
    assert summary["total_co2_kg"] == pytest.approx(summary["total_kwh"] * 0.3)
    assert summary["carbon_intensity_g_per_kwh"] == 300.0
    assert summary["carbon_source"] == "given: 300 g/kWh"

    # epochs.csv, read back with pandas: the log's numbers, one row per epoch.
    df = pd.read_csv(run / "epochs.csv")
    assert list(df["epoch"]) == [1, 2, 3]
    for col in ("energy_kwh", "cumulative_kwh", "co2_kg", "student_f1", "loss_total", "lr"):
        want = [r.get(col, r["metrics"].get(col) if col.endswith("f1") else None)
                for r in records] if not col.startswith("loss_") else \
            [r["loss"]["total"] for r in records]
        assert list(df[col]) == pytest.approx(want), col
    assert list(df["forecast_epochs_left"]) == [2, 1, 0]

    # TensorBoard, read back with tensorboard's own reader.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run / "tensorboard"))
    ea.Reload()
    tags = set(ea.Tags()["scalars"])
    assert {"train/student/loss_strong", "train/lr", "val/synth/student/intersection_f1_macro",
            "val/weak/teacher/macro_F1", "energy/epoch_kwh", "energy/cumulative_kwh",
            "energy/avg_power_w", "co2/epoch_kg"} <= tags
    kwh = ea.Scalars("energy/epoch_kwh")
    assert [e.step for e in kwh] == [1, 2, 3]
    assert [e.value for e in kwh] == pytest.approx([r["energy_kwh"] for r in records],
                                                   rel=1e-6)
    assert [e.value for e in ea.Scalars("co2/epoch_kg")] == pytest.approx(
        [r["co2_kg"] for r in records], rel=1e-6)

    # greensed report reads it, CO2 beside the energy.
    rep = subprocess.run([sys.executable, "-m", "greensed.cli", "report", str(run), "--metric",
                          "student_f1", "--no-plots", "--out", str(tmp_path / "report")],
                         capture_output=True, text=True, env=env(), timeout=300)
    assert rep.returncode == 0, rep.stderr
    assert "CO2 (kg)" in rep.stdout and "given: 300 g/kWh" in rep.stdout
