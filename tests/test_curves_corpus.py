"""The committed policy-benchmark corpus (benchmarks/curves): what the benchmark and
docs/benchmark.md rely on holds for the run logs on disk. Reads logs only."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from greensed.stopping.build import DEFAULT_SETTING, DEFAULT_WATCHES
from greensed.study import bench as B
from greensed.study.bench_grid import default_grid

CORPUS = Path(__file__).resolve().parents[1] / "benchmarks" / "curves"


@pytest.fixture(scope="module")
def runs() -> list[B.CurveRun]:
    out, warnings = B.load_corpus([CORPUS], metric="student_f1")
    assert warnings == []
    return out


def test_six_full_length_runs_of_the_grid(runs):
    grid = tomllib.loads((CORPUS / "grid.toml").read_text())
    cap = grid["overrides"]["train"]["epochs"]
    cells = {(str(b), s) for b in grid["grid"]["batch_size"] for s in grid["grid"]["seed"]}
    assert {(r.batch, r.seed) for r in runs} == cells and len(runs) == 6
    for r in runs:
        assert r.epochs == cap
        assert r.records[-1].epoch == cap and all(v is not None for v in r.f1)
        assert all(x.energy_kwh is not None and x.energy_kwh > 0 for x in r.records)
        for name in ("epochs.jsonl", "summary.json", "config.toml", "hardware.json"):
            assert (r.run_dir / name).is_file()
        assert not (r.run_dir / "checkpoints").exists()  # run logs only


def test_the_default_policy_is_a_portable_setting_of_the_grid(runs):
    labels = {s.label for s in default_grid(DEFAULT_WATCHES, runs) if s.portable}
    assert DEFAULT_SETTING in labels


@pytest.mark.slow
def test_the_cross_validated_benchmark_on_the_corpus(runs):
    # the rule of docs/benchmark.md's v1 figures: mean loss <= 2 %, no limit on the share
    bench = B.run_benchmark(runs, default_grid("student_f1", runs), max_loss=0.02,
                            max_too_early=1.0)
    assert bench.seeds == (1, 2, 3) and not bench.by_test  # no test scores in this corpus
    assert bench.default is not None and bench.default.runs == 6
    # docs/benchmark.md's table: the default row, each fold's choice
    assert [label for _, label in bench.default.chosen] == [
        "forecast:min_gain_per_kwh=0,min_prob=0.2,rel_gain=0.01,warmup=10",
        "plateau:patience=20,min_delta=0.01,warmup=0",
        "forecast:min_gain_per_kwh=0,min_prob=0.05,rel_gain=0.02,warmup=10"]
    assert bench.default.kept_test_loss is None
