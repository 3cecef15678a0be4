"""Corpus v2 (benchmarks/curves-v2): the recipe is what its README says, the figures'
arithmetic is right, and the committed runs meet the corpus's size, shape and noise
criteria (skipped, saying why, until its 20 runs have finished). Reads logs only."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest
from helpers import write_run

from greensed.data.synth import get_preset
from greensed.launch.grid import load_grid

CORPUS = Path(__file__).resolve().parents[1] / "benchmarks" / "curves-v2"
SIZE = (4, 5)  # at least 4 batch sizes x 5 seeds
# The default's held-out figures (docs/benchmark.md): saved, kept test loss, runs > 2 %
DEFAULT_HELD_OUT = (0.284, 0.009, 0.15)


def _figures():
    spec = importlib.util.spec_from_file_location("curves_v2_figures", CORPUS / "figures.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


F = _figures()


def test_the_grid_is_20_test_scored_full_length_cells():
    grid = load_grid(CORPUS / "grid.toml")
    cells = grid.cells()
    assert len(grid.batch_sizes) >= SIZE[0] and len(grid.seeds) >= SIZE[1]
    for c in cells:
        assert c.config.eval.test and c.config.stop.policies == ()
        assert c.config.data.preset == "curves-v2" and c.config.data.path is None
    assert get_preset("curves-v2").n_test > 0
    readme = (CORPUS / "README.md").read_text()
    assert "greensed reproduce benchmarks/curves-v2/grid.toml --out benchmarks/curves-v2" \
        in " ".join(readme.replace("\\\n", " ").split())  # shell line continuations


def test_figures_by_hand(tmp_path):
    f1 = [0.2, 0.6, 0.8, 0.95, 0.96, 0.97, 1.0, 0.99, 1.0, 0.98]
    run = write_run(tmp_path / "16" / "1", f1, epoch_kwh=1.0)
    r = F.run_figures(run)
    assert (r.batch, r.seed, r.epochs, r.finished) == (16, 1, 10, True)
    assert (r.max_f1, r.max_epoch, r.epoch_95) == (1.0, 7, 4)
    assert r.share_95 == pytest.approx(4 / 10) and r.last_5_extra == pytest.approx(7 / 4 - 1)
    # second half 0.97, 1.0, 0.99, 1.0, 0.98: differences 0.03, -0.01, 0.01, -0.02
    assert r.noise == pytest.approx(math.sqrt(3.6875e-4))
    assert not r.test_scored  # hand-made records carry no test scores
    (b,) = F.by_batch([r]).items()
    assert b[0] == 16 and b[1]["share_95"] == pytest.approx(0.4)


def _untracked(path: Path) -> bool:
    """No file under ``path`` is committed, nor could be (.gitignore): a clean clone has
    none; a checkout that ran the corpus keeps its checkpoints to resume from."""
    if not path.exists():
        return True
    import subprocess

    ignored = subprocess.run(["git", "check-ignore", "-q", str(path / "x.pt")],
                             cwd=CORPUS, capture_output=True)
    tracked = subprocess.run(["git", "ls-files", str(path)], cwd=CORPUS,
                             capture_output=True, text=True)
    return ignored.returncode == 0 and tracked.stdout.strip() == ""


@pytest.fixture(scope="module")
def finished():
    runs = [r for r in F.corpus_figures(CORPUS) if r.finished]
    want = SIZE[0] * SIZE[1]
    if len(runs) < want:
        pytest.skip(f"corpus v2 incomplete: {len(runs)} of {want} runs finished; resume it "
                    "with the command in benchmarks/curves-v2/README.md")
    return runs


def test_size_every_run_to_its_cap_and_test_scored(finished):
    grid = load_grid(CORPUS / "grid.toml")
    assert {(r.batch, r.seed) for r in finished} == {(c.batch_size, c.seed)
                                                     for c in grid.cells()}
    caps = {(c.batch_size, c.seed): c.config.train.epochs for c in grid.cells()}
    for r in finished:
        assert r.epochs == caps[(r.batch, r.seed)] and r.test_scored
        assert _untracked(r.path / "checkpoints")  # run logs only


# Batch sizes whose curves are known to miss the shape criterion, and why (strict: a
# fixed corpus makes the test say so).
SHAPE_MISSES: dict[int, str] = {}  # none since batch 32 runs to 120 epochs


@pytest.mark.parametrize("batch", [
    pytest.param(b, marks=pytest.mark.xfail(reason=SHAPE_MISSES[b], strict=True))
    if b in SHAPE_MISSES else b
    for b in load_grid(CORPUS / "grid.toml").batch_sizes])
def test_shape_like_the_papers_per_batch_size(finished, batch):
    lo, hi = F.SHARE_95
    f = F.by_batch(finished)[batch]
    assert lo <= f["share_95"] <= hi, (batch, f)
    assert f["last_5_extra"] >= F.MIN_LAST_5_EXTRA, (batch, f)


def test_noise_of_the_watched_f1(finished):
    for batch, f in F.by_batch(finished).items():
        assert f["noise"] <= F.MAX_NOISE, (batch, f)


@pytest.fixture(scope="module")
def bench_runs(finished):
    from greensed.study import bench as B

    runs, warnings = B.load_corpus([CORPUS])
    assert warnings == [] and len(runs) == len(finished)
    return runs


@pytest.mark.slow
def test_the_default_is_the_benchmarks_choice_on_the_metric_it_watches(bench_runs):
    from greensed.stopping.build import DEFAULT_SETTING, DEFAULT_WATCHES
    from greensed.study import bench as B
    from greensed.study.bench_grid import default_grid

    assert {r.metric for r in bench_runs} == {DEFAULT_WATCHES}
    bench = B.run_benchmark(bench_runs, default_grid(DEFAULT_WATCHES, bench_runs))
    assert bench.by_test and bench.seeds == (1, 2, 3, 4, 5)  # judged on kept test loss
    assert bench.final is not None and bench.final.setting.label == DEFAULT_SETTING
    # the held-out figures docs/benchmark.md and docs/policies.md state
    d = bench.default
    assert d is not None and d.runs == len(bench_runs) and d.kept_test_loss is not None
    assert (d.saved.mean, d.kept_test_loss.mean, d.too_early) == pytest.approx(
        DEFAULT_HELD_OUT, abs=5e-4)


@pytest.mark.slow
def test_the_forecasts_intervals_cover_as_stated_on_held_out_folds(bench_runs):
    from greensed.stopping.curve_noise import AUTOCORR_POWER
    from greensed.study.calibration import coverage, held_out_checks

    held = held_out_checks(bench_runs, bench_runs[0].metric)
    c95, _, c50 = coverage(held.checks)
    assert 0.85 <= c95 <= 0.99 and 0.40 <= c50 <= 0.60, (c95, c50)
    assert held.final == AUTOCORR_POWER  # greensed's forecast uses the corpus's choice


@pytest.mark.slow
def test_report_and_replay_read_the_corpus(bench_runs, tmp_path):
    from typer.testing import CliRunner

    from greensed.cli import app

    cli = CliRunner()
    res = cli.invoke(app, ["report", str(CORPUS), "--format", "csv", "--out",
                           str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report" / "table2.csv").is_file()
    res = cli.invoke(app, ["replay", str(CORPUS), "--policy", "default", "--csv",
                           str(tmp_path / "replay.csv")])
    assert res.exit_code == 0, res.output
    rows = (tmp_path / "replay.csv").read_text().splitlines()
    assert len(rows) == 1 + len(bench_runs)
