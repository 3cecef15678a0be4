from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchaudio

from greensed.config import FeatureConfig
from greensed.data.features import compute_mels, mel_module, n_frames, to_model_input
from greensed.data.spec import N_FEATURE_FRAMES, N_MELS, SAMPLE_RATE


@pytest.fixture(scope="module")
def module() -> torchaudio.transforms.MelSpectrogram:
    return mel_module(FeatureConfig())


def sine(freq_hz: float, amp: float = 0.5, seconds: float = 10.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SAMPLE_RATE), dtype=torch.float64) / SAMPLE_RATE
    return (amp * torch.sin(2 * math.pi * freq_hz * t)).float()


def test_shape_and_frames(module):
    assert n_frames(FeatureConfig()) == N_FEATURE_FRAMES == 626
    mel = compute_mels(torch.randn(2, 160000) * 0.1, module)
    assert mel.shape == (2, N_FEATURE_FRAMES, N_MELS) and mel.dtype == torch.float32


def test_baseline_settings(module):
    spec = module.spectrogram
    assert torch.equal(spec.window, torch.hamming_window(2048, periodic=False))
    assert (spec.n_fft, spec.win_length, spec.hop_length, spec.power) == (2048, 2048, 256, 1.0)
    assert spec.center is True and spec.pad_mode == "reflect"
    assert module.mel_scale.norm is None and module.mel_scale.mel_scale == "htk"
    assert (module.mel_scale.f_min, module.mel_scale.f_max) == (0.0, 8000.0)


def test_sine_lands_in_its_mel_band(module):
    mel = compute_mels(sine(1000.0)[None], module)[0]
    # HTK mel centres of 128 bands between 0 and 8000 Hz.
    hz_to_mel = lambda f: 2595 * math.log10(1 + f / 700)  # noqa: E731
    mels = np.linspace(0, hz_to_mel(8000), N_MELS + 2)[1:-1]
    centres = 700 * (10 ** (mels / 2595) - 1)
    assert int(mel[300].argmax()) == int(np.abs(centres - 1000).argmin())


def test_model_input_matches_baseline_chain(module):
    waves = torch.cat([sine(440.0)[None], torch.randn(1, 160000) * 0.05,
                       torch.zeros(1, 160000)])
    mel = compute_mels(waves, module)
    # The baseline: AmplitudeToDB(amin 1e-5), clamp [-50, 80], instance min-max (eps 1e-8).
    to_db = torchaudio.transforms.AmplitudeToDB(stype="amplitude")
    to_db.amin = 1e-5
    db = to_db(mel).clamp(-50, 80)
    lo, hi = db.amin(dim=(1, 2), keepdim=True), db.amax(dim=(1, 2), keepdim=True)
    ref = (db - lo) / (hi - lo + 1e-8)
    got = to_model_input(mel)
    assert got.shape == mel.shape and got.dtype == torch.float32
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_model_input_range_per_clip(module):
    mel = compute_mels(torch.randn(3, 160000) * torch.tensor([[0.001], [0.1], [0.9]]), module)
    x = to_model_input(mel.half())
    assert x.dtype == torch.float32
    for clip in x:
        assert float(clip.min()) == 0.0
        assert float(clip.max()) == pytest.approx(1.0, abs=1e-6)


def test_silence_maps_to_zero(module):
    x = to_model_input(compute_mels(torch.zeros(1, 160000), module))
    assert torch.all(x == 0)


def test_float16_cache_precision(module):
    mel = compute_mels(torch.randn(2, 160000) * 0.3, module)
    db32 = 20 * torch.log10(mel.clamp(min=1e-5))
    db16 = 20 * torch.log10(mel.half().float().clamp(min=1e-5))
    above = db32 > -50
    assert above.float().mean() > 0.9
    assert float((db32 - db16)[above].abs().max()) < 0.005
