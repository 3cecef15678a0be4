"""Reliability, input data: bad audio and empty subsets fail before the first
epoch with the file named, or are skipped and counted (docs/reliability.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from helpers import quiet, tiny_config, tweak

from greensed import runlog
from greensed.config import FeatureConfig
from greensed.data.audio import load_clip
from greensed.data.desed import load_dataset
from greensed.errors import DataError, GreensedError
from greensed.train.loop import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def dataset(tiny_dataset: Path, tmp_path: Path) -> Path:
    return shutil.copytree(tiny_dataset, tmp_path / "dataset")


@pytest.mark.slow  # 1-2 s: the whole suite only, so that make test-fast stays under a minute
def test_corrupt_audio_named_before_training_or_skipped_and_counted(dataset, tmp_path):
    bad = dataset / "audio/train/unlabelled/unlabelled_00001.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEnot audio at all")
    cfg = tiny_config(dataset, tmp_path / "cache", epochs=1)
    cfg = tweak(cfg, **{"train.max_steps_per_epoch": 1})
    run = tmp_path / "run"
    with pytest.raises(DataError) as err:
        train(cfg, run, report=quiet)
    assert f"{bad}: cannot read audio" in str(err.value) and "\n" not in str(err.value)
    d = runlog.RunDir(run)
    assert not d.epochs.exists() and not d.config.exists()

    cfg = tweak(cfg, **{"data.skip_bad_audio": True})  # --skip-bad-audio
    lines: list[str] = []
    res = train(cfg, run, report=lines.append)
    assert res.summary.finished and res.summary.skipped_audio == 1
    assert runlog.RunDir(run).read_summary().skipped_audio == 1
    (banner,) = [ln for ln in lines if ln.startswith("greensed: training")]
    assert "clips strong/weak/unlabelled/val 4/4/3/4" in banner


def test_audio_truncated_inside_its_header_is_an_error(tmp_path, tiny_dataset):
    good = tiny_dataset / "audio/train/unlabelled/unlabelled_00000.wav"
    cut = tmp_path / "cut.wav"
    cut.write_bytes(good.read_bytes()[:30])
    with pytest.raises(DataError, match=r"cut\.wav: cannot read audio"):
        load_clip(cut)


def test_audio_truncated_mid_data_is_an_error(tmp_path, tiny_dataset):
    good = tiny_dataset / "audio/train/unlabelled/unlabelled_00000.wav"
    cut = tmp_path / "cut.wav"
    data = good.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.wav: truncated audio file"):
        load_clip(cut)


def test_stereo_44k_short_file_in_a_subset_is_mixed_resampled_padded(dataset, tmp_path):
    t = np.arange(int(3.5 * 44100)) / 44100
    tone = 0.3 * np.sin(2 * np.pi * 1000 * t)
    odd = dataset / "audio/train/weak/weak_00002.wav"
    sf.write(odd, np.stack([tone, 0.5 * tone], axis=1), 44100)  # replaces a 16 kHz mono clip
    ds = load_dataset(dataset, FeatureConfig(), cache_dir=tmp_path / "cache")
    assert ds.skipped_audio == []
    i = ds.weak.files.index("weak_00002.wav")
    assert ds.weak.durations_s[i] == pytest.approx(3.5)
    mels = np.asarray(ds.weak.mels[i], dtype=np.float32)
    assert mels.shape == (626, 128)
    hop_s = 256 / 16000
    assert mels[: int(3.0 / hop_s)].max() > 0  # the tone, in the first 3 s
    assert mels[int(3.7 / hop_s):].max() == 0  # zero padding after 3.5 s (+ one window)


def test_subsets_smaller_than_a_batch_fail_before_the_first_epoch(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "cache", epochs=1)
    cfg = tweak(cfg, **{"train.batch_size": 16})  # wants 8 unlabelled clips per step; there are 4
    run = tmp_path / "run"
    with pytest.raises(GreensedError) as err:
        train(cfg, run, report=quiet)
    # Worded as the banner words a batch, not as raw tuples.
    assert str(err.value) == (
        "an epoch has no step: the clips of a subset (strong/weak/unlabelled 4/4/4) are "
        "fewer than one batch takes of it (strong/weak/unlabelled 4/4/8); reduce "
        "train.batch_size")
    assert not runlog.RunDir(run).epochs.exists()
    assert not runlog.RunDir(run).summary.exists()


def test_subset_with_every_file_unreadable_is_empty_even_when_skipping(dataset, tmp_path):
    for p in (dataset / "audio/train/unlabelled").iterdir():
        p.write_bytes(b"not audio")
    cfg = tiny_config(dataset, tmp_path / "cache", epochs=1)
    cfg = tweak(cfg, **{"data.skip_bad_audio": True})
    with pytest.raises(DataError, match=r"unlabelled: empty subset \(every audio file in "):
        train(cfg, tmp_path / "run", report=quiet)
