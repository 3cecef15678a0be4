"""Mel features exactly as the DCASE 2022 baseline, split at the point where mixup acts.

The cache stores the LINEAR-magnitude mel ([T=626, F=128] per clip), because the
baseline mixes clips on the linear mel and only then takes dB and scales.
``to_model_input`` is that second half.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
import torchaudio

from greensed.config import FeatureConfig

AMIN = 1e-5  # AmplitudeToDB amin in the baseline (librosa's default)
DB_MIN, DB_MAX = -50.0, 80.0  # the baseline's clamp after dB
SCALE_EPS = 1e-8


def feature_params(features: FeatureConfig) -> dict[str, Any]:
    """Every setting that changes the cached values (part of the cache key)."""
    params = dataclasses.asdict(features)
    # Fixed here, but listed so that a change to them also changes the key.
    params.update(window="hamming_nonperiodic", power=1.0, center=True, pad_mode="reflect",
                  norm=None, mel_scale="htk", crop="centre")
    return params


def n_frames(features: FeatureConfig) -> int:
    """Centred STFT frames per clip: 1 + samples // hop (626 for the defaults)."""
    return 1 + round(features.clip_s * features.sample_rate) // features.hop_length


def mel_module(features: FeatureConfig) -> torchaudio.transforms.MelSpectrogram:
    """The baseline's MelSpectrogram; everything not set here is torchaudio's default
    (center=True, pad_mode='reflect', norm=None, mel_scale='htk'), as in the baseline."""
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=features.sample_rate,
        n_fft=features.n_fft,
        win_length=features.win_length,
        hop_length=features.hop_length,
        f_min=features.f_min,
        f_max=features.f_max,
        n_mels=features.n_mels,
        window_fn=torch.hamming_window,
        wkwargs={"periodic": False},
        power=1.0,
    )


def compute_mels(waves: torch.Tensor, module: torch.nn.Module) -> torch.Tensor:
    """[B, samples] waveforms -> [B, T, F] linear-magnitude mel (float32)."""
    with torch.no_grad():
        return module(waves.float()).transpose(1, 2).contiguous()


def to_model_input(mel: torch.Tensor) -> torch.Tensor:
    """[B, T, F] linear mel -> dB clamped to [-50, 80] -> per-clip min-max to [0, 1].

    Works on any float dtype; the result is float32. Apply mixup before this.
    """
    db = 20.0 * torch.log10(torch.clamp(mel.float(), min=AMIN))
    db = db.clamp(min=DB_MIN, max=DB_MAX)
    lo = db.amin(dim=(-2, -1), keepdim=True)
    hi = db.amax(dim=(-2, -1), keepdim=True)
    return (db - lo) / (hi - lo + SCALE_EPS)
