"""kg CO2eq of library runs (RunRecorder, measure, EnergyMonitor) by the same builder
and defaults as greensed's trainer, resolved once per run; the study tools read it."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import cli

import greensed
from greensed import config
from greensed.energy import ConstantPowerMeter, Reading
from greensed.energy.carbon import CarbonIntensity, carbon_intensity
from greensed.errors import ConfigError
from greensed.library import EnergyMonitor, RunRecorder
from greensed.runlog import RunDir
from greensed.stopping import Decision
from greensed.train import preflight
from greensed.train.outcome import RunEnd
from greensed.train.session import Session

FRA = carbon_intensity(country_iso_code="FRA")


def reading(kwh: float) -> Reading:
    return Reading(kwh, 10.0, {"cpu": kwh}, {"cpu": "constant"}, "constant:100W")


def recorded(run_dir: Path, **carbon) -> RunRecorder:
    with RunRecorder(run_dir, metric="val_f1", max_epochs=2, hardware={"host": "here"},
                     device="cpu", **carbon) as rec:
        rec.add(1, {"val_f1": 0.4}, reading(0.5))
        rec.add(2, {"val_f1": 0.5}, reading(1.5))
    return rec


def test_a_library_run_records_co2_with_its_source(tmp_path, monkeypatch, capsys):
    run = tmp_path / "fra"
    recorded(run, country_iso_code="fra")
    records, s = RunDir(run).read_epochs(), RunDir(run).read_summary()
    g = FRA.g_per_kwh
    assert g > 0 and FRA.source.startswith("codecarbon: FRA grid mix")
    assert [r.co2_kg for r in records] == pytest.approx([0.5 * g / 1000, 1.5 * g / 1000])
    assert [r.cumulative_co2_kg for r in records] == pytest.approx([0.5 * g / 1000,
                                                                     2.0 * g / 1000])
    assert (s.carbon_intensity_g_per_kwh, s.carbon_source) == (g, FRA.source)
    assert s.total_co2_kg == pytest.approx(2.0 * g / 1000)
    # config.toml holds the keys, as greensed train's [meter] does.
    assert config.from_toml_text(RunDir(run).config.read_text(), "x").meter.country_iso_code \
        == "fra"
    # The report's CO2 column and its note on the intensity.
    code, out, err = cli(monkeypatch, capsys, "report", run, "--metric", "val_f1",
                         "--format", "csv", "--no-plots", "--out", tmp_path / "report")
    assert code == 0, err
    (row,) = csv.DictReader((tmp_path / "report/runs.csv").open())
    assert float(row["co2_kg"]) == pytest.approx(2.0 * g / 1000)
    assert row["carbon_source"] == FRA.source


def test_the_default_is_the_trainers_world_average_and_a_given_one_is_labelled(tmp_path):
    default = recorded(tmp_path / "default").summary
    world = preflight.check_run_config(config.RunConfig())  # the trainer's default
    assert (default.carbon_intensity_g_per_kwh, default.carbon_source) == \
        (world.g_per_kwh, world.source) == (world.g_per_kwh,
                                            "codecarbon: world average (no country given)")
    given = recorded(tmp_path / "given", carbon_intensity=300).summary
    assert (given.carbon_source, given.total_co2_kg) == ("given: 300 g/kWh",
                                                         pytest.approx(0.6))


def test_measure_and_a_monitor_carry_the_intensity_to_the_recorder(tmp_path):
    ticks = iter(range(100))
    meter = ConstantPowerMeter(3.6e6, clock=lambda: float(next(ticks)))  # 1 kWh a window
    with greensed.measure(meter, carbon_intensity=250.0) as m:
        pass
    assert m.co2_kg == pytest.approx(0.25) and m.monitor.carbon.source == "given: 250 g/kWh"
    monitor = EnergyMonitor(meter, country_iso_code="FRA")
    rec = RunRecorder(tmp_path / "run", monitor=monitor, hardware={}, device="cpu")
    assert rec.carbon == FRA
    own = RunRecorder(tmp_path / "own", monitor=monitor, carbon_intensity=10.0)
    assert own.carbon == CarbonIntensity(10.0, "given: 10 g/kWh")


def test_an_unknown_country_fails_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match="country_iso_code = 'XYZ'"):
        RunRecorder(tmp_path / "run", country_iso_code="xyz")
    with pytest.raises(ConfigError, match="country_iso_code = 'XYZ'"):
        EnergyMonitor("none", country_iso_code="xyz")
    assert not (tmp_path / "run").exists()


def test_greensed_trainer_resolves_the_intensity_once_per_run(tmp_path, monkeypatch):
    """check_run_config resolves it; the session's records, summary and banner use
    that one (no second look-up)."""
    calls = []
    monkeypatch.setattr(preflight, "carbon_intensity",
                        lambda *a: calls.append(a) or CarbonIntensity(300.0, "given"))
    cfg = config.RunConfig()
    carbon = preflight.check_run_config(cfg)
    run = RunDir(tmp_path / "run")
    writer = SimpleNamespace(lost=[], lost_kwh_of=lambda epoch: 0.0)
    s = Session(cfg, run, None, SimpleNamespace(is_main=True), SimpleNamespace(name="m"),
                None, writer, SimpleNamespace(step=4), None, None, (1, 1, 2), 4, print,
                "", {"strong": 4}, {}, carbon)
    s.history.append(s.make_record(1, [0.1] * 5, {"objective": 0.3}, 8.0, 2.0, reading(2.0)))
    summary = s.summary(RunEnd.stopped(Decision(True, "max_epochs", "the cap")))
    assert len(calls) == 1
    assert s.history[0].co2_kg == pytest.approx(0.6)
    assert (summary.total_co2_kg, summary.carbon_source) == (pytest.approx(0.6), "given")
    assert json.dumps(summary.to_json())
