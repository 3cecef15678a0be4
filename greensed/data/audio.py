"""Read one audio file as the model sees it: mono, 16 kHz, exactly 10 s.

Decoding is by soundfile (libsndfile), not torchaudio.load, whose backends
change between torchaudio releases. Resampling is resampy's ``kaiser_best``
filter by default: the baseline resampled DESED's 44.1 kHz files offline with
librosa 0.9's ``resample``, whose default was that filter, into its ``*_16k``
folders. ``resampler="torchaudio"`` uses ``torchaudio.functional.resample``'s
defaults instead (what greensed did before).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from greensed.data.spec import CLIP_S, SAMPLE_RATE
from greensed.errors import ConfigError, DataError, GreensedError

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
RESAMPLERS = ("kaiser_best", "torchaudio")


@dataclass(frozen=True)
class Clip:
    wave: np.ndarray  # [clip_s * sample_rate] float32, mono
    duration_s: float  # of the file before padding or cropping
    # Where the kept window starts in the file; events move by -shift_s.
    shift_s: float


_TRUNCATED = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode a file to ([frames, channels] float32, sample rate); DataError if unreadable."""
    try:
        with sf.SoundFile(str(path)) as fh:
            # libsndfile reads a WAV cut mid-data as a shorter clip, and says so
            # only here ("data : N (should be M)"): a truncated file is an error.
            cut = _TRUNCATED.search(fh.extra_info)
            if cut:
                raise DataError(
                    f"{path}: truncated audio file (data chunk declares {cut[1]} bytes, "
                    f"the file holds {cut[2]})")
            data = fh.read(dtype="float32", always_2d=True)
            sr = fh.samplerate
    except (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot read audio ({reason})") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: audio file has no samples")
    if not np.isfinite(data).all():
        raise DataError(f"{path}: audio has non-finite samples (NaN or inf)")
    return data, sr


def fit_length(wave: np.ndarray, n_samples: int) -> tuple[np.ndarray, int]:
    """Zero-pad at the end or crop the centre window; returns (wave, crop start sample).

    The baseline crops a random window per epoch; features here are cached, so
    the window is fixed, and the centre keeps both ends' context symmetric.
    """
    if len(wave) >= n_samples:
        start = (len(wave) - n_samples) // 2
        return wave[start:start + n_samples], start
    return np.pad(wave, (0, n_samples - len(wave))), 0


def check_resampler(resampler: str) -> None:
    if resampler not in RESAMPLERS:
        raise ConfigError(f"features.resampler = {resampler!r}: expected one of "
                          f"{', '.join(RESAMPLERS)}")


def resample(wave: np.ndarray, from_hz: int, to_hz: int, resampler: str = "kaiser_best"
             ) -> np.ndarray:
    """A mono float32 wave from ``from_hz`` to ``to_hz``.

    kaiser_best: ``resampy.resample(wave, from_hz, to_hz, filter="kaiser_best")`` padded
    with zeros to ``ceil(len * to_hz / from_hz)`` samples, as librosa 0.9's
    ``resample(..., fix=True)`` wrote the baseline's ``_16k`` files.
    """
    check_resampler(resampler)
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    if resampler == "torchaudio":
        return torchaudio.functional.resample(torch.from_numpy(wave), from_hz, to_hz).numpy()
    try:
        import resampy  # imported here: 16 kHz input (and its tests) never needs numba
    except ImportError as exc:
        # Not a DataError: skip_bad_audio must not turn a missing package into bad files.
        raise GreensedError(f"resampling {from_hz} Hz audio with kaiser_best needs resampy "
                            f"({exc}): "
                            "pip install resampy==0.4.3, or set features.resampler = "
                            "\"torchaudio\"") from None
    out = resampy.resample(wave, from_hz, to_hz, filter="kaiser_best", axis=-1)
    n_out = math.ceil(len(wave) * (float(to_hz) / from_hz))  # librosa's expression
    return np.pad(out, (0, max(n_out - len(out), 0)))[:n_out]


def load_clip(path: str | Path, *, sample_rate: int = SAMPLE_RATE, clip_s: float = CLIP_S,
              resampler: str = "kaiser_best") -> Clip:
    """Read, mix to mono, resample to sample_rate and pad or crop to clip_s."""
    data, sr = read_audio(path)
    # Mono first, then one resampling: both linear, so this equals the baseline's
    # per-channel resampling and mean up to float rounding.
    wave = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    duration_s = len(wave) / sr
    if sr != sample_rate:
        wave = resample(wave, sr, sample_rate, resampler)
    wave, start = fit_length(wave, round(clip_s * sample_rate))
    return Clip(np.ascontiguousarray(wave, dtype=np.float32), duration_s, start / sample_rate)
