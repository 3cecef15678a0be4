"""`greensed dcase RUN --baseline BASELINE`: the energy figures of a DCASE task 4
submission and the energy-weighted PSDS, checked by hand arithmetic."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import cli, write_run

from greensed.errors import GreensedError
from greensed.study.dcase import dcase_energy, dcase_table
from greensed.study.tables import render


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    # System: 4 epochs of 0.05 kWh = 0.2 kWh; baseline: 5 of 0.1 kWh = 0.5 kWh.
    system = write_run(tmp_path / "mine", [0.3, 0.4, 0.5, 0.5], 0.05,
                       psds={"psds1": 0.36, "psds2": 0.55})
    base = write_run(tmp_path / "baseline", [0.3, 0.4, 0.5, 0.5, 0.5], 0.1,
                     psds={"psds1": 0.34, "psds2": 0.52})
    return system, base


def test_normalised_energy_and_energy_weighted_psds(pair):
    d = dcase_energy(*pair)
    assert d.system.kwh == pytest.approx(0.2) and d.baseline.kwh == pytest.approx(0.5)
    assert d.normalised == pytest.approx(0.2 / 0.5)
    # EW-PSDS = PSDS x kWh_baseline / kWh_system (Ronchini & Serizel, 2023).
    assert d.ew_psds("psds1") == pytest.approx(0.36 * 0.5 / 0.2)  # 0.9
    assert d.ew_psds("psds2") == pytest.approx(0.55 * 0.5 / 0.2)  # 1.375
    assert d.warnings == []
    rows = {r[0]: r[1:] for r in dcase_table(d).rows}
    assert rows["Training energy (kWh)"] == ["0.2", "0.5"]
    assert rows["Normalised energy (kWh / kWh_baseline)"] == ["0.4", "1"]
    assert rows["EW-PSDS1"] == ["0.9", "0.34"] and rows["EW-PSDS2"] == ["1.375", "0.52"]


def test_cli_prints_the_figures(pair, monkeypatch, capsys):
    code, out, err = cli(monkeypatch, capsys, "dcase", pair[0], "--baseline", pair[1])
    assert code == 0, err
    assert "EW-PSDS1" in out and "0.9 " in out
    code, out, _ = cli(monkeypatch, capsys, "dcase", pair[0], "--baseline", pair[1],
                       "--format", "csv")
    assert code == 0 and "EW-PSDS2,1.375,0.52" in out


def test_other_hardware_is_warned_about(pair, tmp_path):
    other = write_run(tmp_path / "other", [0.3, 0.4, 0.4, 0.4], 0.15, gpu="NVIDIA V100")
    d = dcase_energy(pair[0], other)
    assert len(d.warnings) == 1 and "same hardware" in d.warnings[0]
    assert any("same hardware" in n for n in dcase_table(d).notes)
    # The baseline needs no psds.json: its energy is what the normalisation needs.
    assert d.ew_psds("psds1") == pytest.approx(0.36 * 0.6 / 0.2)


def test_missing_psds_or_energy_are_one_line_errors(pair, tmp_path, monkeypatch, capsys):
    no_psds = write_run(tmp_path / "nopsds", [0.3], 0.1)
    with pytest.raises(GreensedError, match=r"psds.json: no PSDS1 or PSDS2 .*greensed "
                                            r"evaluate"):
        dcase_energy(no_psds, pair[1])
    no_energy = write_run(tmp_path / "noenergy", [0.3], 0.0, psds={"psds1": 0.3},
                          summary={"total_kwh": None})
    with pytest.raises(GreensedError, match="no energy reading"):
        dcase_energy(pair[0], no_energy)
    code, _, err = cli(monkeypatch, capsys, "dcase", no_psds, "--baseline", pair[1])
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    code, _, err = cli(monkeypatch, capsys, "dcase", tmp_path / "absent", "--baseline", pair[1])
    assert code == 2 and "absent" in err


def test_csv_of_the_table_is_plain_numbers(pair):
    text = render(dcase_table(dcase_energy(*pair)), "csv")
    assert text.splitlines()[0] == "Figure,System,Baseline"
    assert "Training energy (kWh),0.2,0.5" in text
