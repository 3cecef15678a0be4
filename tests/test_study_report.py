"""greensed report on hand-made run logs: every column of Tables 1 and 2,
computed by hand here from the logged numbers."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest
from helpers import write_run
from typer.testing import CliRunner

from greensed.cli import app
from greensed.errors import GreensedError
from greensed.study import report as rp

# Batch 16, three seeds. Per-epoch F1 (teacher), kWh per epoch, seconds per epoch.
A = ([0.30, 0.45, 0.58, 0.60, 0.59], 0.10, 600.0)  # max .60 @4; 95% = .57 -> @3; 40% -> @2
B = ([0.20, 0.41, 0.50, 0.52, 0.55], 0.12, 900.0)  # max .55 @5; 95% = .5225 -> @5; 40% -> @2
C = ([0.10, 0.20, 0.35, 0.38, 0.30], 0.08, 480.0)  # max .38 @4; 95% = .361 -> @4; never 40%
D = ([0.42, 0.44], 0.05, 120.0)  # batch 8, a single run


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    write_run(root / "16" / "1", *A, batch_size=16, seed=1, psds={"psds1": 0.35, "psds2": 0.5})
    write_run(root / "16" / "2", *B, batch_size=16, seed=2)
    write_run(root / "16" / "3", *C, batch_size=16, seed=3, gpu=None, cpu="Test CPU")
    write_run(root / "8" / "1", *D, batch_size=8, seed=1)
    return root


def _approx(x: float) -> object:
    return pytest.approx(x, rel=1e-9, abs=1e-12)


def test_per_run_figures(runs: Path) -> None:
    rep = rp.build_report([runs], by="batch")
    a, b, c = rep.groups["16"]
    assert (a.max_f1, a.best_epoch, a.kwh_at_max) == (0.60, 4, _approx(0.4))
    assert a.near_max_f1 == _approx(0.57)
    assert a.kwh_at_near_max == _approx(0.3)  # epoch 3 (0.58 >= 0.57)
    assert a.kwh_at_target == _approx(0.2)  # epoch 2 (0.45 >= 0.40)
    assert a.extra_cost == _approx((0.4 - 0.3) / 0.3)
    assert a.total_kwh == _approx(0.5) and a.total_s == 3000.0
    assert a.wh_per_epoch == _approx(500 / 5) and a.wh_per_min == _approx(500 / 50)
    assert a.psds == {"psds1": 0.35, "psds2": 0.5}
    # B reaches 95 % of its max only at the max epoch: no extra cost.
    assert (b.kwh_at_near_max, b.kwh_at_max, b.extra_cost) == (_approx(0.6), _approx(0.6), 0.0)
    assert b.wh_per_min == _approx(600 / 75)
    # C never reaches 40 %.
    assert c.kwh_at_target is None and c.max_f1 == 0.38 and c.kwh_at_max == _approx(0.32)
    assert [s.group for s in rep.groups["8"]] == ["8"]


def test_table1_mean_and_sample_std_over_runs(runs: Path) -> None:
    rep = rp.build_report([runs], by="batch", std="runs")
    t = rp.table1(rep)
    assert list(rep.groups) == ["8", "16"]  # numeric order, not string order
    row = dict(zip(t.columns, t.rows[1], strict=True))
    f1 = [60.0, 55.0, 38.0]
    assert row["Runs"] == "3"
    assert row["Max F1"] == f"{statistics.mean(f1):.1f} ± {statistics.stdev(f1):.1f}"
    assert row["Max F1"] == "51.0 ± 11.5"
    # Time: 3000, 4500, 2400 s -> mean 55:00, sample std 1081.7 s = 18:02 (under 1 h: h:mm:ss).
    assert statistics.stdev([3000, 4500, 2400]) == pytest.approx(1081.665, abs=1e-3)
    assert row["Time"] == "00:55:00 ± 0:18:02"
    assert row["Total (kWh)"] == "0.50 ± 0.10"  # 0.5, 0.6, 0.4
    assert row["Epoch (Wh)"] == "100.0 ± 20.0"  # 100, 120, 80 Wh
    wh_min = [500 / 50, 600 / 75, 400 / 40]  # total Wh / total minutes, per run
    assert row["Minute (Wh)"] == (f"{statistics.mean(wh_min):.1f} ± "
                                  f"{statistics.stdev(wh_min):.1f}")
    # A single run has no standard deviation.
    single = dict(zip(t.columns, t.rows[0], strict=True))
    assert single["Max F1"] == "44.0" and single["Runs"] == "1"
    assert single["Total (kWh)"] == "0.10"


def test_table2_energy_at_f1_levels(runs: Path) -> None:
    rep = rp.build_report([runs], by="batch", std="runs")
    t = rp.table2(rep)
    row = dict(zip(t.columns, t.rows[1], strict=True))
    near = [0.95 * 0.60, 0.95 * 0.55, 0.95 * 0.38]
    agg = rp.Agg.of([s.near_max_f1 for s in rep.groups["16"]])
    assert (agg.mean, agg.std) == (_approx(statistics.mean(near)), _approx(statistics.stdev(near)))
    # 48.45 sits on a rounding boundary: either neighbour is a correct print.
    assert row["95% Max F1"] in ("48.4 ± 11.0", "48.5 ± 11.0")
    # 40 %: A at 0.2, B at 0.24 kWh; C never: mean over the two that did.
    assert statistics.stdev([0.2, 0.24]) == pytest.approx(0.028284, abs=1e-6)
    assert row["@F1 = 40%"] == "0.22 ± 0.03 (1 of 3 never reached)"
    k95, kmax = [0.3, 0.6, 0.32], [0.4, 0.6, 0.32]
    assert row["@95% Max F1"] == f"{statistics.mean(k95):.2f} ± {statistics.stdev(k95):.2f}"
    assert row["@Max F1"] == f"{statistics.mean(kmax):.2f} ± {statistics.stdev(kmax):.2f}"
    assert row["@Max F1"] == "0.44 ± 0.14"
    assert row["All epochs"] == "0.50 ± 0.10"
    extra = [(0.4 - 0.3) / 0.3, 0.0, 0.0]
    assert row["Extra 95%→Max (mean of runs)"] == (
        f"{statistics.mean(extra) * 100:.0f}% ± {statistics.stdev(extra) * 100:.0f}%")
    assert row["Extra 95%→Max (mean of runs)"] == "11% ± 19%"
    of_means = (statistics.mean(kmax) - statistics.mean(k95)) / statistics.mean(k95)
    assert row["Extra 95%→Max (of means)"] == f"{of_means:.0%}" == "8%"


def test_default_std_is_the_seed_spread_pooled_within_cells(runs: Path) -> None:
    """The paper's way: batch 16 holds an A100 cell (seeds 1, 2) and a CPU cell (seed 3);
    its std is the seed-to-seed spread within cells, not the spread across hardware."""
    rep = rp.build_report([runs], by="batch")
    row = dict(zip(rp.table1(rep).columns, rp.table1(rep).rows[1], strict=True))
    a100 = [60.0, 55.0]  # the CPU cell has one seed: no degree of freedom
    pooled = math.sqrt(sum((v - statistics.mean(a100)) ** 2 for v in a100) / (len(a100) - 1))
    assert row["Max F1"] == f"{statistics.mean([60.0, 55.0, 38.0]):.1f} ± {pooled:.1f}"
    assert row["Max F1"] == "51.0 ± 3.5"
    agg = rp.Agg.of_cells([[1.0, 2.0, 3.0], [10.0, 12.0], [7.0]])
    ss = (1 + 0 + 1) + (1 + 1)  # squared deviations from each cell's own mean
    assert agg.mean == pytest.approx(35.0 / 6) and agg.std == pytest.approx(math.sqrt(ss / 3))
    assert rp.Agg.of_cells([[1.0], [2.0]]).std is None


def _lose_energy(run: Path, epoch: int) -> None:
    """The meter missed ``epoch``: null energy there and in every later cumulative."""
    lines = [json.loads(ln) for ln in (run / "epochs.jsonl").read_text().splitlines()]
    for rec in lines[epoch - 1:]:
        rec["cumulative_kwh"] = None
    lines[epoch - 1].update(energy_kwh=None, avg_power_w=None, energy_status="error: failed")
    (run / "epochs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_estimated_energy_is_marked_in_the_tables_with_how(runs: Path) -> None:
    _lose_energy(runs / "16" / "2", 3)
    rep = rp.build_report([runs], by="batch", reference_kwh=1.0)
    for t in rp.tables(rep):
        rows = {r[0]: dict(zip(t.columns, r, strict=True)) for r in t.rows}
        marked = [c for c, v in rows["16"].items() if v.startswith("~")]
        assert "All epochs" in marked or "Total (kWh)" in marked, (t.title, rows["16"])
        assert not any(v.startswith("~") for v in rows["8"].values())  # no estimate there
        (note,) = [n for n in t.notes if n.startswith("~: ")]
        assert f"{runs / '16' / '2'} epoch 3 (meter test)" in note
        assert "mean power of its measured epochs x the epoch's duration" in note
    t1 = rp.table1(rep)
    assert "Max F1" not in [c for c, v in zip(t1.columns, t1.rows[1], strict=True)
                            if v.startswith("~")]
    # Said once in the table (the mark's note), every line still on stderr.
    assert not any("estimated (meter failed there)" in n for n in t1.notes)
    assert any("energy of epoch 3 estimated" in w for w in rep.warnings)


def test_a_cell_without_spread_says_so(runs: Path) -> None:
    rep = rp.build_report([runs], by="batch")
    for t in rp.tables(rep):
        assert "No ± where there is no spread: batch 8: n=1" in t.notes
    # Two A100 runs, of batch 16 and 8: no two runs share a (hardware, batch) cell.
    rep = rp.build_report([runs / "16" / "1", runs / "8" / "1"], by="hardware")
    t1 = rp.table1(rep)
    assert t1.rows[0][2] == "52.0"  # max F1 60 and 44, and no ±
    assert ("No ± where there is no spread: hardware NVIDIA A100: 2 runs, one per "
            "hardware × batch cell (--std runs: their spread)") in t1.notes
    rep = rp.build_report([runs / "16" / "1", runs / "8" / "1"], by="hardware", std="runs")
    assert " ± " in rp.table1(rep).rows[0][2] and not any(
        n.startswith("No ±") for n in rp.table1(rep).notes)


def test_target_f1_in_percent_is_refused(runs: Path) -> None:
    with pytest.raises(GreensedError, match=r"--target-f1 40: F1 is a fraction .* use 0.4"):
        rp.build_report([runs], target_f1=40)


def test_no_run_reaching_the_target_is_reported_as_such(tmp_path: Path) -> None:
    write_run(tmp_path / "x", *C)
    row = rp.table2(rp.build_report([tmp_path]))
    assert row.rows[0][3] == "n/a (never reached)"
    write_run(tmp_path / "y", *C, seed=2)
    assert rp.table2(rp.build_report([tmp_path])).rows[0][3] == "n/a (2 of 2 never reached)"


def test_group_by_hardware_and_recipe(runs: Path) -> None:
    rep = rp.build_report([runs], by="hardware")
    assert {k: len(v) for k, v in rep.groups.items()} == {"NVIDIA A100": 3, "Test CPU": 1}
    write_run(runs / "other", *D, recipe="paper-bs8")
    rep = rp.build_report([runs], by="recipe")
    assert {k: len(v) for k, v in rep.groups.items()} == {"paper-bs8": 1, "test": 4}


def test_batch_from_config_when_summary_is_missing(tmp_path: Path) -> None:
    write_run(tmp_path / "r", *A, batch_size=32, write_summary=False)
    with pytest.raises(GreensedError, match="no finished run .*killed and never resumed"):
        rp.build_report([tmp_path])  # incomplete: left out of the figures by default
    rep = rp.build_report([tmp_path], include_unfinished=True)
    assert list(rep.groups) == ["32"]
    s = rep.groups["32"][0]
    # No summary: totals from the last epoch's cumulative_kwh and the epoch durations.
    assert s.total_kwh == _approx(0.5) and s.total_s == 3000.0
    assert any("incomplete, figures cover its finished epochs only" in w for w in rep.warnings)


def test_duration_format_over_an_hour() -> None:
    agg = rp.Agg.of([8 * 3600 + 28 * 60 - 45 * 60, 8 * 3600 + 28 * 60 + 45 * 60])
    assert agg.std == pytest.approx(45 * 60 * math.sqrt(2))
    assert rp.fmt_duration(agg) == "08:28 ± 1:04"
    assert rp.fmt_duration(rp.Agg.of([4 * 3600 + 23 * 60])) == "04:23"


def test_normalised_by_reference_energy_and_energy_weighted_psds(runs: Path) -> None:
    rep = rp.build_report([runs / "16"], reference_kwh=0.5, std="runs")
    (t,) = [x for x in rp.tables(rep) if x.title.startswith("Hardware-normalised")]
    row = dict(zip(t.columns, t.rows[0], strict=True))
    assert row["All epochs"] == "1.00 ± 0.20"  # 0.5, 0.6, 0.4 over 0.5
    assert row["@Max F1"] == f"{statistics.mean([0.8, 1.2, 0.64]):.2f} ± " \
                             f"{statistics.stdev([0.8, 1.2, 0.64]):.2f}"
    # Only run A has psds.json: PSDS x kWh_ref / kWh_run = 0.35 x 0.5 / 0.5.
    assert row["PSDS1 × kWh_ref/kWh"] == "0.350 (2 of 3 no psds.json)"
    assert row["PSDS2 × kWh_ref/kWh"] == "0.500 (2 of 3 no psds.json)"


def test_reference_runs_are_matched_by_hardware(runs: Path, tmp_path: Path) -> None:
    write_run(tmp_path / "ref-a100", [0.5], 0.25)
    write_run(tmp_path / "ref-cpu", [0.5], 0.8, gpu=None, cpu="Test CPU")
    rep = rp.build_report([runs / "16"], by="hardware", std="runs",
                          reference_dirs=[tmp_path / "ref-a100", tmp_path / "ref-cpu"])
    t = rp.table_normalised(rep)
    rows = {r[0]: dict(zip(t.columns, r, strict=True)) for r in t.rows}
    assert rows["NVIDIA A100"]["Reference (kWh)"] == "0.25"
    assert rows["NVIDIA A100"]["All epochs"] == f"{statistics.mean([2.0, 2.4]):.2f} ± " \
                                                f"{statistics.stdev([2.0, 2.4]):.2f}"
    assert rows["Test CPU"]["All epochs"] == "0.50"  # 0.4 / 0.8
    assert not rep.warnings


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(GreensedError, match="no such run directory"):
        rp.build_report([tmp_path / "missing"])
    write_run(tmp_path / "r", *A)
    with pytest.raises(GreensedError, match="--by 'gpu'"):
        rp.build_report([tmp_path], by="gpu")
    with pytest.raises(GreensedError, match="--metric 'psds9': no epoch of the 1 run.* has "
                                            "it; they have: student_f1, teacher_f1"):
        rp.build_report([tmp_path], metric="psds9")


def test_cli_report_writes_tables_csv_and_pngs(runs: Path, tmp_path: Path) -> None:
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, ["report", str(runs), "--format", "markdown",
                                   "--out", str(out), "--reference-kwh", "0.5"])
    assert res.exit_code == 0, res.output
    assert "| 16 | 3 | 51.0 ± 3.5 |" in res.output  # seed std within the A100 cell
    assert "mean ± std over seeds, pooled within batch × hardware cells" in res.output
    for name in ("table1.csv", "table2.csv", "normalised.csv", "runs.csv"):
        assert (out / name).stat().st_size > 0
    assert (out / "runs.csv").read_text().count("\n") == 1 + 4
    for name in ("f1_vs_kwh.png", "wh_per_epoch.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    res = CliRunner().invoke(app, ["report", str(runs), "--reference", str(runs / "8" / "1"),
                                   "--reference-kwh", "1", "--out", str(out)])
    assert res.exit_code == 2 and "not both" in res.output
