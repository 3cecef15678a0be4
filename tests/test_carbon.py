"""CO2, labelled: kg CO2eq = kWh x g/kWh / 1000, with the intensity given or resolved
offline from CodeCarbon's data, and its source named."""

from __future__ import annotations

import json

import pytest
from helpers import write_run

from greensed import config as C
from greensed.energy.carbon import CarbonIntensity, carbon_intensity
from greensed.errors import ConfigError
from greensed.study import report as rp
from greensed.study.tables import render


def test_given_intensity_is_used_and_named():
    ci = carbon_intensity(300.0, country_iso_code="FRA")
    assert ci == CarbonIntensity(300.0, "given: 300 g/kWh")
    assert ci.kg(2.5) == pytest.approx(0.75) and ci.kg(None) is None


def test_country_and_region_from_codecarbon_offline_data():
    from codecarbon.input import DataSource

    mix = DataSource().get_global_energy_mix_data()["FRA"]
    fra = carbon_intensity(country_iso_code="fra")
    assert fra.g_per_kwh == pytest.approx(mix["carbon_intensity"], abs=1e-3)
    assert fra.source == f"codecarbon: FRA grid mix {mix['year']}"
    usa = carbon_intensity(country_iso_code="USA")
    cal = carbon_intensity(country_iso_code="USA", region="California")
    assert cal.source == "codecarbon: USA california regional data"
    assert cal.g_per_kwh != usa.g_per_kwh
    nowhere = carbon_intensity(country_iso_code="USA", region="atlantis")
    assert nowhere.g_per_kwh == usa.g_per_kwh and "no regional data" in nowhere.source


def test_without_a_country_the_world_average_says_so():
    ci = carbon_intensity()
    assert ci.g_per_kwh == 475.0 and ci.source == "codecarbon: world average (no country given)"


def test_an_unknown_country_is_one_line():
    with pytest.raises(ConfigError, match=r"country_iso_code = 'XYZ': not in CodeCarbon"):
        carbon_intensity(country_iso_code="xyz")


def test_meter_keys_are_typed_and_checked():
    cfg = C.override(C.RunConfig(), {"meter": {"carbon_intensity": 250, "country_iso_code":
                                               "DEU"}}, "test")
    assert cfg.meter.carbon_intensity == 250.0 and cfg.meter.country_iso_code == "DEU"
    with pytest.raises(ConfigError, match="carbon_intensity"):
        C.override(C.RunConfig(), {"meter": {"carbon_intensity": -1}}, "test")


def test_report_has_a_co2_column_after_energy_and_names_the_source(tmp_path):
    for seed, kg in ((1, 0.15), (2, 0.25)):
        write_run(tmp_path / "runs" / str(seed), [0.3, 0.5], 0.25, seed=seed, summary={
            "total_co2_kg": kg, "carbon_intensity_g_per_kwh": 300.0,
            "carbon_source": "given: 300 g/kWh"})
    rep = rp.build_report([tmp_path / "runs"], by="batch", std="runs")
    t = rp.table1(rep)
    assert t.columns.index("CO2 (kg)") > t.columns.index("Total (kWh)")
    row = dict(zip(t.columns, t.rows[0], strict=True))
    assert row["CO2 (kg)"] == "0.20 ± 0.07"
    assert any("300 g/kWh, given: 300 g/kWh (2 runs)" in n for n in t.notes)
    runs_csv = render(rp.runs_table(rep), "csv").splitlines()
    assert runs_csv[0].endswith("co2_kg,carbon_intensity_g_per_kwh,carbon_source")
    assert runs_csv[1].endswith("0.15,300.0,given: 300 g/kWh")


def test_runs_without_co2_figures_read_as_missing(tmp_path):
    run = write_run(tmp_path / "old", [0.3, 0.5], 0.25)
    assert "total_co2_kg" not in json.loads((run / "summary.json").read_text())
    rep = rp.build_report([run], by="batch")
    row = dict(zip(rp.table1(rep).columns, rp.table1(rep).rows[0], strict=True))
    assert row["CO2 (kg)"] == "n/a (no CO2 figure)"
