from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import soundfile

from greensed.config import FeatureConfig
from greensed.data import cache as cache_mod
from greensed.data.desed import load_dataset
from greensed.data.tsv import read_weak_tsv
from greensed.errors import DataError


@pytest.fixture
def dataset(tiny_dataset, tmp_path):
    """A private copy of the tiny dataset, free to modify."""
    return shutil.copytree(tiny_dataset, tmp_path / "dataset")


def no_decoding(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("audio decoded on a cache hit")

    monkeypatch.setattr(soundfile, "read", boom)


def test_second_pass_is_a_hit_without_decoding(tiny_dataset, cache_dir, monkeypatch):
    first = load_dataset(tiny_dataset, FeatureConfig(), cache_dir=cache_dir)
    assert not any(s.cache_hit for s in first.subsets())
    no_decoding(monkeypatch)
    second = load_dataset(tiny_dataset, FeatureConfig(), cache_dir=cache_dir)
    for a, b in zip(first.subsets(), second.subsets(), strict=True):
        assert b.cache_hit and a.cache_key == b.cache_key
        assert isinstance(b.mels, np.memmap) and b.mels.dtype == np.float16
        np.testing.assert_array_equal(np.asarray(a.mels), np.asarray(b.mels))
        assert a.files == b.files and a.events == b.events
    files = sorted(p.relative_to(cache_dir).as_posix() for p in cache_dir.rglob("*")
                   if p.is_file())
    assert len(files) == 8 and all(f.startswith("features/") for f in files)


def test_changed_parameter_recomputes(tiny_dataset, cache_dir):
    base = load_dataset(tiny_dataset, FeatureConfig(), cache_dir=cache_dir)
    other = load_dataset(tiny_dataset, FeatureConfig(n_mels=64, f_max=7000.0),
                         cache_dir=cache_dir)
    assert not other.strong.cache_hit and other.strong.cache_key != base.strong.cache_key
    assert other.strong.mels.shape == (4, 626, 64)
    again = load_dataset(tiny_dataset, FeatureConfig(), cache_dir=cache_dir)
    assert again.strong.cache_hit and again.strong.mels.shape == (4, 626, 128)


def test_modified_file_recomputes_only_its_subset(dataset, cache_dir):
    before = load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)
    target = dataset / "audio/train/unlabelled/unlabelled_00002.wav"
    soundfile.write(target, np.zeros(160000), 16000, subtype="PCM_16")
    after = load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)
    assert not after.unlabelled.cache_hit
    assert after.strong.cache_hit and after.weak.cache_hit and after.validation.cache_hit
    assert np.all(np.asarray(after.unlabelled.mels[2]) == 0)
    assert np.asarray(before.unlabelled.mels[2]).max() > 0
    np.testing.assert_array_equal(after.unlabelled.mels[1], before.unlabelled.mels[1])


def test_touched_file_counts_as_changed(dataset, cache_dir):
    load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)
    target = dataset / "audio/validation/validation_00000.wav"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert not load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir).validation.cache_hit


def test_interrupted_extraction_leaves_no_valid_cache(tiny_dataset, cache_dir, monkeypatch):
    real = cache_mod.audio_mod.load_clip
    calls = []

    def flaky(path, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, **kw)

    monkeypatch.setattr(cache_mod.audio_mod, "load_clip", flaky)
    with pytest.raises(KeyboardInterrupt):
        load_dataset(tiny_dataset, FeatureConfig(), cache_dir=cache_dir)
    leftovers = [p for p in cache_dir.rglob("*") if p.is_file()]
    assert leftovers == []
    monkeypatch.setattr(cache_mod.audio_mod, "load_clip", real)
    ds = load_dataset(tiny_dataset, FeatureConfig(), cache_dir=cache_dir)
    assert not ds.strong.cache_hit and len(ds.strong) == 4


def test_truncated_npy_is_not_a_hit(tiny_dataset, cache_dir):
    ds = load_dataset(tiny_dataset, FeatureConfig(), cache_dir=cache_dir)
    npy = cache_dir / "features" / ds.weak.cache_key / "weak.npy"
    data = npy.read_bytes()
    del ds
    npy.write_bytes(data[: len(data) // 2])
    again = load_dataset(tiny_dataset, FeatureConfig(), cache_dir=cache_dir)
    assert not again.weak.cache_hit and again.strong.cache_hit
    assert again.weak.mels.shape == (4, 626, 128)


def test_bad_audio_error_or_skip(dataset, cache_dir):
    bad = dataset / "audio/train/weak/weak_00001.wav"
    bad.write_bytes(b"RIFF\x00garbage")
    with pytest.raises(DataError, match=r"weak_00001\.wav: cannot read audio"):
        load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)
    ds = load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir, skip_bad_audio=True)
    assert ds.skipped_audio == [str(bad)]
    assert ds.weak.files == ["weak_00000.wav", "weak_00002.wav", "weak_00003.wav"]
    assert ds.weak.mels.shape == (3, 626, 128) and ds.weak.weak.shape == (3, 10)
    tags = {r.filename: r.classes for r in read_weak_tsv(dataset / "metadata/train/weak.tsv")}
    for name, row in zip(ds.weak.files, ds.weak.weak, strict=True):
        assert tuple(np.flatnonzero(row)) == tags[name]
    manifest = json.loads((cache_dir / "features" / ds.weak.cache_key / "weak.json").read_text())
    assert manifest["skipped"] == [str(bad)]
    # The cached entry remembers the bad file: without skipping it is still an error.
    with pytest.raises(DataError, match=r"weak_00001\.wav: unreadable audio"):
        load_dataset(dataset, FeatureConfig(), cache_dir=cache_dir)


def test_resampler_is_part_of_the_cache_key(tiny_dataset):
    prints = cache_mod.fingerprint(tiny_dataset, sorted(tiny_dataset.rglob("*.wav"))[:2])
    best = cache_mod.cache_key(FeatureConfig(), "weak", prints)
    assert FeatureConfig().resampler == "kaiser_best"
    assert cache_mod.cache_key(FeatureConfig(resampler="kaiser_best"), "weak", prints) == best
    assert cache_mod.cache_key(FeatureConfig(resampler="torchaudio"), "weak", prints) != best
