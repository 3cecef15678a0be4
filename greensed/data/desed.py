"""Load a DESED-style dataset (or the embedded synthetic one) as arrays for training.

A dataset is four subsets: ``strong`` (synthetic, strongly labelled), ``weak``
(clip tags), ``unlabelled`` (audio only) and ``validation`` (strongly
labelled). ``path`` is either a root folder in the default layout (see
``synth.LAYOUT`` and docs/data.md) or a TOML file naming each subset's audio
folder and tsv.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from greensed.config import FeatureConfig
from greensed.data.audio import AUDIO_SUFFIXES
from greensed.data.cache import load_or_extract
from greensed.data.features import n_frames
from greensed.data.labels import crop_events, encode_strong, encode_weak
from greensed.data.synth import LAYOUT, SUBSETS, ensure_synth
from greensed.data.tsv import read_strong_tsv, read_weak_tsv
from greensed.errors import DataError

# The CRNN pools time by 4 (626 feature frames -> 156 output frames).
TIME_POOLING = 4


@dataclass
class Subset:
    name: str  # "strong" | "weak" | "unlabelled" | "validation"
    files: list[str]  # file names as in the tsv / folder, in order
    mels: np.ndarray  # [N, 626, 128] float16 linear mel (memmap from the cache)
    strong: np.ndarray | None  # [N, 10, 156] uint8 frame labels (strong, validation)
    weak: np.ndarray | None  # [N, 10] uint8 clip labels; None for unlabelled
    # Ground truth (clip index, class index, onset_s, offset_s) after crop.
    events: list[tuple[int, int, float, float]] | None
    audio_dir: Path | None = None
    durations_s: list[float] | None = None  # of each file before pad/crop
    cache_key: str = ""
    cache_hit: bool = False
    skipped: list[str] = field(default_factory=list)  # unreadable files left out

    def __len__(self) -> int:
        return len(self.files)


@dataclass
class Dataset:
    root: Path
    strong: Subset
    weak: Subset
    unlabelled: Subset
    validation: Subset
    skipped_audio: list[str]  # files skipped with skip_bad_audio

    def subsets(self) -> list[Subset]:
        return [self.strong, self.weak, self.unlabelled, self.validation]


@dataclass(frozen=True)
class SubsetSource:
    audio_dir: Path
    tsv: Path | None  # None for unlabelled


def default_cache_dir() -> Path:
    """$GREENSED_CACHE, else ~/.cache/greensed."""
    env = os.environ.get("GREENSED_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "greensed"


def default_layout(root: Path) -> dict[str, SubsetSource]:
    return {name: SubsetSource(root / audio, root / tsv if tsv else None)
            for name, (audio, tsv) in LAYOUT.items()}


def read_layout_toml(path: Path) -> tuple[Path, dict[str, SubsetSource]]:
    """A TOML file with one table per subset: ``audio = "..."`` and (not for
    unlabelled) ``tsv = "..."``; relative paths are from the TOML's folder."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read dataset file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{path}: invalid TOML ({exc})") from None
    root = path.parent
    out = {}
    for name in raw:
        if name not in SUBSETS:
            close = difflib.get_close_matches(name, SUBSETS, n=1)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            raise DataError(f"{path}: unknown subset [{name}]{hint}")
    for name in SUBSETS:
        table = raw.get(name)
        if not isinstance(table, dict):
            raise DataError(f"{path}: missing table [{name}]")
        allowed = ("audio",) if name == "unlabelled" else ("audio", "tsv")
        for key in table:
            if key not in allowed:
                raise DataError(f"{path}: [{name}] unknown key ({key!r}); expected "
                                f"{' and '.join(allowed)}")
        for key in allowed:
            if not isinstance(table.get(key), str):
                raise DataError(f"{path}: [{name}] needs {key} = \"<path>\"")
        tsv = root / table["tsv"] if "tsv" in table else None
        out[name] = SubsetSource(root / table["audio"], tsv)
    return root, out


def _audio_path(src: SubsetSource, filename: str, tsv: Path, line: int) -> Path:
    p = src.audio_dir / filename
    if not p.is_file():
        raise DataError(f"{tsv}:{line}: audio file not found ({p})")
    return p


def _collect(name: str, src: SubsetSource
             ) -> tuple[list[str], list[Path], list[list[tuple[int, float, float]]] | None,
                        list[tuple[int, ...]] | None]:
    """(names, paths, strong events per file or None, weak tags per file or None)."""
    if not src.audio_dir.is_dir():
        raise DataError(f"{name}: audio folder not found ({src.audio_dir})")
    if src.tsv is None:
        names = sorted(p.name for p in src.audio_dir.iterdir()
                       if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
        if not names:
            raise DataError(f"{name}: empty subset (no audio files in {src.audio_dir})")
        return names, [src.audio_dir / n for n in names], None, None
    if name == "weak":
        tags: dict[str, set[int]] = {}
        for row in read_weak_tsv(src.tsv):
            if row.filename not in tags:
                _audio_path(src, row.filename, src.tsv, row.line)
                tags[row.filename] = set()
            tags[row.filename].update(row.classes)
        names = list(tags)
        weak_out = [tuple(sorted(tags[n])) for n in names]
        strong_out = None
    else:
        events: dict[str, list[tuple[int, float, float]]] = {}
        for srow in read_strong_tsv(src.tsv):
            if srow.filename not in events:
                _audio_path(src, srow.filename, src.tsv, srow.line)
                events[srow.filename] = []
            if srow.event is not None:
                events[srow.filename].append(srow.event)
        names = list(events)
        strong_out = [events[n] for n in names]
        weak_out = None
    if not names:
        raise DataError(f"{name}: empty subset (no rows in {src.tsv}; audio in {src.audio_dir})")
    return names, [src.audio_dir / n for n in names], strong_out, weak_out


def _load_subset(name: str, src: SubsetSource, root: Path, features: FeatureConfig,
                 cache_dir: Path, skip_bad_audio: bool,
                 progress: Callable[[str], None] | None = None) -> Subset:
    names, paths, strong_events, weak_tags = _collect(name, src)
    cached = load_or_extract(cache_dir, name, root, names, paths, features,
                             skip_bad_audio=skip_bad_audio, progress=progress)
    if not cached.files:
        raise DataError(f"{name}: empty subset (every audio file in {src.audio_dir} "
                        "was unreadable)")
    index = {n: i for i, n in enumerate(names)}
    kept = [index[n] for n in cached.files]
    strong = weak = None
    events = None
    if strong_events is not None:
        n_out = n_frames(features) // TIME_POOLING
        rate = features.sample_rate / features.hop_length / TIME_POOLING
        events = []
        grids, tags = [], []
        for clip, (i, shift) in enumerate(zip(kept, cached.shifts_s, strict=True)):
            evs = crop_events(strong_events[i], shift, features.clip_s)
            events += [(clip, c, on, off) for c, on, off in evs]
            grids.append(encode_strong(evs, frame_rate=rate, n_frames=n_out))
            tags.append(encode_weak(c for c, _, _ in evs))
        strong = np.stack(grids)
        weak = np.stack(tags)
    elif weak_tags is not None:
        weak = np.stack([encode_weak(weak_tags[i]) for i in kept])
    return Subset(name, cached.files, cached.mels, strong, weak, events,
                  audio_dir=src.audio_dir, durations_s=cached.durations_s,
                  cache_key=cached.key, cache_hit=cached.hit, skipped=cached.skipped)


def load_dataset(path: str | Path | None, features: FeatureConfig, *,
                 cache_dir: str | Path | None = None, preset: str = "quick",
                 synth_seed: int = 0, skip_bad_audio: bool = False,
                 progress: Callable[[str], None] | None = None) -> Dataset:
    """The four subsets with cached features and label arrays.

    ``path=None`` loads the embedded synthetic dataset (``preset``, ``synth_seed``),
    generating it into ``<cache_dir>/synth/`` the first time. ``progress`` gets
    one line before each slow, one-off part (generation, feature extraction).
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if path is None:
        root = ensure_synth(cache, preset, synth_seed, progress)
        layout = default_layout(root)
    else:
        p = Path(path).expanduser()
        if p.is_dir():
            root, layout = p, default_layout(p)
        elif p.is_file() and p.suffix == ".toml":
            root, layout = read_layout_toml(p)
        elif p.exists():
            raise DataError(f"{p}: dataset path must be a folder or a .toml file")
        else:
            raise DataError(f"{p}: dataset path not found")
    subsets = {name: _load_subset(name, src, root, features, cache, skip_bad_audio, progress)
               for name, src in layout.items()}
    skipped = sorted({f for sub in subsets.values() for f in sub.skipped})
    return Dataset(root=root, skipped_audio=skipped, **subsets)

