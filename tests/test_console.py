"""What `greensed train` prints: whole lines for a pipe, lines that fit a terminal's
width (a compact layout when narrow), progress bars that cost nothing measurable,
and the forecast to the cap and to the budget."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from rich.console import Console

from greensed.runlog import EpochRecord, Losses, RunStatus, Summary
from greensed.train.console import NULL_BAR, LiveView, PlainView, epoch_bar
from greensed.train.messages import Line, RunShape, banner, closing, epoch_line, fit, pack

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
SHAPE = RunShape(Path("/tmp/runs/quick-bs8-seed42-20240101-120000"), "cpu", "constant:40", 8,
                 (2, 2, 4), (48, 48, 96), 64, 24, stop="plateau:patience=2 + budget:kwh=0.5",
                 max_epochs=100, metric="student_f1", budget_kwh=0.5,
                 carbon="56.04 g/kWh (codecarbon: FRA grid mix 2023)")


def record(epoch: int = 5, **kw) -> EpochRecord:
    base = dict(epoch=epoch, loss=Losses(total=0.5), metrics={
        "student_f1": 0.6, "teacher_f1": 0.55, "teacher_weak_f1": 0.7}, train_s=40.0,
        val_s=5.0, energy_kwh=0.0004, cumulative_kwh=0.002, avg_power_w=32.0, forecast={
            "epochs_left": 95, "max_epochs": 100, "remaining_kwh": 0.038,
            "remaining_s": 4275.0, "energy_per_epoch_kwh": 0.0004,
            "duration_per_epoch_s": 45.0, "metric": "student_f1", "metric_at_cap": 0.7012,
            "metric_std": 0.0121})
    return EpochRecord(**{**base, **kw})


def visible_widths(raw: str) -> list[int]:
    """The width of every line a terminal shows: split at newlines and carriage
    returns, control sequences removed."""
    return [len(ANSI.sub("", seg)) for line in raw.split("\n") for seg in line.split("\r")]


def test_an_epoch_is_one_whole_line_for_a_pipe():
    line = epoch_line(record(), SHAPE)
    assert isinstance(line, str) and "\n" not in line and len(line) > 120
    assert line.startswith("epoch   5 | loss 0.5000 | F1 student 0.600 teacher 0.550")
    assert " | weak F1 teacher 0.700 | " in line  # whose weak F1 it is
    # The energy still to spend to the cap, not spent so far.
    assert " | to cap (epoch 100): 38 Wh more, 71 min, student_f1 0.701 ± 0.012" in line
    # 0.5 kWh budget, 2 Wh spent, 0.4 Wh an epoch: 1245 epochs; past the cap's 95. In kWh
    # throughout, as the budget is given and as its stop reason says it.
    assert line.endswith(" | to budget 0.5 kWh: 0.498 kWh left, lasts past epoch 100")


def test_forecast_to_the_budget_counts_epochs_and_time():
    r = record(cumulative_kwh=0.4)  # 0.1 kWh left at 0.4 Wh an epoch: 250 epochs > 95 left
    assert epoch_line(r, SHAPE).endswith("lasts past epoch 100")
    r = record(cumulative_kwh=0.49)  # 0.01 kWh left: 25 epochs of 45 s
    assert epoch_line(r, SHAPE).endswith(" | to budget 0.5 kWh: 0.01 kWh left, 25 epochs, "
                                         "19 min")
    r = record(cumulative_kwh=0.4994)  # 0.6 Wh left: one epoch
    assert epoch_line(r, SHAPE).endswith(" | to budget 0.5 kWh: 0.0006 kWh left, 1 epoch, 45 s")
    assert epoch_line(record(cumulative_kwh=0.5), SHAPE).endswith("to budget 0.5 kWh: spent")
    # After epoch 1 already; none without a budget or at the cap.
    first = record(epoch=1, cumulative_kwh=0.0004)
    assert "to budget 0.5 kWh: " in epoch_line(first, SHAPE)
    no_budget = RunShape(**{**SHAPE.__dict__, "budget_kwh": None})
    assert "budget" not in epoch_line(record(), no_budget)
    at_cap = record(forecast={"epochs_left": 0, "max_epochs": 100,
                              "energy_per_epoch_kwh": 0.0004})
    assert "to " not in epoch_line(at_cap, SHAPE).split("|")[-1]


@pytest.mark.parametrize("width", [80, 100, 120])
def test_every_message_fits_a_terminal_of_that_width(width):
    summary = Summary(status=RunStatus.FINISHED, epochs=12, stop_reason="plateau: "
                      "student_f1 did not improve by more than 0.01 for 2 epochs (best 0.61 "
                      "at epoch 10); max-epochs: reached the 12-epoch cap", total_kwh=0.0123,
                      total_s=600, best_epoch=10, best_metric="student_f1", best_value=0.61,
                      best_cumulative_kwh=0.01, total_co2_kg=0.00069,
                      carbon_intensity_g_per_kwh=56.04,
                      carbon_source="codecarbon: FRA grid mix 2023")
    messages = [banner(SHAPE, resume_at=None), epoch_line(record(), SHAPE),
                closing(summary, SHAPE.run_dir), "data: " + "a/long/folder " * 20]
    for m in messages:
        lines = fit(m, width)
        assert all(len(x) <= width for x in lines), lines
        assert all(x == x.rstrip() for x in lines)
    # The epoch: four lines at 80 columns (the compact layout), its numbers all there.
    at80 = fit(epoch_line(record(), SHAPE), 80)
    assert len(at80) == 4 and all(x.startswith("  ") for x in at80[1:])
    assert "F1 s/t 0.600/0.550, teacher weak 0.700" in at80[0]
    assert "0.400 Wh, cum 2.00 Wh" in at80[1]
    assert at80[2].startswith("  to cap 100: 38 Wh more, 71 min")
    assert at80[3] == "  budget 0.5 kWh: 0.498 kWh left, lasts past epoch 100"
    # Whole when it fits.
    assert fit(Line(["a", "b"]), 80) == ["a | b"]


def test_pack_wraps_a_segment_longer_than_the_line():
    lines = pack(["short", "x" * 200, "tail"], 50)
    assert all(len(x) <= 50 for x in lines) and "".join(lines).count("x") == 200
    assert lines[0] == "short" and lines[-1].endswith("tail")


def test_banner_names_the_policies_the_cap_and_the_co2_intensity():
    text = str(banner(SHAPE, resume_at=None))
    assert "stop plateau:patience=2 + budget:kwh=0.5 | cap 100 epochs | on student_f1 (max)" \
        in text
    assert "CO2 at 56.04 g/kWh (codecarbon: FRA grid mix 2023)" in text
    assert str(banner(SHAPE, resume_at=3)).startswith("greensed: resuming at epoch 3 ->")


def test_closing_names_co2_after_energy():
    s = Summary(status=RunStatus.FINISHED, epochs=3, stop_reason="max-epochs", total_kwh=0.002,
                total_s=30, total_co2_kg=0.0006, carbon_intensity_g_per_kwh=300.0,
                carbon_source="given: 300 g/kWh")
    text = str(closing(s, Path("runs/x")))
    assert text.index("energy 2.00 Wh") < text.index("0.6 g CO2eq at 300 g/kWh (given: 300 "
                                                       "g/kWh)")
    old = Summary(status=RunStatus.FINISHED, epochs=3, total_kwh=0.002)  # an older log
    assert "CO2" not in str(closing(old, Path("runs/x")))


def test_plain_view_writes_whole_lines_without_control_codes():
    out = io.StringIO()
    view = PlainView(out)
    view(epoch_line(record(), SHAPE))
    view(banner(SHAPE, resume_at=None))
    text = out.getvalue()
    assert "\x1b" not in text and "\r" not in text
    assert len(text.splitlines()) == 3  # the epoch, and the banner's two rows
    assert all(x == x.rstrip() for x in text.splitlines())
    assert epoch_bar(view, 1, 10, 8, []) is NULL_BAR  # no bar where there is no terminal
    assert epoch_bar(print, 1, 10, 8, []) is NULL_BAR


@pytest.mark.parametrize("width", [80, 120])
def test_live_view_lines_and_bars_fit_the_terminal(width):
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=True, color_system="standard")
    view = LiveView(console, refresh_per_second=50)
    with view:
        view(banner(SHAPE, resume_at=None))
        for subset in ("strong", "weak"):
            for done in (32, 64, 70):
                view.clips(subset, done, 70)
        prev = record(epoch=1)
        with epoch_bar(view, 2, 30, 8, [prev]) as bar:
            for _ in range(30):
                bar.tick()
                time.sleep(0.01)
        view(epoch_line(record(epoch=2), SHAPE))
    raw = buf.getvalue()
    assert max(visible_widths(raw)) <= width
    shown = ANSI.sub("", raw)
    assert "30/30 steps" in shown and "clips/s" in shown and "~" in shown and " W" in shown
    assert "features strong" in shown and "70/70 clips" in shown


def test_a_tick_costs_well_under_a_microsecond_or_two():
    """The step loop calls tick() once a step; it only counts and reads the clock
    (the display is refreshed by rich's thread at most a few times a second)."""
    console = Console(file=io.StringIO(), width=80, force_terminal=True)
    n = 200_000
    with LiveView(console).bar("epoch 1", n, "steps", clips_per_unit=8) as bar:
        t0 = time.perf_counter()
        for _ in range(n - 1):
            bar.tick()
        live_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(n - 1):
        NULL_BAR.tick()
    null_s = time.perf_counter() - t0
    per_tick_us = live_s / n * 1e6
    print(f"tick: {per_tick_us:.2f} us (live bar), {null_s / n * 1e6:.3f} us (no bar)")
    assert per_tick_us < 20  # a training step takes milliseconds to seconds


def _shown(view: LiveView) -> str:
    return ANSI.sub("", view.console.file.getvalue())


def test_the_figures_move_between_steps():
    """rich's refresh redraws the rate, the ETA and the energy from the clock: a long
    step does not freeze them."""
    view = LiveView(Console(file=io.StringIO(), width=120, force_terminal=True),
                    refresh_per_second=50)
    with view.bar("epoch 2", 10, "steps", clips_per_unit=8, power_w=36_000.0) as bar:
        bar.tick()
        time.sleep(0.4)  # one long step: no tick
    energies = set(re.findall(r"~(\d+\.\d\d) Wh", _shown(view)))
    etas = set(re.findall(r"ETA (\d+:\d\d)", _shown(view)))
    assert len(energies) >= 5 and len(etas) >= 2, (energies, etas)


def test_validation_has_a_bar_of_its_clips(one_torch_thread):
    import numpy as np
    import torch

    from greensed import config as C
    from greensed.metrics.events import Events
    from greensed.model.crnn import CRNN
    from greensed.train.validate import validate, validation_clips

    n = 3
    val = {"mels": torch.rand(n, 626, 128), "strong": torch.zeros(n, 10, 156),
           "weak": np.zeros((n, 10), np.uint8), "events": Events.from_tuples([])}
    seen: list[int] = []
    validate(CRNN(), CRNN(), val, C.RunConfig(), seen.append)
    assert sum(seen) == validation_clips(val) == 2 * n

    view = LiveView(Console(file=io.StringIO(), width=120, force_terminal=True),
                    refresh_per_second=50)
    with epoch_bar(view, 3, 4, 8, [record(epoch=2)]) as bar:
        bar.tick(4)
        time.sleep(0.1)
        tick = bar.validating(640)
        for _ in range(10):
            tick(64)
            time.sleep(0.03)
    shown = _shown(view)
    assert "4/4 steps | validating" in shown
    assert re.search(r"epoch 3 .* validating \d+/640 clips \| [\d.]+ clips/s \| ETA \d:\d\d "
                     r"\| ~[\d.]+ Wh ~32 W", shown), shown[-400:]
    assert NULL_BAR.validating(640) == NULL_BAR.tick
