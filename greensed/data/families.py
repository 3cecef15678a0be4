"""The ten procedural sound families of the synthetic soundscapes, and their background.

Each of the ten DESED classes gets a family with its own spectro-temporal
signature (docs/data.md); every call draws its own pitch, rate and timbre from
``rng``, so a detector has to learn the family, not one template. A family is
``fn(rng, n_samples) -> float array``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from greensed.data.spec import CLASSES, SAMPLE_RATE

SR = SAMPLE_RATE
NYQ = SR / 2


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


def shaped_noise(rng: np.random.Generator, n: int, gain: Callable[[np.ndarray], np.ndarray]
                  ) -> np.ndarray:
    """White noise shaped by a magnitude response gain(freq_hz), unit RMS."""
    m = _fast_len(n)
    spec = np.fft.rfft(rng.standard_normal(m))
    spec *= gain(np.fft.rfftfreq(m, 1 / SR))
    x = np.fft.irfft(spec, m)[:n]
    return x / (np.sqrt(np.mean(x**2)) + 1e-12)


def band(lo: float, hi: float, edge: float = 0.25) -> Callable[[np.ndarray], np.ndarray]:
    """Band-pass with smooth (log-frequency, raised-cosine) edges, edge in octaves."""
    def gain(f: np.ndarray) -> np.ndarray:
        lf = np.log2(np.maximum(f, 1.0))
        a = np.clip((lf - (math.log2(lo) - edge)) / edge, 0, 1)
        b = np.clip(((math.log2(hi) + edge) - lf) / edge, 0, 1)
        return np.sin(0.5 * np.pi * a) ** 2 * np.sin(0.5 * np.pi * b) ** 2
    return gain


def _lowpass_noise(rng: np.random.Generator, n: int, cutoff_hz: float) -> np.ndarray:
    """Slow random modulation signal, unit RMS."""
    return shaped_noise(rng, n, lambda f: (f < cutoff_hz).astype(float))


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
    grind = shaped_noise(rng, n, band(lo, lo * rng.uniform(2, 4)))
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
        noise = shaped_noise(rng, m, band(500, 3500))
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
    gain = band(lo, hi, edge=0.5)(kk * f0)
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
    spec *= band(1500, 7800)(np.fft.rfftfreq(m, 1 / SR))
    crackle = np.fft.irfft(spec, m)[:n]
    crackle /= np.sqrt(np.mean(crackle**2)) + 1e-12
    hiss = shaped_noise(rng, n, band(rng.uniform(2500, 4000), 7800))
    return crackle + rng.uniform(0.2, 0.5) * hiss


def running_water(rng: np.random.Generator, n: int) -> np.ndarray:
    """Flowing band noise with fast random loudness modulation, plus bubble chirps."""
    fc = rng.uniform(500, 2000)
    flow = shaped_noise(rng, n, band(fc / 1.6, fc * rng.uniform(2, 3.5), edge=0.5))
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
            out[a:a + fn] += 0.6 * shaped_noise(rng, fn, band(lo, min(lo * 1.8, 7800)))
    return out


def vacuum(rng: np.random.Generator, n: int) -> np.ndarray:
    """Broadband roar (pinkish noise with a low-mid bump) plus a high fan whine."""
    t = np.arange(n) / SR
    bump = rng.uniform(300, 1200)
    roar = shaped_noise(rng, n, lambda f: (np.maximum(f, 50.0) / 50.0) ** -0.35
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
    noise = shaped_noise(rng, n, lambda f: np.maximum(f, 20.0) ** (-beta / 2)
                          * (1 / (1 + (f / cutoff) ** 4)))
    mains = rng.choice([50.0, 60.0])
    hum = _harmonics(2 * np.pi * mains * np.arange(n) / SR,
                     1 / np.arange(1, rng.integers(2, 6) + 1), rng)
    hum_level = 10 ** (rng.uniform(-25, -8) / 20)
    x = noise + hum_level * hum / (np.sqrt(np.mean(hum**2)) + 1e-12)
    return x / np.sqrt(np.mean(x**2))
