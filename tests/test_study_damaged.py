"""The study tools on damaged, partial, duplicated and running runs: never a wrong
table without saying so (docs/reliability.md, study section)."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
from pathlib import Path

import pytest
from helpers import write_run
from typer.testing import CliRunner

from greensed.cli import app
from greensed.errors import GreensedError
from greensed.study import replay as rpl
from greensed.study import report as rp
from greensed.study.collect import collect

F1 = [0.2, 0.4, 0.5, 0.55, 0.56, 0.55, 0.56, 0.55, 0.54, 0.55]


def test_meter_failed_mid_run_is_estimated_and_marked(tmp_path: Path) -> None:
    """Epochs 6-10 lost their readings (null energy, null cumulative): the total is the
    5 measured epochs plus 5 estimated at their mean power, not the last known 40 % low."""
    run = write_run(tmp_path / "r", F1, 0.1, epoch_s=60.0)
    lines = [json.loads(ln) for ln in (run / "epochs.jsonl").read_text().splitlines()]
    for rec in lines[5:]:
        rec.update(energy_kwh=None, cumulative_kwh=None, avg_power_w=None,
                   energy_status="error: meter failed")
    (run / "epochs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    summary = json.loads((run / "summary.json").read_text())
    summary["total_kwh"] = None
    (run / "summary.json").write_text(json.dumps(summary))
    (sr,) = collect([tmp_path]).runs
    power_w = 0.1 * 3.6e6 / 60.0  # the measured epochs' mean power: 6 kW for 60 s = 0.1 kWh
    assert sr.energy.estimated_epochs == (6, 7, 8, 9, 10)
    assert sr.energy.total_kwh == pytest.approx(0.5 + 5 * power_w * 60.0 / 3.6e6)
    r = rpl.replay_run(sr, rpl.parse_policy_spec("plateau:patience=3"))
    # best 0.56 @5, no gain for 3 epochs -> stop at 8: 0.8 of 1.0 kWh, saved 20 %
    assert r.stop_epoch == 8 and r.saved == pytest.approx(0.2)
    rep = rp.build_report([tmp_path])
    assert any("epochs 6-10 estimated" in n for n in rep.warnings)  # stderr
    assert rep.groups["16"][0].energy_estimated
    t1 = rp.table1(rep)  # the table marks the figure and says how it was estimated
    assert dict(zip(t1.columns, t1.rows[0], strict=True))["Total (kWh)"].startswith("~")
    assert any(n.startswith("~: ") and "epochs 6, 7, 8, 9, 10 (meter test)" in n
               for n in t1.notes)


def test_the_same_run_named_twice_counts_once(tmp_path: Path, monkeypatch) -> None:
    run = write_run(tmp_path / "runs" / "a", F1, 0.1)
    shutil.copytree(run, tmp_path / "copy")
    os.symlink(run, tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    names = [run, "runs/a", "runs/../runs/a", "link", "copy"]
    found = collect(names)
    assert len(found.runs) == 1
    assert len(found.left_out) == 4 and all("the same run as" in why for _, why in found.left_out)
    rep = rp.build_report(names)
    assert sum(len(v) for v in rep.groups.values()) == 1
    results, warnings = rpl.replay(names, [rpl.parse_policy_spec("plateau:patience=3")])
    assert len(results) == 1 and sum("counted once" in w for w in warnings) == 4


def test_a_run_in_progress_is_left_out_and_named(tmp_path: Path) -> None:
    write_run(tmp_path / "16" / "1", F1, 0.1, seed=1)
    live = write_run(tmp_path / "16" / "2", F1[:3], 0.1, seed=2, write_summary=False)
    with open(live / "lock", "a+") as fh:
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        rep = rp.build_report([tmp_path])
        results, warnings = rpl.replay([tmp_path], [rpl.parse_policy_spec("plateau")])
    assert [s.run_dir.name for s in rep.groups["16"]] == ["1"]  # its group is not diluted
    assert any("16/2: in progress (epoch 4)" in n for n in rep.notes)
    assert len(results) == 1 and any("16/2: in progress" in w for w in warnings)
    table = rp.tables(rep)[0]
    assert any("left out" in n and "in progress" in n for n in table.notes)


def test_torn_last_line_and_killed_runs_are_not_replayed_as_complete(tmp_path: Path) -> None:
    torn = write_run(tmp_path / "torn", F1[:3], 0.1, seed=1)
    with open(torn / "epochs.jsonl", "a") as fh:
        fh.write('{"schema": 1, "epoch": 4, "met')
    summary = json.loads((torn / "summary.json").read_text())
    summary["epochs"] = summary["stop_epoch"] = 4
    (torn / "summary.json").write_text(json.dumps(summary))
    write_run(tmp_path / "killed", F1[:3], 0.1, seed=2, write_summary=False)
    write_run(tmp_path / "fine", F1, 0.1, seed=3)
    results, warnings = rpl.replay([tmp_path], [rpl.parse_policy_spec("plateau:patience=3")])
    assert [r.run_dir.name for r in results] == ["fine"]
    assert any("torn: epochs.jsonl ends in a torn line" in w for w in warnings)
    assert any("killed: no summary.json and no trainer" in w for w in warnings)
    # A summary that disagrees with its log is damaged too, not divided by the wrong count.
    (torn / "epochs.jsonl").write_text("".join(
        ln + "\n" for ln in (torn / "epochs.jsonl").read_text().splitlines()[:3]))
    assert any("summary.json says 4 epochs, epochs.jsonl holds 3" in why
               for _, why in collect([tmp_path]).left_out)


@pytest.mark.parametrize(("text", "message"), [
    ("[1, 2]", "summary.json: expected a JSON object, got list"),
    ('{"schema": 0, "status": "finished"}', "schema 0 is not a greensed run-log version"),
    ('{"status": "finished"}', "schema None is not a greensed run-log version"),
    ('{"schema": 9, "status": "finished"}', "schema 9 is newer than this greensed"),
])
def test_bad_summaries_are_one_line_errors_in_every_tool(tmp_path: Path, text, message):
    run = write_run(tmp_path / "r", F1, 0.1)
    (run / "summary.json").write_text(text)
    for args in (["report", str(tmp_path), "--no-plots", "--out", str(tmp_path / "o")],
                 ["replay", str(tmp_path), "--policy", "plateau"], ["status", str(tmp_path)]):
        res = CliRunner().invoke(app, args)
        assert isinstance(res.exception, GreensedError), (args, res.output)
        assert message in str(res.exception) and "\n" not in str(res.exception)
