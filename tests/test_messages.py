"""Console lines are formatted from records alone."""

from __future__ import annotations

import signal
from pathlib import Path

from greensed.numbers import count
from greensed.runlog import EpochRecord, Losses, RunStatus, Summary
from greensed.train.messages import RunShape, banner, closing, epoch_line
from greensed.train.outcome import RunEnd

SHAPE = RunShape(Path("runs/x"), "cpu", "constant:40", 8, (2, 2, 4), (48, 48, 96), 64, 24)


def test_epoch_line_names_the_forecast_to_the_cap():
    r = EpochRecord(epoch=5, loss=Losses(total=0.5), metrics={"student_f1": 0.6},
                    train_s=40.0, val_s=5.0, energy_kwh=0.0004, cumulative_kwh=0.002,
                    avg_power_w=32.0, forecast={
                        "epochs_left": 95, "max_epochs": 100, "remaining_kwh": 0.038,
                        "remaining_s": 4275.0, "metric": "student_f1", "metric_at_cap": 0.7012,
                        "metric_std": 0.0121})
    line = epoch_line(r, SHAPE)
    assert line.startswith("epoch   5 | loss 0.5000 | F1 student 0.600 teacher n/a")
    assert line.endswith(" | to cap (epoch 100): 38 Wh more, 71 min, student_f1 0.701 ± 0.012")
    assert "\n" not in line
    at_cap = EpochRecord(epoch=100, forecast={"epochs_left": 0, "max_epochs": 100})
    assert "to cap" not in epoch_line(at_cap, SHAPE)
    early = EpochRecord(epoch=1, forecast={"epochs_left": 9, "max_epochs": 10,
                                           "remaining_kwh": None, "remaining_s": 30.0})
    assert epoch_line(early, SHAPE).endswith(" | to cap (epoch 10): energy n/a, 30 s")


def _summary(**kw) -> Summary:
    base = dict(status=RunStatus.FINISHED, epochs=3, stop_reason="max-epochs", total_kwh=0.002,
                total_s=30.0, best_epoch=2, best_metric="student_f1", best_value=0.5,
                best_cumulative_kwh=0.0015)
    return Summary(**{**base, **kw})


def test_closing_names_the_commands_to_run_next():
    rows = closing(_summary(), Path("runs/my run")).split("\n")
    assert rows[-2:] == ["next: greensed evaluate 'runs/my run'",
                         "then: greensed report 'runs/my run'"]
    # Nothing to evaluate without a best epoch, nor after a failure.
    assert "next:" not in closing(_summary(best_epoch=None), Path("runs/x"))
    assert "next:" not in closing(_summary(status=RunStatus.FAILED, stop_reason="boom"),
                                  Path("runs/x"))


def test_an_interrupted_run_prints_the_whole_command_to_resume():
    s = _summary(status=RunStatus.INTERRUPTED,
                 stop_reason=RunEnd.interrupted(signal.SIGINT).reason)
    rows = closing(s, Path("runs/x")).split("\n")
    assert rows[0] == "stopped after 3 epochs: interrupted by SIGINT"
    assert rows[-1] == "resume with: greensed train --resume runs/x"
    assert closing(s, Path("runs/x"), ranks=2).endswith(" --resume runs/x --nproc 2")


def test_one_epoch_is_singular():
    assert str(closing(_summary(epochs=1), Path("r"))).startswith("stopped after 1 epoch: ")
    one = RunShape(**{**SHAPE.__dict__, "max_epochs": 1, "stop": "plateau"})
    assert str(banner(one, resume_at=None)).endswith("| cap 1 epoch")
    assert count(1, "epoch") == "1 epoch" and count(0, "epoch") == "0 epochs"


def test_banner_names_the_batch_shares_in_words():
    text = str(banner(SHAPE, resume_at=None))
    assert "batch 8 (strong/weak/unlabelled 2/2/4)" in text and "(2, 2, 4)" not in text
    assert "batch 8 (s/w/u 2/2/4)" in "\n".join(banner(SHAPE, resume_at=None).fit(60))
