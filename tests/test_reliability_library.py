"""kill -9 of a library run and of a Lightning run: the epoch in flight is estimated
on resume from its heartbeat, as greensed's trainer's is, so at most the heartbeat
period of its energy is lost (docs/reliability.md, row 31)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from greensed.library import RunRecorder, journal
from greensed.runlog import RunDir, ledger

pytestmark = pytest.mark.slow  # spawns Python processes

REPO = Path(__file__).resolve().parent.parent
POWER_W = 100.0
HEARTBEAT_S = 0.3

# An epoch 1 of 0.3 s, then an epoch 2 that runs until it is killed. Each window
# start prints its time, for the test to know how long the killed epoch ran.
LIBRARY_LOOP = f"""
import sys, time
import greensed
from greensed.energy import ConstantPowerMeter

with greensed.EnergyMonitor(ConstantPowerMeter({POWER_W})) as monitor, greensed.RunRecorder(
        sys.argv[1], monitor=monitor, heartbeat_s={HEARTBEAT_S}) as run:
    for epoch in range(1, 10):
        with monitor.window() as w:
            print("begin", epoch, time.time(), flush=True)
            time.sleep(0.3 if epoch == 1 else 600)
        run.add(epoch, {{"val_f1": 0.1 * epoch}}, w.reading)
"""

LIGHTNING_LOOP = f"""
import sys, time
import lightning.pytorch as pl
sys.path.insert(0, {str(REPO / "tests")!r})
import lightning_tiny
from greensed.energy import ConstantPowerMeter
from greensed.lightning import EnergyEarlyStopping


class Slow(lightning_tiny.Tiny):
    def on_train_epoch_start(self):
        print("begin", self.current_epoch + 1, time.time(), flush=True)

    def training_step(self, batch, i):
        if self.current_epoch == 1:
            time.sleep(600)
        return super().training_step(batch, i)


cb = EnergyEarlyStopping(stop="plateau:patience=5", monitor="val_f1",
                         meter=ConstantPowerMeter({POWER_W}), run_dir=sys.argv[1])
trainer = pl.Trainer(accelerator="cpu", max_epochs=5, logger=False, callbacks=[cb],
                     enable_progress_bar=False, enable_model_summary=False,
                     enable_checkpointing=False, num_sanity_val_steps=0)
trainer.fit(Slow([0.1, 0.2, 0.3]))
"""


def kill_in_epoch_2(script: str, run_dir: Path, tmp_path: Path, after_s: float) -> float:
    """Run ``script``, kill -9 it ``after_s`` into epoch 2; how long epoch 2 ran."""
    path = tmp_path / "loop.py"
    path.write_text(textwrap.dedent(script))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(path), str(run_dir)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            words = line.split()
            if words[:2] == ["begin", "2"]:
                began = float(words[2])
                break
        else:
            pytest.fail("the loop ended before its epoch 2")
        time.sleep(after_s)
        proc.send_signal(signal.SIGKILL)
        killed = time.time()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return killed - began


def check_estimate(run_dir: Path, ran_s: float, period_s: float) -> None:
    """The resume puts epoch 2's estimate in the ledger: its heartbeat's elapsed time,
    at most one period (and a little scheduling) short of what it ran, at the mean
    power of epoch 1; once."""
    with RunRecorder(run_dir, resume=True) as run:
        assert [r.epoch for r in run.history] == [1]
    (entry,) = RunDir(run_dir).read_lost()
    assert entry.epoch == 2 and entry.how == ledger.ESTIMATED
    # The heartbeat starts a moment before the epoch prints its start.
    assert ran_s - period_s - 1.0 <= entry.duration_s <= ran_s + 0.5
    assert entry.kwh == pytest.approx(POWER_W * entry.duration_s / 3.6e6, rel=0.05)
    lost_kwh = POWER_W * (ran_s - entry.duration_s) / 3.6e6
    assert lost_kwh <= POWER_W * (period_s + 1.0) / 3.6e6
    with RunRecorder(run_dir, resume=True):
        pass
    assert len(RunDir(run_dir).read_lost()) == 1  # a second resume adds nothing


def test_kill_9_of_a_library_run_loses_at_most_the_heartbeat_period(tmp_path):
    run_dir = tmp_path / "run"
    ran_s = kill_in_epoch_2(LIBRARY_LOOP, run_dir, tmp_path, after_s=2.0)
    check_estimate(run_dir, ran_s, HEARTBEAT_S)


def test_kill_9_of_a_lightning_run_loses_at_most_the_heartbeat_period(tmp_path):
    pytest.importorskip("lightning.pytorch")
    run_dir = tmp_path / "run"
    # The callback's heartbeat has greensed's default period.
    ran_s = kill_in_epoch_2(LIGHTNING_LOOP, run_dir, tmp_path, after_s=journal.HEARTBEAT_S + 3)
    check_estimate(run_dir, ran_s, journal.HEARTBEAT_S)
