"""What the study commands print: counts in the right number, tables fitted to the
terminal's width (whole lines when piped), estimated energy and single-run cells marked
in the tables, and bench-policies' files only where --out says."""

from __future__ import annotations

from helpers import cli, write_grid

from greensed import launch
from greensed.launch import plan_grid
from greensed.launch.grid import load_grid
from greensed.launch.outcome import CellOutcome
from greensed.launch.reproduce import ReproduceResult


def test_reproduce_of_one_cell_says_1_cell(tmp_path, monkeypatch, capsys):
    grid = write_grid(tmp_path, tmp_path / "data", seeds=[1], epochs=1)
    out = tmp_path / "runs"
    plans = plan_grid(load_grid(grid), out)
    out.mkdir()

    def done(*args: object, **kwargs: object) -> ReproduceResult:
        return ReproduceResult(out, plans, [CellOutcome(p, "skipped") for p in plans])

    monkeypatch.setattr(launch, "reproduce", done)
    code, stdout, stderr = cli(monkeypatch, capsys, "reproduce", grid, "--out", out)
    assert code == 0, stdout + stderr
    assert "\n1 cell in " in stdout and "1 cells" not in stdout
