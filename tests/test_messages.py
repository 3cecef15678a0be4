"""Console lines are formatted from records alone."""

from __future__ import annotations

from pathlib import Path

from greensed.runlog import EpochRecord, Losses
from greensed.train.messages import RunShape, epoch_line

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
    assert line.endswith(" | to epoch 100: 38 Wh, 71 min, student_f1 0.701 ± 0.012")
    assert "\n" not in line
    at_cap = EpochRecord(epoch=100, forecast={"epochs_left": 0, "max_epochs": 100})
    assert "to epoch" not in epoch_line(at_cap, SHAPE)
    early = EpochRecord(epoch=1, forecast={"epochs_left": 9, "max_epochs": 10,
                                           "remaining_kwh": None, "remaining_s": 30.0})
    assert epoch_line(early, SHAPE).endswith(" | to epoch 10: energy n/a, 30 s")
