"""The defects seen on the way (issue 16, item 7), each pinned: a failed start leaves
no run directory behind, `report | head` writes its files and ends quietly, plots
name each run and tick whole epochs, CSV tables hold numbers, runs.csv names each
run's setup, and the help is consistent, with examples, -h and --version."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import typer
from helpers import cli, write_run

from greensed.cli import app
from greensed.cli.options import DATA_HELP, DEVICE_HELP, FORMAT_HELP, METER_HELP, METRIC_HELP

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    for seed, f1 in ((1, [0.30, 0.45, 0.58]), (2, [0.20, 0.41, 0.50]), (3, [0.25, 0.40, 0.55])):
        write_run(root / "16" / str(seed), f1, 0.1, batch_size=16, seed=seed,
                  recipe="paper-bs16", summary={"steps_per_epoch": 10, "stop_policy": "plateau"})
    write_run(root / "8" / "1", [0.42, 0.44], 0.05, batch_size=8, seed=1)
    return root


# --- a failed start --------------------------------------------------------------

def test_a_failed_start_leaves_no_run_directory(tmp_path, monkeypatch, capsys):
    run = tmp_path / "runs" / "new"
    code, _, err = cli(monkeypatch, capsys, "train", "--data", tmp_path / "no-such-desed",
                       "--out", run, "--meter", "constant:40", "--cache-dir", tmp_path / "c")
    assert code == 2 and err.startswith("error: ")
    assert not run.exists()  # neither the directory nor its lock


def test_a_failed_start_in_an_existing_folder_removes_only_what_it_wrote(tmp_path, monkeypatch,
                                                                          capsys):
    run = tmp_path / "mine"
    run.mkdir()
    (run / "notes.txt").write_text("mine")
    code, _, _ = cli(monkeypatch, capsys, "train", "--data", tmp_path / "no-such-desed",
                     "--out", run, "--meter", "constant:40", "--cache-dir", tmp_path / "c")
    assert code == 2
    assert sorted(p.name for p in run.iterdir()) == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    cli(monkeypatch, capsys, "train", "--data", tmp_path / "no-such-desed", "--out", empty,
        "--meter", "constant:40", "--cache-dir", tmp_path / "c")
    assert empty.is_dir() and not any(empty.iterdir())  # it was there before: kept


def test_a_failed_resume_keeps_the_run(runs, tmp_path, monkeypatch, capsys):
    run = runs / "8" / "1"
    before = sorted(p.name for p in run.iterdir())
    (run / "config.toml").write_text(f'[data]\npath = "{tmp_path / "gone"}"\n'
                                     "[train]\nbatch_size = 8\nepochs = 4\n")
    code, _, _ = cli(monkeypatch, capsys, "train", "--resume", run, "--meter", "constant:40",
                     "--cache-dir", tmp_path / "c", "--force")
    assert code == 2 and sorted(p.name for p in run.iterdir() if p.name != "lock") == before


# --- report | head ---------------------------------------------------------------

@pytest.mark.slow  # 1-2 s: the whole suite only, so that make test-fast stays under a minute
def test_report_into_a_pipe_closed_early_writes_its_files_and_ends_quietly(runs, tmp_path):
    out = tmp_path / "report"
    proc = subprocess.Popen([sys.executable, "-m", "greensed.cli", "report", str(runs),
                             "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=REPO)
    proc.stdout.close()  # the reader leaves before the first line (`| head -0`)
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert proc.returncode == 141, err  # 128 + SIGPIPE, as `cat` under `set -o pipefail`
    assert "Traceback" not in err
    for name in ("table1.csv", "table2.csv", "runs.csv", "f1_vs_kwh.png", "wh_per_epoch.png"):
        assert (out / name).stat().st_size > 0


# --- CSVs ------------------------------------------------------------------------

def test_table_csvs_hold_mean_and_std_as_numbers(runs, tmp_path, monkeypatch, capsys):
    code, out, _ = cli(monkeypatch, capsys, "report", runs, "--out", tmp_path / "r",
                       "--no-plots", "--std", "runs")
    assert code == 0 and "54.3 ± 4.0" in out  # the text table keeps its cells
    t1 = pd.read_csv(tmp_path / "r" / "table1.csv")
    row = t1.set_index("Batch").loc[16]
    assert row["Max F1 mean"] == pytest.approx((58 + 50 + 55) / 3)  # max F1 (%) of each run
    assert row["Max F1 std"] == pytest.approx(pd.Series([58.0, 50.0, 55.0]).std())
    assert row["Time mean (s)"] == pytest.approx(180.0) and row["Total (kWh) mean"] == \
        pytest.approx(0.3)
    assert t1.set_index("Batch").loc[8, "Max F1 mean"] == pytest.approx(44.0)
    assert pd.isna(t1.set_index("Batch").loc[8, "Max F1 std"])  # one run: no std
    assert all(t1[c].dtype.kind == "f" for c in t1.columns if c.endswith(("mean", "std")))
    t2 = pd.read_csv(tmp_path / "r" / "table2.csv")
    assert "@Max F1 mean" in t2.columns and t2["@Max F1 mean"].dtype.kind == "f"


def test_runs_csv_names_seed_recipe_state_policy_and_steps(runs, tmp_path, monkeypatch, capsys):
    cli(monkeypatch, capsys, "report", runs, "--out", tmp_path / "r", "--no-plots")
    rows = pd.read_csv(tmp_path / "r" / "runs.csv")
    mine = rows[rows["group_batch"] == 16].sort_values("seed")
    assert list(mine["seed"]) == [1, 2, 3] and set(mine["recipe"]) == {"paper-bs16"}
    assert set(mine["state"]) == {"finished"} and set(mine["stop_policy"]) == {"plateau"}
    assert set(mine["steps_per_epoch"]) == {10}


@pytest.mark.parametrize("by", ["recipe", "hardware", "batch"])
def test_runs_csv_has_no_two_columns_of_one_name(by, runs, tmp_path, monkeypatch, capsys):
    cli(monkeypatch, capsys, "report", runs, "--by", by, "--out", tmp_path / "r", "--no-plots")
    header = (tmp_path / "r" / "runs.csv").read_text().splitlines()[0].split(",")
    assert len(header) == len(set(header)), header
    assert header[0] == f"group_{by}"
    rows = pd.read_csv(tmp_path / "r" / "runs.csv")
    if by == "recipe":  # the group and the run's own recipe, side by side
        assert list(rows["group_recipe"]) == list(rows["recipe"])


# --- plots -----------------------------------------------------------------------

def test_plots_tick_whole_epochs_and_name_every_run(runs):
    from greensed.study import report as rp
    from greensed.study.plots import figures

    rep = rp.build_report([runs], by="batch")
    figs = dict(figures(rep))
    ax = figs["wh_per_epoch.png"].axes[0]
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    for name in ("f1_vs_kwh.png", "wh_per_epoch.png"):
        labels = figs[name].axes[0].get_legend_handles_labels()[1]
        assert {"batch 16, seed 1", "batch 16, seed 2", "batch 16, seed 3",
                "batch 8, seed 1"} <= set(labels)
    lines = figs["wh_per_epoch.png"].axes[0].get_lines()
    assert len({ln.get_marker() for ln in lines if ln.get_label().startswith("batch 16")}) == 3


# --- help --------------------------------------------------------------------------

COMMANDS = ["train", "synth", "meters", "reproduce", "report", "dcase", "replay",
            "bench-policies", "status", "evaluate"]


def test_version_and_short_help(monkeypatch, capsys):
    from greensed import __version__

    code, out, _ = cli(monkeypatch, capsys, "--version")
    assert code == 0 and out.strip() == f"greensed {__version__}"
    code, out, _ = cli(monkeypatch, capsys, "-h")
    assert code == 0 and "Commands:" in out and "dcase" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_short_help_an_example_and_no_bool_metavar(command, monkeypatch,
                                                                       capsys):
    code, out, _ = cli(monkeypatch, capsys, command, "-h")
    assert code == 0, out
    assert "Example" in out and f"greensed {command}" in out
    assert "<bool>" not in out and "<list[str]>" not in out.split("Options:")[1]
    assert "╭" not in out  # plain text: nothing that wraps into boxes in a narrow terminal


def test_shared_flags_read_the_same_on_every_command():
    group = typer.main.get_command(app)
    helps: dict[str, dict[str, str]] = {}
    for name, command in group.commands.items():
        for p in command.params:
            for opt in getattr(p, "opts", []):
                helps.setdefault(opt, {})[name] = p.help or ""
    assert {h for h in helps["--format"].values()} == {FORMAT_HELP + "."}
    assert set(helps["--format"]) == {"report", "dcase", "replay", "bench-policies", "status"}
    for flag, text in (("--metric", METRIC_HELP), ("--meter", METER_HELP),
                       ("--data", DATA_HELP), ("--device", DEVICE_HELP)):
        assert all(h.startswith(text) for h in helps[flag].values()), (flag, helps[flag])


def test_tensorboard_without_the_package_is_one_line_before_anything(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    run = tmp_path / "run"
    code, _, err = cli(monkeypatch, capsys, "train", "--tensorboard", "--out", run,
                       "--meter", "constant:40", "--cache-dir", tmp_path / "c")
    assert code == 2 and "greensed[tensorboard]" in err and len(err.strip().splitlines()) == 1
    assert not run.exists()


def test_an_unknown_country_fails_before_anything(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    code, _, err = cli(monkeypatch, capsys, "train", "--country-iso-code", "XYZ", "--out", run,
                       "--meter", "constant:40", "--cache-dir", tmp_path / "c")
    assert code == 2 and "country_iso_code = 'XYZ'" in err and not run.exists()
