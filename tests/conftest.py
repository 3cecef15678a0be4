"""Shared fixtures: a tiny synthetic dataset, generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

from greensed.data.synth import SynthPreset, generate

# 4 clips per subset: enough for every code path, about a second to generate.
TINY_PRESET = SynthPreset(n_strong=4, n_weak=4, n_unlabelled=4, n_validation=4)


@pytest.fixture(scope="session")
def tiny_preset() -> SynthPreset:
    return TINY_PRESET


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root of a tiny dataset in the default layout. Shared: copy it before changing it."""
    return generate(tmp_path_factory.mktemp("tiny") / "dataset", TINY_PRESET, seed=0)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A fresh, empty feature cache per test."""
    return tmp_path / "cache"
