"""Synthetic DESED-like soundscapes: ten procedural sound families over noise.

Each of the ten DESED classes gets a family of sounds with its own
spectro-temporal signature (see ``FAMILIES`` and docs/data.md); every event
draws its own pitch, rate and timbre, so a detector has to learn the family,
not one template. Events are mixed over coloured noise plus mains hum at a
random event-to-background SNR.

Deterministic: clip ``i`` of subset ``s`` draws everything from
``np.random.default_rng(SeedSequence(seed, spawn_key=(s, i)))``, so the same
seed and preset give byte-identical wavs and tsvs, in any order and with any
number of worker processes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from greensed.data.spec import CLASSES, CLIP_S, SAMPLE_RATE
from greensed.data.tsv import write_strong_tsv, write_weak_tsv
from greensed.errors import ConfigError, DataError

# Bump when the generated audio changes, so cached datasets are regenerated.
GENERATOR_VERSION = 1
MARKER = "greensed-synth.json"
SR = SAMPLE_RATE
NYQ = SR / 2

# Subset name -> (audio folder, tsv or None, tsv kind) in the default layout.
LAYOUT: dict[str, tuple[str, str | None]] = {
    "strong": ("audio/train/synthetic", "metadata/train/synthetic.tsv"),
    "weak": ("audio/train/weak", "metadata/train/weak.tsv"),
    "unlabelled": ("audio/train/unlabelled", None),
    "validation": ("audio/validation", "metadata/validation/validation.tsv"),
}
SUBSETS = tuple(LAYOUT)


@dataclass(frozen=True)
class SynthPreset:
    n_strong: int
    n_weak: int
    n_unlabelled: int
    n_validation: int
    events_per_clip: tuple[int, int] = (2, 4)  # inclusive range
    event_duration_s: tuple[float, float] = (0.8, 4.0)
    snr_db: tuple[float, float] = (6.0, 20.0)  # event RMS over background RMS
    max_polyphony: int = 2  # events sounding at once, at most
    background_dbfs: tuple[float, float] = (-45.0, -30.0)  # background RMS level
    # RMS of a class-specific band-noise cue added under each event, relative to the
    # event (0: none). It gives every class an area-like mark in the mel that a CNN
    # picks up within a few hundred steps: the CPU-sized quick preset uses it so
    # that a 10-minute run learns all ten classes; the other presets do not.
    cue: float = 0.0

    def size(self, subset: str) -> int:
        return int(getattr(self, f"n_{subset}"))


PRESETS: dict[str, SynthPreset] = {
    # CPU-sized and learnable in ~300 steps of batch 8: dense, long, loud events,
    # each with its class's band cue (see SynthPreset.cue).
    "quick": SynthPreset(n_strong=48, n_weak=48, n_unlabelled=96, n_validation=64,
                         events_per_clip=(3, 5), event_duration_s=(1.5, 5.0),
                         snr_db=(10.0, 25.0), cue=3.0),
    # The policy benchmark's corpus (benchmarks/curves/): quick's learnable events on
    # half its training clips, so an epoch takes 15-20 s on 2 CPU cores and a 60-epoch
    # run sees the F1 curve rise, saturate and (24 strong clips overfit) turn down.
    "curves": SynthPreset(n_strong=24, n_weak=24, n_unlabelled=48, n_validation=64,
                          events_per_clip=(3, 5), event_duration_s=(1.5, 5.0),
                          snr_db=(10.0, 25.0), cue=3.0),
    "small": SynthPreset(n_strong=384, n_weak=384, n_unlabelled=768, n_validation=384),
    # DESED 2022 sizes; density and SNR range of its synthetic soundscapes.
    "paper-like": SynthPreset(
        n_strong=10000, n_weak=1578, n_unlabelled=14412, n_validation=2500,
        events_per_clip=(1, 5), event_duration_s=(0.3, 10.0), snr_db=(6.0, 30.0),
        max_polyphony=3,
    ),
}


def get_preset(name: str) -> SynthPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown synthetic preset ({name!r}); choose one of {', '.join(PRESETS)}"
        ) from None


# --- signal helpers ------------------------------------------------------------

def _fast_len(n: int) -> int:
    """Smallest 5-smooth length >= n: pocketfft is slow on large prime factors."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def _shaped_noise(rng: np.random.Generator, n: int, gain: Callable[[np.ndarray], np.ndarray]
                  ) -> np.ndarray:
    """White noise shaped by a magnitude response gain(freq_hz), unit RMS."""
    m = _fast_len(n)
    spec = np.fft.rfft(rng.standard_normal(m))
    spec *= gain(np.fft.rfftfreq(m, 1 / SR))
    x = np.fft.irfft(spec, m)[:n]
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def _band(lo: float, hi: float, edge: float = 0.25) -> Callable[[np.ndarray], np.ndarray]:
    """Band-pass with smooth (log-frequency, raised-cosine) edges, edge in octaves."""
    def gain(f: np.ndarray) -> np.ndarray:
        lf = np.log2(np.maximum(f, 1.0))
        a = np.clip((lf - (math.log2(lo) - edge)) / edge, 0, 1)
        b = np.clip(((math.log2(hi) + edge) - lf) / edge, 0, 1)
        return np.sin(0.5 * np.pi * a) ** 2 * np.sin(0.5 * np.pi * b) ** 2
    return gain


def _lowpass_noise(rng: np.random.Generator, n: int, cutoff_hz: float) -> np.ndarray:
    """Slow random modulation signal, unit RMS."""
    return _shaped_noise(rng, n, lambda f: (f < cutoff_hz).astype(float))


def _harmonics(phase: np.ndarray, amps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """sum_k amps[k] sin((k+1) phase + phi_k); phase is the fundamental's phase.

    Powers of exp(i phase) by repeated multiplication: K complex products are
    several times cheaper than K sines.
    """
    phi = rng.uniform(0, 2 * np.pi, len(amps))
    z = np.exp(1j * phase)
    zk = z.copy()
    out = np.zeros(len(phase))
    for k, a in enumerate(amps):
        if k:
            zk *= z
        if a:
            out += a * (zk * np.exp(1j * phi[k])).imag
    return out


def _phase(freq: np.ndarray) -> np.ndarray:
    return 2 * np.pi * np.cumsum(freq) / SR


def _segments(rng: np.random.Generator, n: int, length_s: tuple[float, float],
              gap_s: tuple[float, float]) -> list[tuple[int, int]]:
    """Back-to-back (start, stop) sample spans covering [0, n): the first starts at 0
    and the last ends at n, so the labelled span is the sounding span."""
    spans, pos = [], 0
    while pos < n:
        seg = int(rng.uniform(*length_s) * SR)
        if n - (pos + seg) < length_s[0] * SR * 0.5:
            seg = n - pos  # stretch the last one to the end
        spans.append((pos, min(pos + seg, n)))
        pos += seg + int(rng.uniform(*gap_s) * SR)
    return spans


def _decay(n: int, tau_s: float, attack_s: float = 0.002) -> np.ndarray:
    t = np.arange(n) / SR
    return np.minimum(t / attack_s, 1.0) * np.exp(-t / tau_s)


# --- the ten families: fn(rng, n_samples) -> float array -------------------------

def alarm_bell(rng: np.random.Generator, n: int) -> np.ndarray:
    """Inharmonic bell partials re-struck at a steady rate, decaying between strikes."""
    f0 = rng.uniform(500, 1400)
    ratios = np.array([1.0, 2.32, 4.25, 6.63]) * rng.uniform(0.97, 1.03, 4)
    freqs = f0 * ratios
    freqs = freqs[freqs < NYQ - 400]
    amps = rng.uniform(0.4, 1.0, len(freqs)) / np.arange(1, len(freqs) + 1) ** 0.5
    if rng.random() < 0.6:  # electric bell: fast hammer
        rate, tau = rng.uniform(8, 20), rng.uniform(0.02, 0.05)
    else:  # phone/door bell: slower strikes, longer ring
        rate, tau = rng.uniform(1.5, 4), rng.uniform(0.08, 0.25)
    t = np.arange(n) / SR
    env = np.exp(-((t * rate) % 1.0) / rate / tau)
    tones = np.sin(2 * np.pi * t[:, None] * freqs + rng.uniform(0, 2 * np.pi, len(freqs))) @ amps
    return env * tones


def blender(rng: np.random.Generator, n: int) -> np.ndarray:
    """Motor hum: harmonic series whose pitch wobbles under load, plus grinding noise."""
    t = np.arange(n) / SR
    f0 = rng.uniform(90, 220)
    wob = 1 + rng.uniform(0.01, 0.05) * np.sin(2 * np.pi * rng.uniform(0.5, 4) * t
                                               + rng.uniform(0, 6.3))
    k = int(min(40, 6000 / f0))
    amps = 1 / np.arange(1, k + 1) ** rng.uniform(0.7, 1.2)
    hum = _harmonics(_phase(f0 * wob), amps, rng)
    hum /= np.sqrt(np.mean(hum**2)) + 1e-12
    lo = rng.uniform(800, 1800)
    grind = _shaped_noise(rng, n, _band(lo, lo * rng.uniform(2, 4)))
    return hum * (0.6 + 0.4 * wob / wob.max()) + rng.uniform(0.3, 0.8) * grind * wob


def cat(rng: np.random.Generator, n: int) -> np.ndarray:
    """Meows: harmonic calls whose pitch rises then falls, with a moving formant."""
    out = np.zeros(n)
    for a, b in _segments(rng, n, (0.45, 1.1), (0.05, 0.25)):
        m = b - a
        tau = np.linspace(0, 1, m)
        peak = rng.uniform(450, 950)
        start, end, tp = peak * rng.uniform(0.6, 0.8), peak * rng.uniform(0.5, 0.8), \
            rng.uniform(0.25, 0.5)
        f = np.where(tau < tp, start + (peak - start) * np.sin(0.5 * np.pi * tau / tp),
                     peak + (end - peak) * np.sin(0.5 * np.pi * np.clip((tau - tp) / (1 - tp),
                                                                        0, 1)))
        k = int(min(10, (NYQ - 500) / peak))
        formant = rng.uniform(1200, 2500)
        kk = np.arange(1, k + 1)
        amps = (1 / kk) * (1 + 3 * np.exp(-(((kk * peak) - formant) / 600) ** 2))
        env = np.sin(np.pi * tau) ** 0.6
        out[a:b] = env * _harmonics(_phase(f), amps, rng)
    return out


def dishes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Clinks: a few inharmonic high partials with a fast decay, at random instants."""
    out = np.zeros(n)
    n_clinks = max(2, int(n / SR * rng.uniform(2, 6)))
    clink_n = int(0.15 * SR)
    starts = np.sort(rng.integers(0, max(n - clink_n, 1), n_clinks))
    starts[0], starts[-1] = 0, max(n - clink_n, 0)
    t = np.arange(clink_n) / SR
    for s in starts:
        freqs = rng.uniform(2000, 7500, rng.integers(3, 7))
        tones = np.sin(2 * np.pi * t[:, None] * freqs + rng.uniform(0, 6.3, len(freqs)))
        clink = tones @ rng.uniform(0.3, 1.0, len(freqs)) * _decay(clink_n, rng.uniform(0.01,
                                                                                         0.04))
        seg = out[s:s + clink_n]
        seg += rng.uniform(0.4, 1.0) * clink[:len(seg)]
    return out


def dog(rng: np.random.Generator, n: int) -> np.ndarray:
    """Barks: short harsh bursts, harmonic with falling pitch plus noise."""
    out = np.zeros(n)
    f_base = rng.uniform(300, 650)
    for a, b in _segments(rng, n, (0.12, 0.3), (0.12, 0.5)):
        m = b - a
        f = f_base * rng.uniform(0.9, 1.1) * np.linspace(1.0, rng.uniform(0.6, 0.8), m)
        k = int(min(12, (NYQ - 500) / f_base))
        voiced = _harmonics(_phase(f), 1 / np.arange(1, k + 1) ** 0.8, rng)
        noise = _shaped_noise(rng, m, _band(500, 3500))
        env = _decay(m, rng.uniform(0.06, 0.12), attack_s=0.008)
        out[a:b] = env * (voiced / (np.sqrt(np.mean(voiced**2)) + 1e-12)
                          + rng.uniform(0.3, 0.7) * noise)
    return out


def shaver(rng: np.random.Generator, n: int) -> np.ndarray:
    """Buzz: a 100-220 Hz pulse train (flat harmonics) seen through a band-pass."""
    t = np.arange(n) / SR
    f0 = rng.uniform(100, 220)
    lo = rng.uniform(800, 2000)
    hi = min(lo * rng.uniform(2, 4), NYQ - 300)
    kk = np.arange(1, int((NYQ - 200) / f0) + 1)
    gain = _band(lo, hi, edge=0.5)(kk * f0)
    keep = gain > 1e-3
    f = f0 * (1 + 0.004 * np.sin(2 * np.pi * rng.uniform(0.2, 1) * t))
    phase = _phase(f)
    amps = np.zeros(kk[keep].max())
    amps[kk[keep] - 1] = gain[keep]
    buzz = _harmonics(phase, amps, rng)
    # Toothbrush-style scrubbing: a slow partial loudness change.
    am = 1 + rng.uniform(0, 0.3) * np.sin(2 * np.pi * rng.uniform(2, 6) * t)
    return buzz * am


def frying(rng: np.random.Generator, n: int) -> np.ndarray:
    """Crackle: sparse random impulses, ringing briefly, over high hiss."""
    m = _fast_len(n)
    rate = rng.uniform(40, 200)
    clicks = np.zeros(m)
    idx = rng.integers(0, m, rng.poisson(rate * m / SR))
    clicks[idx] = rng.exponential(1.0, len(idx)) * rng.choice([-1, 1], len(idx))
    kernel = np.zeros(m)
    kn = int(0.003 * SR)
    kernel[:kn] = rng.standard_normal(kn) * _decay(kn, 0.0008, attack_s=1e-4)
    spec = np.fft.rfft(clicks) * np.fft.rfft(kernel)
    spec *= _band(1500, 7800)(np.fft.rfftfreq(m, 1 / SR))
    crackle = np.fft.irfft(spec, m)[:n]
    crackle /= np.sqrt(np.mean(crackle**2)) + 1e-12
    hiss = _shaped_noise(rng, n, _band(rng.uniform(2500, 4000), 7800))
    return crackle + rng.uniform(0.2, 0.5) * hiss


def running_water(rng: np.random.Generator, n: int) -> np.ndarray:
    """Flowing band noise with fast random loudness modulation, plus bubble chirps."""
    fc = rng.uniform(500, 2000)
    flow = _shaped_noise(rng, n, _band(fc / 1.6, fc * rng.uniform(2, 3.5), edge=0.5))
    mod = 1 + 0.5 * _lowpass_noise(rng, n, rng.uniform(6, 20))
    out = flow * np.clip(mod, 0.1, None)
    bubble_n = int(0.02 * SR)
    t = np.arange(bubble_n) / SR
    n_bubbles = rng.poisson(rng.uniform(20, 80) * n / SR)
    for s in rng.integers(0, max(n - bubble_n, 1), n_bubbles):
        f = rng.uniform(600, 3000)
        chirp = np.sin(2 * np.pi * f * t * (1 + 20 * t)) * _decay(bubble_n, 0.006)
        seg = out[s:s + bubble_n]
        seg += rng.uniform(0.5, 2.0) * chirp[:len(seg)]
    return out


VOWELS = np.array([[730, 1090, 2440], [270, 2290, 3010], [300, 870, 2240],
                   [530, 1840, 2480], [660, 1720, 2410], [570, 840, 2410]], dtype=float)


def speech(rng: np.random.Generator, n: int) -> np.ndarray:
    """Syllables: glottal harmonics through vowel formants, a pitch contour, some
    fricative onsets."""
    out = np.zeros(n)
    f_speaker = rng.uniform(90, 250)
    shift = rng.uniform(0.9, 1.2)  # vocal tract length: scales formants
    spans = _segments(rng, n, (0.12, 0.32), (0.02, 0.15))
    decl = np.linspace(1.1, 0.9, len(spans))  # phrase declination
    for (a, b), d in zip(spans, decl, strict=True):
        m = b - a
        tau = np.linspace(0, 1, m)
        f0 = f_speaker * d * rng.uniform(0.9, 1.15) * (1 + rng.uniform(-0.15, 0.15) * tau)
        formants = VOWELS[rng.integers(len(VOWELS))] * shift
        k = int(min(40, 4000 / f_speaker))
        hf = np.arange(1, k + 1) * f0.mean()
        bw = np.array([90.0, 110.0, 150.0])
        env_f = (1 / (1 + ((hf[:, None] - formants) / bw) ** 2)) @ np.array([1.0, 0.6, 0.3])
        amps = env_f / np.arange(1, k + 1) ** 0.5
        voiced = _harmonics(_phase(f0), amps, rng) * np.sin(np.pi * tau) ** 0.5
        out[a:b] = voiced / (np.sqrt(np.mean(voiced**2)) + 1e-12)
        if rng.random() < 0.35:  # fricative onset (s, sh, f)
            fn = min(m, int(rng.uniform(0.03, 0.08) * SR))
            lo = rng.uniform(2500, 4500)
            out[a:a + fn] += 0.6 * _shaped_noise(rng, fn, _band(lo, min(lo * 1.8, 7800)))
    return out


def vacuum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Broadband roar (pinkish noise with a low-mid bump) plus a high fan whine."""
    t = np.arange(n) / SR
    bump = rng.uniform(300, 1200)
    roar = _shaped_noise(rng, n, lambda f: (np.maximum(f, 50.0) / 50.0) ** -0.35
                         * (1 + 2 * np.exp(-((f - bump) / bump) ** 2)))
    fw = rng.uniform(1500, 4000)
    spin = 1 - rng.uniform(0.2, 0.4) * np.exp(-t / 0.25)  # motor spinning up
    f = fw * spin * (1 + 0.003 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t))
    whine = _harmonics(_phase(f), np.array([1.0, 0.4 if 2 * fw < NYQ - 200 else 0.0]), rng)
    return roar + rng.uniform(0.3, 0.8) * whine * np.sqrt(2)


FAMILIES: tuple[Callable[[np.random.Generator, int], np.ndarray], ...] = (
    alarm_bell, blender, cat, dishes, dog, shaver, frying, running_water, speech, vacuum,
)
assert len(FAMILIES) == len(CLASSES)


def background(rng: np.random.Generator, n: int) -> np.ndarray:
    """Coloured noise (1/f^beta, beta in [0, 1.6]) plus mains hum, unit RMS."""
    beta = rng.uniform(0.0, 1.6)
    cutoff = rng.uniform(3000, 8000)
    noise = _shaped_noise(rng, n, lambda f: np.maximum(f, 20.0) ** (-beta / 2)
                          * (1 / (1 + (f / cutoff) ** 4)))
    mains = rng.choice([50.0, 60.0])
    hum = _harmonics(2 * np.pi * mains * np.arange(n) / SR,
                     1 / np.arange(1, rng.integers(2, 6) + 1), rng)
    hum_level = 10 ** (rng.uniform(-25, -8) / 20)
    x = noise + hum_level * hum / (np.sqrt(np.mean(hum**2)) + 1e-12)
    return x / np.sqrt(np.mean(x**2))


# --- clips -----------------------------------------------------------------------

def place_events(rng: np.random.Generator, preset: SynthPreset,
                 clip_s: float = CLIP_S) -> list[tuple[int, float, float]]:
    """(class, onset_s, offset_s) events, in ms, with at most max_polyphony overlapping
    and no class overlapping itself."""
    lo, hi = preset.events_per_clip
    wanted = int(rng.integers(lo, hi + 1))
    events: list[tuple[int, float, float]] = []
    for _ in range(wanted * 20):
        if len(events) == wanted:
            break
        cls = int(rng.integers(len(CLASSES)))
        dur = min(rng.uniform(*preset.event_duration_s), clip_s)
        on = round(rng.uniform(0, clip_s - dur), 3)
        off = round(min(on + dur, clip_s), 3)
        if any(c == cls and o < off and on < f for c, o, f in events):
            continue
        # Polyphony peaks at an onset inside [on, off) (or at on itself).
        points = [on] + [o for _, o, _ in events if on <= o < off]
        depth = max(sum(1 for _, o, f in events if o <= p < f) for p in points)
        if depth + 1 > preset.max_polyphony:
            continue
        events.append((cls, on, off))
    return sorted(events, key=lambda e: (e[1], e[0]))


# Ten adjacent bands, log-spaced over 150-7,500 Hz: class i's cue sits in band i.
_EDGES = np.geomspace(150.0, 7500.0, len(CLASSES) + 1)
CUE_BANDS_HZ = tuple((float(lo), float(hi)) for lo, hi in zip(_EDGES[:-1], _EDGES[1:], strict=True))


def make_clip(rng: np.random.Generator, preset: SynthPreset,
              clip_s: float = CLIP_S) -> tuple[np.ndarray, list[tuple[int, float, float]]]:
    """One soundscape: (float32 wave in [-1, 1], events)."""
    n = round(clip_s * SR)
    events = place_events(rng, preset, clip_s)
    bg_level = 10 ** (rng.uniform(*preset.background_dbfs) / 20)
    mix = background(rng, n) * bg_level
    ramp_n = int(0.01 * SR)
    ramp = np.sin(0.5 * np.pi * np.linspace(0, 1, ramp_n)) ** 2
    for cls, on, off in events:
        a, b = round(on * SR), round(off * SR)
        sig = FAMILIES[cls](rng, b - a)
        if preset.cue > 0:
            sig = sig / (np.sqrt(np.mean(sig**2)) + 1e-12)
            sig = sig + preset.cue * _shaped_noise(rng, b - a, _band(*CUE_BANDS_HZ[cls], 0.1))
        r = min(ramp_n, (b - a) // 2)
        sig[:r] *= ramp[:r]
        sig[len(sig) - r:] *= ramp[:r][::-1]
        snr_db = rng.uniform(*preset.snr_db)
        mix[a:b] += sig * (bg_level * 10 ** (snr_db / 20) / (np.sqrt(np.mean(sig**2)) + 1e-12))
    peak = np.abs(mix).max()
    if peak > 0.95:  # keep 16-bit PCM from clipping
        mix *= 0.95 / peak
    return mix.astype(np.float32), events


def clip_rng(seed: int, subset: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SUBSETS.index(subset),
                                                                          index)))


def clip_name(subset: str, index: int) -> str:
    return f"{subset}_{index:05d}.wav"


def _write_clip(job: tuple[Path, str, int, int, SynthPreset]
                ) -> tuple[str, list[tuple[int, float, float]]]:
    folder, subset, index, seed, preset = job
    wave, events = make_clip(clip_rng(seed, subset, index), preset)
    name = clip_name(subset, index)
    sf.write(folder / name, wave, SR, subtype="PCM_16", format="WAV")
    return name, events


def _marker(preset: SynthPreset, seed: int) -> dict:
    # Through JSON so that it compares equal to a marker read back (tuples -> lists).
    return json.loads(json.dumps({"generator_version": GENERATOR_VERSION, "seed": seed,
                                  "preset": dataclasses.asdict(preset)}))


def generate(out_dir: str | Path, preset: str | SynthPreset = "quick", seed: int = 0, *,
             workers: int = 1) -> Path:
    """Write a synthetic dataset in the default DESED-like layout; returns out_dir.

    out_dir must not exist or be empty. ``workers`` > 1 uses processes; the
    output does not depend on it.
    """
    p = get_preset(preset) if isinstance(preset, str) else preset
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: output folder exists and is not empty")
    for audio, tsv in LAYOUT.values():
        (out / audio).mkdir(parents=True, exist_ok=True)
        if tsv:
            (out / tsv).parent.mkdir(parents=True, exist_ok=True)
    jobs = [(out / LAYOUT[s][0], s, i, seed, p) for s in SUBSETS for i in range(p.size(s))]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_write_clip, jobs, chunksize=16))
    else:
        results = [_write_clip(j) for j in jobs]
    Events = list[tuple[int, float, float]]
    by_subset: dict[str, list[tuple[str, Events]]] = {s: [] for s in SUBSETS}
    for job, res in zip(jobs, results, strict=True):
        by_subset[job[1]].append(res)
    for subset in ("strong", "validation"):
        rows = [(name, on, off, CLASSES[c]) for name, evs in by_subset[subset]
                for c, on, off in evs]
        write_strong_tsv(out / LAYOUT[subset][1], rows)
    weak_rows = [(name, [CLASSES[c] for c in sorted({c for c, _, _ in evs})])
                 for name, evs in by_subset["weak"]]
    write_weak_tsv(out / LAYOUT["weak"][1], weak_rows)
    (out / MARKER).write_text(json.dumps(_marker(p, seed), indent=2, sort_keys=True) + "\n")
    return out


def ensure_synth(cache_dir: str | Path, preset: str, seed: int,
                 progress: Callable[[str], None] | None = None) -> Path:
    """The embedded dataset under <cache_dir>/synth/<preset>-seed<seed>/, generated once.

    Generation goes to a temporary folder renamed into place, so an interrupted
    run never leaves a half dataset that looks complete. A dataset from another
    generator version or preset definition is replaced.
    """
    p = get_preset(preset)
    base = Path(cache_dir) / "synth"
    target = base / f"{preset}-seed{seed}"
    want = _marker(p, seed)
    marker = target / MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == want:
                return target
        except (OSError, json.JSONDecodeError):
            pass
    base.mkdir(parents=True, exist_ok=True)
    tmp = base / f".tmp-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    total = sum(p.size(s) for s in SUBSETS)
    if progress is not None:
        progress(f"generating the '{preset}' synthetic DESED-like set ({total} clips) into "
                 f"{target} (once)")
    generate(tmp, p, seed, workers=min(4, os.cpu_count() or 1) if total >= 200 else 1)
    if target.exists():  # stale: other generator version or preset
        stale = base / f".stale-{target.name}-{os.getpid()}"
        os.replace(target, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.replace(tmp, target)
    except OSError:  # another process put it in place first
        shutil.rmtree(tmp, ignore_errors=True)
    return target
