"""PSDS every epoch: [validate] psds / --psds, the record's psds_s, and the PSDS metrics as
metrics like any other for the preflight, replay, report and bench-policies."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import cli, quiet, tiny_config, tweak, write_run
from typer.testing import CliRunner

from greensed import config as C
from greensed.cli import app
from greensed.data.desed import Subset
from greensed.errors import ConfigError
from greensed.model.crnn import CRNN
from greensed.runlog import EpochRecord
from greensed.runlog.flat import epochs_csv
from greensed.train import preflight
from greensed.train.validate import PSDS_METRICS, PSDS_TIME, psds_on, validate, validation_tensors

F1 = [0.20, 0.40, 0.50, 0.55, 0.56, 0.57, 0.58, 0.58, 0.59, 0.59, 0.60, 0.60, 0.60, 0.61]
# PSDS1 peaks at epoch 6 and falls while the F1 still creeps up.
PSDS1 = [0.05, 0.10, 0.20, 0.30, 0.35, 0.36, 0.30, 0.29, 0.28, 0.27, 0.26, 0.25, 0.25, 0.24]


def test_validate_psds_option_and_its_default():
    cfg = C.RunConfig()
    assert cfg.validate.psds is None and not psds_on(cfg)
    assert psds_on(tweak(cfg, **{"stop.metric": "teacher_psds1"}))
    assert psds_on(tweak(cfg, **{"validate.psds": True}))
    assert not psds_on(tweak(cfg, **{"validate.psds": False, "stop.metric": "student_f1"}))
    loaded = C.from_toml_text("[validate]\npsds = true\n", "r.toml")
    assert loaded.validate.psds is True
    with pytest.raises(ConfigError, match=r"\[validate\]: unknown key 'psd'"):
        C.from_toml_text("[validate]\npsd = true\n", "r.toml")


def test_preflight_takes_psds_metrics_and_refuses_them_without_psds():
    for name in PSDS_METRICS:
        preflight.check_metric(name, "greensed")
    cfg = tweak(C.RunConfig(), **{"stop.metric": "teacher_psds1", "train.protocol": "greensed"})
    preflight.check_run_config(cfg)
    with pytest.raises(ConfigError, match=r"^stop.metric = 'teacher_psds1' needs PSDS every "
                                          r"epoch, but \[validate\] psds = false$"):
        preflight.check_run_config(tweak(cfg, **{"validate.psds": False}))


def _val_subset() -> Subset:
    rng = np.random.default_rng(0)
    events = [(0, 1, 0.5, 3.0), (1, 4, 1.0, 4.0), (2, 8, 2.0, 9.0)]
    strong = np.zeros((3, 10, 156), np.uint8)
    for c, k, on, off in events:
        strong[c, k, int(on * 15.625):int(np.ceil(off * 15.625))] = 1
    return Subset("validation", [f"{i}.wav" for i in range(3)],
                  (rng.random((3, 626, 128)) * 3).astype(np.float16), strong,
                  strong.max(axis=2), events, durations_s=[10.0, 4.0, 10.0])


def test_validate_adds_four_psds_metrics_and_their_time(one_torch_thread):
    torch.manual_seed(0)
    student, teacher = CRNN(), CRNN()
    tensors = validation_tensors(_val_subset(), torch.device("cpu"), clip_s=10.0)
    on = validate(student, teacher, tensors, tweak(C.RunConfig(), **{"validate.psds": True}))
    for name in PSDS_METRICS:
        assert 0.0 <= on[name] <= 1.0, name
    assert on[PSDS_TIME] > 0.0
    off = validate(student, teacher, tensors, C.RunConfig())
    assert not set(PSDS_METRICS) & set(off) and PSDS_TIME not in off
    assert off["teacher_f1"] == on["teacher_f1"]


def test_record_reads_psds_s_and_old_records_without_it():
    old = EpochRecord.from_json({"schema": 1, "epoch": 1, "metrics": {"teacher_f1": 0.5}})
    assert old.psds_s is None and old.metric("psds_s") is None
    new = EpochRecord.from_json({"schema": 1, "epoch": 1, "psds_s": 0.12,
                                 "metrics": {"teacher_psds1": 0.3}})
    assert new.psds_s == 0.12 and new.metric("teacher_psds1") == 0.3
    header = epochs_csv([new]).splitlines()[0].split(",")
    assert "psds_s" in header and "teacher_psds1" in header


@pytest.fixture
def psds_runs(tmp_path: Path) -> Path:
    """Three seeds of 14 epochs, 0.1 kWh each, with teacher_f1 = F1, teacher_psds1 = PSDS1."""
    for seed in (1, 2, 3):
        d = write_run(tmp_path / "runs" / "16" / str(seed), F1, 0.1, batch_size=16, seed=seed)
        records = [json.loads(line) for line in (d / "epochs.jsonl").read_text().splitlines()]
        for rec, value in zip(records, PSDS1, strict=True):
            rec["metrics"]["teacher_psds1"] = value
            rec["psds_s"] = 0.2
        (d / "epochs.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    return tmp_path / "runs"


def test_replay_stops_on_teacher_psds1(psds_runs: Path) -> None:
    run = str(psds_runs / "16" / "1")
    res = CliRunner().invoke(app, ["replay", run, "--stop", "plateau", "--patience", "2",
                                   "--min-delta", "0.01", "--format", "csv"])
    assert res.exit_code == 0, res.output
    on_f1 = res.output
    res = CliRunner().invoke(app, ["replay", run, "--stop", "plateau", "--patience", "2",
                                   "--min-delta", "0.01", "--metric", "teacher_psds1",
                                   "--format", "csv"])
    assert res.exit_code == 0, res.output
    # PSDS1 gains more than 0.01 last at epoch 5 (0.35; 0.36 is not enough), none at 6
    # and 7 -> stop after 7 (0.7 kWh); on the F1 the stop differs.
    row = next(csv.reader([ln for ln in res.output.splitlines() if ln.startswith(run)]))
    assert row[2:5] == ["7/14", "plateau", "0.70"], row
    f1_row = next(csv.reader([ln for ln in on_f1.splitlines() if ln.startswith(run)]))
    assert f1_row[2] != "7/14", f1_row


def test_report_reads_psds_as_the_metric(psds_runs: Path, tmp_path: Path,
                                         monkeypatch, capsys) -> None:
    code, out, err = cli(monkeypatch, capsys, "report", psds_runs, "--metric", "teacher_psds1",
                         "--out", tmp_path / "rep", "--format", "csv")
    assert code == 0, err
    assert "max teacher_psds1" in out
    with open(tmp_path / "rep" / "table2.csv") as f:
        (row,) = list(csv.DictReader(f))
    # Max PSDS1 0.36; energy to reach 95 % of it (0.342): epoch 5, 0.5 kWh; the max: 0.6 kWh.
    assert float(row["Max F1 mean"]) == pytest.approx(36.0)
    assert float(row["@95% Max F1 mean"]) == pytest.approx(0.5)
    assert float(row["@Max F1 mean"]) == pytest.approx(0.6)


def test_bench_policies_watch_and_keep_by_psds(psds_runs: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench-policies", str(psds_runs), "--metric", "teacher_psds1",
                                   "--checkpoint-metric", "teacher_psds1",
                                   "--out", str(tmp_path / "bench"), "--format", "csv"])
    assert res.exit_code == 0, res.output
    oracle = next(line for line in res.output.splitlines() if line.startswith("oracle,best"))
    assert oracle.split(",")[-1] == "6.0", oracle  # PSDS1's best epoch, not F1's (14)


@pytest.mark.slow
def test_training_with_psds_records_it_and_stops_on_teacher_psds1(tiny_dataset, tmp_path):
    from greensed.train.loop import train

    cfg = tweak(tiny_config(tiny_dataset, tmp_path / "cache", epochs=6), **{
        "validate.psds": True, "stop.metric": "teacher_psds1", "stop.policies": ["plateau"],
        "stop.plateau.patience": 1, "stop.plateau.min_delta": 0.5})
    result = train(cfg, tmp_path / "run", report=quiet)
    records = [json.loads(line) for line in (tmp_path / "run" / "epochs.jsonl").read_text()
               .splitlines()]
    for rec in records:
        assert set(PSDS_METRICS) <= set(rec["metrics"]) and rec["psds_s"] > 0
    # No epoch gains 0.5 PSDS1 on the one before: the plateau fires after epoch 2.
    assert result.summary.stop_policy == "plateau" and len(records) == 2
    assert result.summary.best_metric == "teacher_psds1"


def test_train_flag_sets_validate_psds():
    from greensed.cli.train import _train_flags

    common = dict(data=None, epochs=None, batch_size=None, seed=None, device=None, meter=None,
                  skip_bad_audio=None, max_steps_per_epoch=None, cache_dir=None,
                  precision=None, compile_=None)
    assert _train_flags(**common, psds=True)["validate"] == {"psds": True}
    assert _train_flags(**common, psds=False)["validate"] == {"psds": False}
    assert _train_flags(**common)["validate"] == {}
    cfg = C.override(C.RunConfig(), _train_flags(**common, psds=True), "command line")
    assert psds_on(cfg)
