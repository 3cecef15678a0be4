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


@pytest.fixture(scope="module")
def cache(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny dataset's features, extracted once per module, so that the trainers
    (and subprocesses) of a module only read them."""
    from greensed.config import FeatureConfig
    from greensed.data.desed import load_dataset

    path = tmp_path_factory.mktemp("tiny-cache")
    load_dataset(tiny_dataset, FeatureConfig(), cache_dir=path)
    return path


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A fresh, empty feature cache per test."""
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: on a shared 2-core machine two threads per
    process spin against each other (5-10x slower); spawned ranks take their own."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
