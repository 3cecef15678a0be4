"""The committed policy-benchmark corpus (benchmarks/curves): what the benchmark and
docs/benchmark.md rely on holds for the run logs on disk. Reads logs only."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from greensed.stopping.build import DEFAULT_SETTING, DEFAULT_WATCHES
from greensed.study import bench as B

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
    labels = {s.label for s in B.default_grid(DEFAULT_WATCHES, runs) if s.portable}
    assert DEFAULT_SETTING in labels


@pytest.mark.slow
def test_the_benchmark_on_the_corpus_chooses_the_default(runs):
    bench = B.run_benchmark(runs, B.default_grid("student_f1", runs), tune_seeds=[1])
    assert bench.default is not None
    assert bench.default[0].setting.label == DEFAULT_SETTING  # docs/benchmark.md's table
