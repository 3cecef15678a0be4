"""greensed replay on hand-made full-run logs: stop epoch, energy saved and
relative F1 loss, computed by hand here for plateau, budget and target."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_run
from typer.testing import CliRunner

from greensed.cli import app
from greensed.config import StopConfig
from greensed.errors import ConfigError
from greensed.study import replay as rpl
from greensed.study.collect import collect

# Run 1: 0.1 kWh per epoch (cumulative 0.1 .. 0.8); max F1 0.56 at epoch 7.
F1_1 = [0.20, 0.40, 0.50, 0.55, 0.54, 0.53, 0.56, 0.52]
# Run 2: 0.2 kWh per epoch (cumulative 0.2 .. 1.6); max F1 0.47 first at epoch 5.
F1_2 = [0.10, 0.30, 0.45, 0.46, 0.47, 0.47, 0.47, 0.47]


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    write_run(tmp_path / "runs" / "16" / "1", F1_1, 0.1, batch_size=16, seed=1)
    write_run(tmp_path / "runs" / "16" / "2", F1_2, 0.2, batch_size=16, seed=2)
    return tmp_path / "runs"


def _one(run_dir: Path, spec: str) -> rpl.ReplayResult:
    (sr,) = collect([run_dir]).runs
    return rpl.replay_run(sr, rpl.parse_policy_spec(spec))


def test_plateau(runs: Path) -> None:
    # Patience 2 on run 1: best 0.55 at epoch 4, no gain at 5 and 6 -> stop after 6.
    r = _one(runs / "16" / "1", "plateau:patience=2")
    assert (r.stop_epoch, r.stop_policy) == (6, "plateau")
    assert r.kwh_at_stop == pytest.approx(0.6) and r.total_kwh == pytest.approx(0.8)
    assert r.saved == pytest.approx(1 - 0.6 / 0.8)  # 25 %
    assert r.f1_loss == pytest.approx((0.56 - 0.55) / 0.56)  # 1.8 %
    # Patience 3: epoch 7 improves, epoch 8 alone is not enough -> runs to the end.
    r = _one(runs / "16" / "1", "plateau:patience=3")
    assert (r.stop_epoch, r.stop_policy, r.saved, r.f1_loss) == (8, "", 0.0, 0.0)
    # Run 2: 0.47 at epoch 5, ties at 6 and 7 are no improvement -> stop after 7.
    r = _one(runs / "16" / "2", "plateau:patience=2")
    assert r.stop_epoch == 7 and r.saved == pytest.approx(1 - 1.4 / 1.6) and r.f1_loss == 0.0
    # min_delta: 0.55 -> 0.56 is not a gain of more than 0.02 (run 1, patience 3).
    r = _one(runs / "16" / "1", "plateau:patience=3,min_delta=0.02")
    assert r.stop_epoch == 7 and r.best_f1_to_stop == 0.56 and r.f1_loss == 0.0


def test_budget(runs: Path) -> None:
    # Run 1: after epoch 3, 0.3 spent + 0.1 predicted > 0.35 -> stop at 3.
    r = _one(runs / "16" / "1", "budget:kwh=0.35")
    assert (r.stop_epoch, r.stop_policy) == (3, "budget")
    assert r.saved == pytest.approx(1 - 0.3 / 0.8)
    assert r.f1_loss == pytest.approx((0.56 - 0.50) / 0.56)
    # Run 2: 0.2 spent + 0.2 predicted > 0.35 already after epoch 1.
    r = _one(runs / "16" / "2", "budget:kwh=0.35")
    assert r.stop_epoch == 1 and r.kwh_at_stop == pytest.approx(0.2)
    assert r.saved == pytest.approx(1 - 0.2 / 1.6)
    assert r.f1_loss == pytest.approx((0.47 - 0.10) / 0.47)


def test_target(runs: Path) -> None:
    r = _one(runs / "16" / "1", "target:f1=0.5")
    assert (r.stop_epoch, r.stop_policy, r.best_f1_to_stop) == (3, "target", 0.50)
    r = _one(runs / "16" / "2", "target:f1=0.5")  # never reached
    assert (r.stop_epoch, r.stop_policy, r.saved, r.f1_loss) == (8, "", 0.0, 0.0)


def test_aggregate_is_the_mean_over_runs(runs: Path) -> None:
    pols = [rpl.parse_policy_spec("plateau:patience=2"), rpl.parse_policy_spec("budget:kwh=0.35")]
    results, warnings = rpl.replay([runs], pols)
    assert not warnings and len(results) == 4
    t = rpl.summary_table(results)
    rows = {r[0]: dict(zip(t.columns, r, strict=True)) for r in t.rows}
    plateau = rows["plateau:patience=2"]
    assert plateau["Stop epoch"] == f"{(6 + 7) / 2:.1f}"
    assert plateau["Stopped early"] == "2"
    saved = ((1 - 0.6 / 0.8) + (1 - 1.4 / 1.6)) / 2
    assert plateau["Saved"] == f"{saved * 100:.1f}%" == "18.8%"
    loss = ((0.56 - 0.55) / 0.56 + 0.0) / 2
    assert plateau["F1 loss (rel.)"] == f"{loss * 100:.1f}%" == "0.9%"
    budget = rows["budget:kwh=0.35"]
    assert budget["Saved"] == f"{((1 - 0.3 / 0.8) + (1 - 0.2 / 1.6)) / 2 * 100:.1f}%"
    assert budget["kWh at stop"] == "0.25"  # (0.3 + 0.2) / 2


def test_policy_spec_parsing() -> None:
    p = rpl.parse_policy_spec("plateau+marginal:patience=4,min_f1_per_kwh=0.5,window=3,"
                              "combine=all,warmup=2")
    assert p.cfg.policies == ("plateau", "marginal")
    assert (p.cfg.plateau.patience, p.cfg.marginal.min_f1_per_kwh,
            p.cfg.marginal.window) == (4, 0.5, 3)
    assert (p.cfg.combine, p.cfg.warmup_epochs) == ("all", 2)
    p = rpl.parse_policy_spec("target:f1=1", StopConfig(metric="student_f1"))
    assert p.cfg.target.value == 1.0 and isinstance(p.cfg.target.value, float)
    assert p.cfg.metric == "student_f1"
    with pytest.raises(ConfigError, match="unknown key 'patiense'.*did you mean 'patience'"):
        rpl.parse_policy_spec("plateau:patiense=3")
    with pytest.raises(ConfigError, match="'patience' = 'x' has the wrong type"):
        rpl.parse_policy_spec("plateau:patience=x")
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        rpl.parse_policy_spec("plateau:5")


def test_unknown_policy_and_missing_value_fail_before_replaying(runs: Path) -> None:
    with pytest.raises(ConfigError, match="unknown stop policy 'platau'"):
        rpl.replay([runs], [rpl.parse_policy_spec("platau:patience=3")])
    with pytest.raises(ConfigError, match="needs a budget"):
        rpl.replay([runs], [rpl.parse_policy_spec("budget")])


def test_run_stopped_early_is_flagged(tmp_path: Path) -> None:
    write_run(tmp_path / "r", F1_1[:5], 0.1, summary={"stop_policy": "plateau"})
    _, warnings = rpl.replay([tmp_path], [rpl.parse_policy_spec("target:f1=0.9")])
    assert len(warnings) == 1 and "stopped early (plateau)" in warnings[0]


def test_cli_replay_flags_and_specs_side_by_side(runs: Path) -> None:
    res = CliRunner().invoke(app, [
        "replay", str(runs), "--stop", "plateau", "--patience", "2",
        "--policy", "budget:kwh=0.35", "--policy", "target:f1=0.5", "--format", "csv"])
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    summary = lines[lines.index("# Replay, mean over runs (saved % and F1 loss: mean of "
                                "per-run values)") + 2:]
    assert [ln.split(",")[0] for ln in summary] == [
        "plateau:patience=2", "budget:kwh=0.35", "target:f1=0.5"]
    assert summary[0].split(",")[6] == "18.8%"
    res = CliRunner().invoke(app, ["replay", str(runs)])
    assert isinstance(res.exception, ConfigError)


def test_forecast_csv_one_row_per_epoch_the_forecast_forecast(tmp_path: Path) -> None:
    import csv
    import math

    f1 = [round(0.6 - 0.5 * math.exp(-e / 6) + 0.01 * (-1) ** e, 4) for e in range(1, 31)]
    write_run(tmp_path / "r" / "8" / "1", f1, 0.1, batch_size=8, seed=1)
    out = tmp_path / "fc.csv"
    res = CliRunner().invoke(app, [
        "replay", str(tmp_path / "r"), "--policy",
        "forecast:min_gain_per_kwh=0,min_prob=0.05,min_epochs=12", "--policy",
        "plateau:patience=3", "--metric", "student_f1", "--forecast-csv", str(out),
        "--csv", str(tmp_path / "replay.csv")])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(open(out)))
    for col in ("run", "epoch", "metric", "predicted_best", "lo95", "hi95", "lo50", "hi50"):
        assert col in rows[0]
    # the forecast policy only (plateau forecasts nothing), from epoch 12 to its stop
    assert {r["policy"] for r in rows} == {"forecast:min_gain_per_kwh=0,min_prob=0.05,"
                                           "min_epochs=12"}
    epochs = [int(r["epoch"]) for r in rows]
    (result,) = [r for r in csv.DictReader(open(tmp_path / "replay.csv"))
                 if r["policy"].startswith("forecast")]
    stop = int(result["stop_epoch"])
    assert epochs == list(range(12, stop + 1)) and stop < 30
    for r in rows:
        assert r["metric"] == "student_f1" and float(r["realised_best"]) == max(f1)
        assert float(r["lo95"]) <= float(r["lo50"]) <= float(r["predicted_best"]) \
            <= float(r["hi50"]) <= float(r["hi95"])
        assert float(r["observed_best"]) == max(f1[:int(r["epoch"])])
