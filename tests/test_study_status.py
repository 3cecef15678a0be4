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
    assert rows["a"] == ["finished", "4/4", "50.0% @2", "40.0%", "1.00",
                         "plateau: no gain for 2 epochs"]
    assert rows["b"][:3] == ["running", "1/1", "20.0% @1"]
    assert rows["c"][:4] == ["incomplete", "2/2", "20.0% @1", "-"]  # last F1 null


def test_cli_status(tmp_path: Path) -> None:
    write_run(tmp_path / "16" / "1", [0.3, 0.5], 0.25)
    res = CliRunner().invoke(app, ["status", str(tmp_path), "--format", "csv"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[-1].split(",")[1:4] == ["finished", "2/2", "50.0% @2"]
