from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from greensed.data.audio import fit_length, load_clip
from greensed.errors import DataError


@pytest.mark.slow  # 1-2 s: the whole suite only, so that make test-fast stays under a minute
def test_stereo_44k_short_file_to_mono_16k_10s(tmp_path):
    sr = 44100
    t = np.arange(7 * sr) / sr
    left = 0.4 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([left, 0.5 * left], axis=1)  # mono mix: 0.75 * left
    path = tmp_path / "stereo.wav"
    sf.write(path, stereo, sr, subtype="FLOAT")
    clip = load_clip(path)
    assert clip.wave.shape == (160000,) and clip.wave.dtype == np.float32
    assert clip.duration_s == pytest.approx(7.0) and clip.shift_s == 0.0
    middle = clip.wave[16000:6 * 16000]
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.3 / np.sqrt(2), rel=0.01)
    # Zero padding at the end, after 7 s (plus the resampler's few-sample tail).
    assert np.all(clip.wave[7 * 16000 + 64:] == 0)
    # 440 Hz survives resampling: spectral peak of the middle at 440 Hz.
    spec = np.abs(np.fft.rfft(middle))
    assert np.fft.rfftfreq(len(middle), 1 / 16000)[spec.argmax()] == pytest.approx(440, abs=1)


def test_long_file_centre_crop(tmp_path):
    data = np.random.default_rng(0).uniform(-0.5, 0.5, 12 * 16000)
    path = tmp_path / "long.wav"
    sf.write(path, data, 16000, subtype="FLOAT")
    clip = load_clip(path)
    assert clip.shift_s == 1.0 and clip.duration_s == 12.0
    np.testing.assert_array_equal(clip.wave, data[16000:176000].astype(np.float32))


def test_pcm16_scaling(tmp_path):
    path = tmp_path / "pcm.wav"
    sf.write(path, np.full(16000, 0.5), 16000, subtype="PCM_16")
    wave = load_clip(path).wave
    assert wave[:16000] == pytest.approx(0.5, abs=1e-4) and np.all(wave[16000:] == 0)


def test_fit_length():
    w, start = fit_length(np.arange(5.0), 3)
    assert start == 1 and w.tolist() == [1.0, 2.0, 3.0]
    w, start = fit_length(np.arange(2.0), 4)
    assert start == 0 and w.tolist() == [0.0, 1.0, 0.0, 0.0]


def test_unreadable_and_missing(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file")
    with pytest.raises(DataError, match=r"bad\.wav: cannot read audio"):
        load_clip(bad)
    with pytest.raises(DataError, match=r"gone\.wav: cannot read audio"):
        load_clip(tmp_path / "gone.wav")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0), 16000)
    with pytest.raises(DataError, match=r"empty\.wav: audio file has no samples"):
        load_clip(empty)


def _noise_44k(tmp_path, seconds: float = 2.5):
    """A FLOAT wav (decoded exactly) of broadband noise plus a tone near 8 kHz, where
    resamplers' anti-aliasing filters differ most."""
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * 44100)) / 44100
    x = (0.2 * rng.standard_normal(len(t)) + 0.3 * np.sin(2 * np.pi * 7900 * t)).astype(np.float32)
    path = tmp_path / "noise44k.wav"
    sf.write(path, x, 44100, subtype="FLOAT")
    return path, x


def test_44k_resampled_as_the_baseline_kaiser_best(tmp_path):
    resampy = pytest.importorskip("resampy")
    path, x = _noise_44k(tmp_path)
    want = resampy.resample(x, 44100, 16000, filter="kaiser_best")
    n = int(np.ceil(len(x) * 16000 / 44100))  # librosa 0.9's fix_length
    clip = load_clip(path)  # default: kaiser_best
    assert clip.duration_s == pytest.approx(2.5)
    np.testing.assert_allclose(clip.wave[:len(want)], want, rtol=0, atol=1e-6)
    assert np.all(clip.wave[len(want):] == 0) and len(want) <= n
    # torchaudio's default filter is a different signal, far beyond float precision.
    other = load_clip(path, resampler="torchaudio")
    assert np.abs(other.wave[:len(want)] - want).max() > 1e-3


def test_unknown_resampler_is_a_config_error(tmp_path):
    from greensed.errors import ConfigError

    path, _ = _noise_44k(tmp_path, 0.1)
    with pytest.raises(ConfigError, match=r"features.resampler = 'sinc': expected one of "
                                          r"kaiser_best, torchaudio"):
        load_clip(path, resampler="sinc")
