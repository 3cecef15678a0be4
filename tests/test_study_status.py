"""greensed status: one line per run, from the run log only."""

from __future__ import annotations

from pathlib import Path

from helpers import write_run
from typer.testing import CliRunner

from greensed.cli import app
from greensed.study.status import status_table


def test_states_epochs_best_and_energy(tmp_path: Path) -> None:
    write_run(tmp_path / "a", [0.3, 0.5, 0.5, 0.4], 0.25,
              summary={"stop_reason": "plateau: no gain for 2 epochs"})
    running = write_run(tmp_path / "b", [0.2], 0.1, write_summary=False)
    (running / "lock").write_text("1234")
    write_run(tmp_path / "c", [0.2, None], 0.1, write_summary=False)
    rows = {Path(r[0]).name: r[1:] for r in status_table([tmp_path]).rows}
    # Best F1 at its first epoch (2, not the tie at 3); kWh = 4 x 0.25.
    assert rows["a"] == ["finished", "4/4", "teacher_f1", "50.0% @2", "40.0%", "1.00",
                         "plateau: no gain for 2 epochs"]
    assert rows["b"][:4] == ["running", "1/1", "teacher_f1", "20.0% @1"]
    assert rows["c"][:5] == ["incomplete", "2/2", "teacher_f1", "20.0% @1", "-"]  # last null
    assert "killed and never resumed" in rows["c"][-1]


def test_each_run_is_shown_on_the_metric_it_watched(tmp_path: Path) -> None:
    """write_run logs student_f1 = teacher_f1; here the student runs ahead."""
    import json

    run = write_run(tmp_path / "s", [0.3, 0.5], 0.25, summary={"best_metric": "student_f1"})
    lines = [json.loads(ln) for ln in (run / "epochs.jsonl").read_text().splitlines()]
    for rec in lines:
        rec["metrics"]["student_f1"] += 0.1
    (run / "epochs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (row,) = status_table([tmp_path]).rows
    assert row[3:5] == ["student_f1", "60.0% @2"]
    (row,) = status_table([tmp_path], "teacher_f1").rows
    assert row[3:5] == ["teacher_f1", "50.0% @2"]


def test_cli_status(tmp_path: Path) -> None:
    write_run(tmp_path / "16" / "1", [0.3, 0.5], 0.25)
    res = CliRunner().invoke(app, ["status", str(tmp_path), "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1].split(",")[1:5] == ["finished", "2/2", "teacher_f1",
                                                          "50.0% @2"]
