"""The run log's typed records: docs agree with the dataclasses, reads are tolerant
of older logs and refuse newer ones, and a real schema-1 run directory still reads."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from greensed.cli import app
from greensed.runlog import (
    SCHEMA_VERSION,
    EpochRecord,
    Heartbeat,
    Losses,
    LostEntry,
    RunDir,
    RunLogError,
    RunStatus,
    Summary,
    load_run,
)

DOCS = Path(__file__).resolve().parent.parent / "docs" / "runlog.md"
FIXTURE = Path(__file__).resolve().parent / "fixtures" / "schema1-run"


def documented_fields(section: str) -> set[str]:
    """The backticked names in the first column of the table under ``## section``."""
    text = DOCS.read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in body.splitlines():
        cells = line.split("|")
        if len(cells) > 2 and cells[1].strip() not in ("field", "key", "---"):
            names.update(re.findall(r"`([a-z_0-9]+)`", cells[1]))
    return names


@pytest.mark.parametrize(("section", "cls"), [("Epoch record", EpochRecord),
                                              ("Summary", Summary),
                                              ("Lost entry", LostEntry),
                                              ("Heartbeat", Heartbeat)])
def test_docs_list_exactly_the_record_fields(section, cls):
    assert documented_fields(section) == {f.name for f in dataclasses.fields(cls)}


def test_docs_name_every_loss_field():
    loss_row = next(ln for ln in DOCS.read_text().splitlines() if ln.startswith("| `loss` |"))
    assert set(re.findall(r"`([a-z_]+)`", loss_row.split("|")[3])) == {
        f.name for f in dataclasses.fields(Losses)}


def test_round_trip_and_metric_lookup():
    r = EpochRecord(epoch=3, steps=30, loss=Losses(total=1.5), metrics={
        "teacher_f1": 0.5, "student_f1": float("nan"), "teacher_class_f1": [0.1] * 10},
        energy_kwh=0.01, cumulative_kwh=0.03)
    assert EpochRecord.from_json(r.to_json()) == r
    assert r.metric("teacher_f1") == 0.5 and r.metric("student_f1") is None  # not finite
    assert r.metric("loss.total") == 1.5 and r.metric("cumulative_kwh") == 0.03
    assert r.metric("nonexistent") is None and r.metric("teacher_class_f1") is None


def test_from_json_is_tolerant_of_older_and_unknown_fields():
    r = EpochRecord.from_json({"schema": 1, "epoch": 1, "added_later": {"x": 1},
                               "loss": {"total": 1.0, "new_term": 2.0}}, "e:1")
    assert r.epoch == 1 and r.energy_kwh is None and r.loss.total == 1.0 and r.meter == ""
    s = Summary.from_json({"schema": 1, "status": "finished", "meter": None}, "s")
    assert s.finished and s.meter == "" and s.lost_kwh == 0.0


@pytest.mark.parametrize(("raw", "message"), [
    ({"schema": SCHEMA_VERSION + 1, "epoch": 1}, "newer than this greensed understands"),
    ({"schema": 0, "epoch": 1}, "schema 0 is not a greensed run-log version"),
    ({"epoch": 1}, "schema None is not"),
    ({"schema": 1}, "no 'epoch' field"),
    ({"schema": 1, "epoch": "one"}, "field 'epoch' = 'one' is not an integer"),
    ([1, 2], "expected a JSON object, got list"),
])
def test_bad_epoch_records_are_one_line_errors(raw, message):
    with pytest.raises(RunLogError, match=re.escape(message)) as err:
        EpochRecord.from_json(raw, "run/epochs.jsonl:4")
    assert str(err.value).startswith("run/epochs.jsonl:4: ") and "\n" not in str(err.value)


def test_summary_status_is_the_enum_and_unknown_status_is_an_error():
    assert Summary.from_json({"schema": 1, "status": "diverged"}).status is RunStatus.DIVERGED
    with pytest.raises(RunLogError, match="'paused' is not one of finished, interrupted"):
        Summary.from_json({"schema": 1, "status": "paused"}, "summary.json")


def test_newer_schema_in_a_run_directory_names_file_and_line(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    lines = (run / "epochs.jsonl").read_text().splitlines()
    newer = json.loads(lines[1])
    newer["schema"] = SCHEMA_VERSION + 1
    lines[1] = json.dumps(newer)
    (run / "epochs.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunLogError, match=rf"epochs\.jsonl:2: schema {SCHEMA_VERSION + 1} is "):
        RunDir(run).read_epochs()


def test_keep_epochs_rewrites_lines_as_written(tmp_path):
    d = RunDir(tmp_path)
    (tmp_path / "epochs.jsonl").write_text(
        '{"schema": 1, "epoch": 1, "future": 7}\n{"schema": 1, "epoch": 2}\n{"schema": 1, "ep')
    assert d.keep_epochs() == 1  # the torn line
    assert [json.loads(ln) for ln in d.epochs.read_text().splitlines()] == [
        {"schema": 1, "epoch": 1, "future": 7}, {"schema": 1, "epoch": 2}]
    assert d.keep_epochs(1) == 1 and [r.epoch for r in d.read_epochs()] == [1]


# -- the schema-1 fixture: a real run directory of an earlier greensed ------------


def test_schema1_fixture_reads_through_the_typed_records():
    run = load_run(FIXTURE)
    assert [r.epoch for r in run.epochs] == [1, 2, 3] and run.finished
    assert [r.steps for r in run.epochs] == [12, 24, 36]
    (lost,) = run.dir.read_lost()
    assert lost.epoch == 2 and lost.how == "measured: partial epoch cut by a signal"
    assert run.summary.total_kwh == pytest.approx(run.epochs[-1].cumulative_kwh)
    assert run.epochs[1].cumulative_kwh == pytest.approx(
        run.epochs[0].cumulative_kwh + lost.kwh + run.epochs[1].energy_kwh)


def _cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_schema1_fixture_is_read_by_report_replay_and_status(tmp_path):
    summary = Summary.from_json(json.loads((FIXTURE / "summary.json").read_text()))
    out = _cli("report", str(FIXTURE), "--metric", "student_f1", "--format", "csv",
               "--no-plots", "--out", str(tmp_path / "rep"))
    assert "Table 1" in out
    runs = (tmp_path / "rep" / "runs.csv").read_text().splitlines()
    assert len(runs) == 2 and repr(summary.total_kwh) in runs[1]
    out = _cli("replay", str(FIXTURE), "--metric", "student_f1", "--policy",
               "plateau:patience=1", "--format", "csv")
    assert "plateau:patience=1" in out and "3/3" in out
    out = _cli("status", str(FIXTURE), "--metric", "student_f1", "--format", "csv")
    assert "finished" in out and "3/3" in out and "23.5% @3" in out


@pytest.mark.slow
def test_schema1_fixture_resumes_for_one_more_epoch(tmp_path, monkeypatch, one_torch_thread):
    """`greensed train --resume` continues an earlier greensed's run: its checkpoint
    loads, the history and ledger carry on, and the new record extends the old ones."""
    from greensed.cli import main

    run = tmp_path / "run"
    shutil.copytree(FIXTURE, run)
    before = RunDir(run).read_epochs()
    monkeypatch.setenv("GREENSED_CACHE", str(tmp_path / "cache"))  # its curves preset, made here
    monkeypatch.setattr("sys.argv", ["greensed", "train", "--resume", str(run), "--epochs", "4",
                                     "--meter", "constant:40", "--force"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 0
    d = RunDir(run)
    after = d.read_epochs()
    assert after[:3] == before and [r.epoch for r in after] == [1, 2, 3, 4]
    assert after[3].steps == 48 and after[3].meter == "constant:40"
    assert after[3].cumulative_kwh == pytest.approx(before[2].cumulative_kwh
                                                    + after[3].energy_kwh)
    s = d.read_summary()
    assert s.finished and s.epochs == 4 and s.total_kwh == pytest.approx(after[3].cumulative_kwh)
    assert s.lost_kwh == pytest.approx(d.read_lost()[0].kwh)


def test_launch_json_is_a_typed_record(tmp_path):
    from greensed.launch.plan import mark
    from greensed.runlog import LaunchRecord, LaunchState

    mark(tmp_path, launcher="local", state="submitted", job_id=None, recipe="bs8", replace=True)
    mark(tmp_path, state="ended", status="finished", host="h", pid=7)
    launch = RunDir(tmp_path).read_launch()
    assert launch == LaunchRecord(launcher="local", state=LaunchState.ENDED,
                                  recipe="bs8", host="h", pid=7, status=RunStatus.FINISHED)
    with pytest.raises(RunLogError, match="'state' = 'sent' is not one of submitted"):
        mark(tmp_path, state="sent")
    assert RunDir(tmp_path).read_launch() == launch  # a refused update writes nothing
