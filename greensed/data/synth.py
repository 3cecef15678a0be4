"""Synthetic DESED-like soundscapes: the ten sound families of
greensed.data.families, placed as events over coloured noise plus mains hum at
a random event-to-background SNR, written in the DESED layout.

Deterministic: clip ``i`` of subset ``s`` draws everything from
``np.random.default_rng(SeedSequence(seed, spawn_key=(s, i)))``, so the same
seed and preset give byte-identical wavs and tsvs, in any order and with any
number of worker processes.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from greensed.data.families import FAMILIES, background, band, shaped_noise
from greensed.data.spec import CLASSES, CLIP_S, SAMPLE_RATE
from greensed.data.tsv import write_strong_tsv, write_weak_tsv
from greensed.errors import ConfigError, DataError

# Bump when the generated audio changes, so cached datasets are regenerated.
GENERATOR_VERSION = 1
MARKER = "greensed-synth.json"
SR = SAMPLE_RATE

# Subset name -> (audio folder, tsv or None, tsv kind) in the default layout.
LAYOUT: dict[str, tuple[str, str | None]] = {
    "strong": ("audio/train/synthetic", "metadata/train/synthetic.tsv"),
    "weak": ("audio/train/weak", "metadata/train/weak.tsv"),
    "unlabelled": ("audio/train/unlabelled", None),
    "validation": ("audio/validation", "metadata/validation/validation.tsv"),
}
SUBSETS = tuple(LAYOUT)
# The held-out test subset (SynthPreset.n_test > 0): where greensed's own layout looks
# for one (greensed.data.layout.OWN_TEST), scored by nothing any decision reads.
TEST = "test"
TEST_LAYOUT = ("audio/test", "metadata/test/test.tsv")


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
    # Fraction of the training events (strong and weak subsets; never validation) whose
    # written label names another, random class; the audio is unchanged. A network
    # first learns the true classes, then memorises these wrong labels (its training
    # loss keeps falling while validation F1 stays on its plateau).
    label_noise: float = 0.0
    # Seconds added to the offset of every strong training label (clipped to the clip;
    # never validation): a systematic annotation bias, as when annotators' boundaries
    # differ from those of the validation set. The network first learns where the
    # events sound, then the bias: its detections come to outlast the events, and
    # the intersection F1 (DTC 0.7) falls after its peak.
    offset_bias_s: float = 0.0
    # Clips of the held-out test subset (clean labels, as validation); 0: none. Its clips
    # draw from their own seed stream (clip_rng), so they are none of the other subsets'.
    n_test: int = 0

    def size(self, subset: str) -> int:
        return int(getattr(self, f"n_{subset}"))

    @property
    def subsets(self) -> tuple[str, ...]:
        """The subsets this preset writes: the four, and test when it has one."""
        return SUBSETS + ((TEST,) if self.n_test > 0 else ())


PRESETS: dict[str, SynthPreset] = {
    # CPU-sized and learnable in ~300 steps of batch 8: dense, long, loud events,
    # each with its class's band cue (see SynthPreset.cue).
    "quick": SynthPreset(n_strong=48, n_weak=48, n_unlabelled=96, n_validation=64,
                         events_per_clip=(3, 5), event_duration_s=(1.5, 5.0),
                         snr_db=(10.0, 25.0), cue=3.0, n_test=64),
    # quick's learnable events on half its training clips: an epoch of 15-20 s on 2 CPU
    # cores, whose F1 curve still creeps up after 100 epochs (its clean labels do not
    # overfit); curves-noisy below is the benchmark's corpus.
    "curves": SynthPreset(n_strong=24, n_weak=24, n_unlabelled=48, n_validation=64,
                          events_per_clip=(3, 5), event_duration_s=(1.5, 5.0),
                          snr_db=(10.0, 25.0), cue=3.0, n_test=64),
    # curves with 30 % of the training labels wrong (SynthPreset.label_noise): the F1
    # curve reaches a plateau within about 30 epochs while the network memorises them,
    # and still creeps up to the cap (maxima at epochs 63 and 97 of 100).
    "curves-noisy": SynthPreset(n_strong=24, n_weak=24, n_unlabelled=48, n_validation=64,
                                events_per_clip=(3, 5), event_duration_s=(1.5, 5.0),
                                snr_db=(10.0, 25.0), cue=3.0, label_noise=0.3, n_test=64),
    # The policy benchmark's corpus (benchmarks/curves): curves with every strong
    # training label 1 s too long (SynthPreset.offset_bias_s), whose F1 peaks and
    # falls, as overfitting a biased training set does.
    "curves-biased": SynthPreset(n_strong=24, n_weak=24, n_unlabelled=48, n_validation=64,
                                 events_per_clip=(3, 5), event_duration_s=(1.5, 5.0),
                                 snr_db=(10.0, 25.0), cue=3.0, offset_bias_s=1.0, n_test=64),
    # Corpus v2 (benchmarks/curves-v2): curves' clean, learnable events on twice its
    # training clips, with a validation set large enough that the watched F1 moves
    # little from one epoch to the next, and a held-out test set.
    "curves-v2": SynthPreset(n_strong=48, n_weak=48, n_unlabelled=96, n_validation=512,
                             events_per_clip=(3, 5), event_duration_s=(1.5, 5.0),
                             snr_db=(10.0, 25.0), cue=3.0, n_test=256),
    "small": SynthPreset(n_strong=384, n_weak=384, n_unlabelled=768, n_validation=384,
                         n_test=384),
    # DESED 2022 sizes; density and SNR range of its synthetic soundscapes.
    "paper-like": SynthPreset(
        n_strong=10000, n_weak=1578, n_unlabelled=14412, n_validation=2500,
        events_per_clip=(1, 5), event_duration_s=(0.3, 10.0), snr_db=(6.0, 30.0),
        max_polyphony=3, n_test=1168,  # as DESED's recorded validation set, its test set
    ),
}


def get_preset(name: str) -> SynthPreset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown synthetic preset ({name!r}); choose one of {', '.join(PRESETS)}"
        ) from None


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
            sig = sig + preset.cue * shaped_noise(rng, b - a, band(*CUE_BANDS_HZ[cls], 0.1))
        r = min(ramp_n, (b - a) // 2)
        sig[:r] *= ramp[:r]
        sig[len(sig) - r:] *= ramp[:r][::-1]
        snr_db = rng.uniform(*preset.snr_db)
        mix[a:b] += sig * (bg_level * 10 ** (snr_db / 20) / (np.sqrt(np.mean(sig**2)) + 1e-12))
    peak = np.abs(mix).max()
    if peak > 0.95:  # keep 16-bit PCM from clipping
        mix *= 0.95 / peak
    return mix.astype(np.float32), events


def subset_key(subset: str) -> int:
    """A subset's seed stream: the four in SUBSETS order, then test."""
    return len(SUBSETS) if subset == TEST else SUBSETS.index(subset)


def clip_rng(seed: int, subset: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(subset_key(subset),
                                                                          index)))


def subset_paths(subset: str) -> tuple[str, str | None]:
    """(audio folder, tsv or None) of a subset in the default layout."""
    return TEST_LAYOUT if subset == TEST else LAYOUT[subset]


def clip_name(subset: str, index: int) -> str:
    return f"{subset}_{index:05d}.wav"


def _write_clip(job: tuple[Path, str, int, int, SynthPreset]
                ) -> tuple[str, list[tuple[int, float, float]]]:
    folder, subset, index, seed, preset = job
    wave, events = make_clip(clip_rng(seed, subset, index), preset)
    name = clip_name(subset, index)
    sf.write(folder / name, wave, SR, subtype="PCM_16", format="WAV")
    if preset.label_noise > 0 and subset in ("strong", "weak"):
        events = noisy_labels(events, preset.label_noise, seed, subset, index)
    if preset.offset_bias_s > 0 and subset == "strong":
        events = [(c, on, min(CLIP_S, off + preset.offset_bias_s)) for c, on, off in events]
    return name, events


def noisy_labels(events: list[tuple[int, float, float]], fraction: float, seed: int,
                 subset: str, index: int) -> list[tuple[int, float, float]]:
    """``events`` with each class replaced, with probability ``fraction``, by another
    random class; from its own generator, so the audio is that of a noise-free set."""
    rng = np.random.default_rng(np.random.SeedSequence(
        seed, spawn_key=(SUBSETS.index(subset), index, 1)))
    out = []
    for cls, on, off in events:
        if rng.random() < fraction:
            cls = int((cls + rng.integers(1, len(CLASSES))) % len(CLASSES))
        out.append((cls, on, off))
    return out


def _marker(preset: SynthPreset, seed: int) -> dict:
    fields = dataclasses.asdict(preset)
    if not preset.n_test:  # a set without test reads as one made before n_test existed
        del fields["n_test"]
    # Through JSON so that it compares equal to a marker read back (tuples -> lists).
    return json.loads(json.dumps({"generator_version": GENERATOR_VERSION, "seed": seed,
                                  "preset": fields}))


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
    for audio, tsv in map(subset_paths, p.subsets):
        (out / audio).mkdir(parents=True, exist_ok=True)
        if tsv:
            (out / tsv).parent.mkdir(parents=True, exist_ok=True)
    jobs = [(out / subset_paths(s)[0], s, i, seed, p) for s in p.subsets
            for i in range(p.size(s))]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = list(pool.map(_write_clip, jobs, chunksize=16))
    else:
        results = [_write_clip(j) for j in jobs]
    Events = list[tuple[int, float, float]]
    by_subset: dict[str, list[tuple[str, Events]]] = {s: [] for s in p.subsets}
    for job, res in zip(jobs, results, strict=True):
        by_subset[job[1]].append(res)
    for subset in ("strong", "validation", TEST)[:3 if p.n_test else 2]:
        rows = [(name, on, off, CLASSES[c]) for name, evs in by_subset[subset]
                for c, on, off in evs]
        write_strong_tsv(out / str(subset_paths(subset)[1]), rows)
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
    generator version or preset definition is replaced. Processes that want the
    same set at once take turns (a lock file beside it): the second waits and
    finds it made.
    """
    p = get_preset(preset)
    base = Path(cache_dir) / "synth"
    target = base / f"{preset}-seed{seed}"
    want = _marker(p, seed)
    if _valid(target, want):
        return target
    try:
        base.mkdir(parents=True, exist_ok=True)
        with open(base / f".{target.name}.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if progress is not None:
                    progress(f"waiting for another process generating {target}")
                fcntl.flock(lock, fcntl.LOCK_EX)
            if _valid(target, want):  # made while we waited
                return target
            _generate_into(target, p, preset, seed, progress)
    except OSError as exc:  # read-only, full, or a file where the folder should be
        raise DataError(f"{cache_dir}: cannot write the synthetic data cache "
                        f"({exc.strerror or exc}); free space, fix its permissions or "
                        "choose another --cache-dir") from None
    return target


def _valid(target: Path, want: dict) -> bool:
    try:
        return json.loads((target / MARKER).read_text()) == want
    except (OSError, json.JSONDecodeError):
        return False


def _generate_into(target: Path, p: SynthPreset, preset: str, seed: int,
                   progress: Callable[[str], None] | None) -> None:
    base = target.parent
    tmp = base / f".tmp-{target.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    total = sum(p.size(s) for s in p.subsets)
    if progress is not None:
        progress(f"generating the '{preset}' synthetic DESED-like set ({total} clips) into "
                 f"{target} (once)")
    try:
        generate(tmp, p, seed, workers=min(4, os.cpu_count() or 1) if total >= 200 else 1)
        if target.exists():  # stale: other generator version or preset
            stale = base / f".stale-{target.name}-{os.getpid()}"
            os.replace(target, stale)
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
