"""Load a DESED dataset (or the embedded synthetic one) as arrays for training.

A dataset is four subsets, ``strong`` (synthetic, strongly labelled), ``weak``
(clip tags), ``unlabelled`` (audio only) and ``validation`` (synthetic, strongly
labelled), plus ``test`` (recorded, strongly labelled: DESED's "validation"
folder, the baseline's test set) where the layout has one. ``path`` is a root
folder in DESED_task's 2022 layout (recognised by itself, ``DESED_2022``) or in
greensed's own (``synth.LAYOUT``), or a TOML file naming each subset's folder
and tsvs (docs/data.md).

As the baseline: clips listed in a strong tsv only with empty rows are dropped
(its ``dropna``); the weak tsv is split 90/10 by ``weak_df.sample`` on the full
tsv (``weak_split_names``, ``Dataset.split_weak``); validation and test durations
come from the durations tsvs, else from the decoded files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from greensed.config import FeatureConfig, RunConfig
from greensed.data.audio import check_resampler
from greensed.data.cache import load_or_extract
from greensed.data.features import n_frames
from greensed.data.labels import crop_events, encode_strong, encode_weak
from greensed.data.layout import (
    SubsetSource,
    default_cache_dir,
    default_layout,
    describe_layout,
    resolve_layout,
)
from greensed.data.listing import Listing, collect, missing_report, shown
from greensed.data.spec import TIME_POOLING, out_frame_rate
from greensed.data.synth import ensure_synth
from greensed.errors import ConfigError, DataError


class RowView:
    """Rows ``rows`` of a [N, ...] array (the cached memmap), read only when asked.

    ``np.asarray(view)``/``np.array(view)``, ``view[i]``, ``view[a:b]``, ``len(view)``,
    ``.shape`` and ``.dtype`` work as on the selected array, so a split subset costs
    no extraction and no copy until it is used.
    """

    def __init__(self, base: Any, rows: np.ndarray) -> None:
        self.base = base
        self.rows = np.asarray(rows, dtype=np.int64)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return self.base.ndim

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, tuple):
            return self.base[(self.rows[key[0]], *key[1:])]
        return self.base[self.rows[key]]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("a RowView cannot be turned into an array without a copy")
        out = np.asarray(self.base[self.rows])  # fancy indexing: a new array
        return out if dtype is None else out.astype(dtype, copy=False)


@dataclass
class Subset:
    # "strong" | "weak" | "unlabelled" | "validation" | "test"; views of a split:
    # "weak_train" | "weak_validation".
    name: str
    files: list[str]  # file names as in the tsv / folder, in order
    # [N, 626, 128] float16 linear mel: a memmap from the cache, or a RowView of one.
    mels: np.ndarray | RowView
    # [N, 10, T'] uint8 frame labels (strong, validation, test); T' = 156 for the CRNN.
    strong: np.ndarray | None
    weak: np.ndarray | None  # [N, 10] uint8 clip labels; None for unlabelled
    # Ground truth (clip index, class index, onset_s, offset_s) after crop.
    events: list[tuple[int, int, float, float]] | None
    audio_dir: Path | None = None
    # Of each file: from the durations tsv where there is one (validation, test), else
    # decoded, before pad/crop (see durations_from).
    durations_s: list[float] | None = None
    cache_key: str = ""
    cache_hit: bool = False
    skipped: list[str] = field(default_factory=list)  # unreadable files left out (paths)
    missing: list[str] = field(default_factory=list)  # listed, not on disk (names; listing.py)
    # Listed in a strong tsv only with empty rows; dropped as the baseline's dropna does.
    empty_dropped: list[str] = field(default_factory=list)
    # The filename of every tsv row in file order, before anything was dropped (the
    # weak split is drawn on it); None without a tsv and for views.
    tsv_rows: list[str] | None = None
    durations_tsv: Path | None = None
    # "tsv": all from durations_tsv; "audio": all decoded; "tsv+audio": the tsv lacked some.
    durations_from: str = "audio"
    # For a view (split_weak): the rows of the loaded subset it selects; None otherwise.
    parent_rows: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.files)

    @property
    def n_empty_dropped(self) -> int:
        return len(self.empty_dropped)

    def metric_durations_s(self, clip_s: float) -> np.ndarray:
        """Per-clip durations to give the metrics: the scored part of each clip,
        ``min(duration, clip_s)`` (a longer file is cropped to clip_s)."""
        if self.durations_s is None:
            return np.full(len(self), float(clip_s))
        return np.minimum(np.asarray(self.durations_s, dtype=np.float64), clip_s)

    def take(self, rows: Sequence[int], name: str) -> Subset:
        """A view of some clips (in the order of ``rows``): labels copied, mels not."""
        idx = np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(np.unique(idx)) != len(idx):
            raise ValueError(f"{name}: rows repeat")
        if isinstance(self.mels, RowView):
            base, base_rows = self.mels.base, self.mels.rows[idx]
        else:
            base, base_rows = self.mels, idx
        events = None
        if self.events is not None:
            new = {int(old): i for i, old in enumerate(idx)}
            events = sorted(((new[c], k, on, off) for c, k, on, off in self.events if c in new),
                            key=lambda e: e[0])
        durations = None if self.durations_s is None else [self.durations_s[i] for i in idx]
        return Subset(
            name, [self.files[i] for i in idx], RowView(base, base_rows),
            None if self.strong is None else self.strong[idx],
            None if self.weak is None else self.weak[idx], events,
            audio_dir=self.audio_dir, durations_s=durations, cache_key=self.cache_key,
            cache_hit=self.cache_hit, durations_tsv=self.durations_tsv,
            durations_from=self.durations_from,
            parent_rows=idx if self.parent_rows is None else self.parent_rows[idx])


@dataclass
class Dataset:
    root: Path
    strong: Subset
    weak: Subset  # all weak clips; split_weak() gives the baseline's train / held-out views
    unlabelled: Subset
    validation: Subset
    skipped_audio: list[str]  # paths left out under skip_bad_audio (missing and unreadable)
    test: Subset | None = None  # the recorded validation set (DESED 2022, TOML [test])
    layout: str = ""  # "desed2022" | "greensed" | "toml" | "synthetic"
    missing_audio: list[str] = field(default_factory=list)  # paths listed, not on disk
    unreadable_audio: list[str] = field(default_factory=list)  # paths that did not decode

    def subsets(self) -> list[Subset]:
        """The four subsets every layout has (test, when present, is ``self.test``)."""
        return [self.strong, self.weak, self.unlabelled, self.validation]

    def left_out(self) -> dict[str, int]:
        """Files left out under skip_bad_audio, per reason (for the run summary)."""
        return {"missing": len(self.missing_audio), "unreadable": len(self.unreadable_audio)}

    def split_weak(self, seed: int = 42, frac: float = 0.9) -> tuple[Subset, Subset]:
        """(weak_train, weak_validation): the baseline's split of the weak tsv, as views.

        Drawn by ``weak_split_names`` on every row of the weak tsv (before missing or
        unreadable files were left out), so the held-out set is the baseline's; files
        left out are then absent from both views. weak_train is in the baseline's
        sampled order, weak_validation in tsv order.
        """
        listed = self.weak.tsv_rows if self.weak.tsv_rows is not None else self.weak.files
        train, held = weak_split_names(listed, frac=frac, seed=seed)
        where = {name: i for i, name in enumerate(self.weak.files)}

        def rows(names: list[str]) -> list[int]:
            return [where[n] for n in dict.fromkeys(names) if n in where]

        return (self.weak.take(rows(train), "weak_train"),
                self.weak.take(rows(held), "weak_validation"))


def weak_split_names(filenames: Sequence[str], frac: float = 0.9, seed: int = 42
                     ) -> tuple[list[str], list[str]]:
    """(train, held_out) file names of the baseline's weak split.

    ``filenames`` is the weak tsv's filename column, every row in file order. Exactly
    ``weak_df.sample(frac=frac, random_state=seed)`` and ``weak_df.drop(train.index)``
    (pandas itself, on a default index): train in sampled order, held_out in file order.
    """
    if not 0.0 < frac <= 1.0:
        raise ConfigError(f"data.weak_split = {frac}: must be in (0, 1]")
    import pandas as pd  # only for the split: the rest of the data layer does not need it

    df = pd.DataFrame({"filename": list(filenames)})
    train = df.sample(frac=frac, random_state=seed)
    return train["filename"].tolist(), df.drop(train.index)["filename"].tolist()


def _load_subset(name: str, src: SubsetSource, listing: Listing, root: Path,
                 features: FeatureConfig, cache_dir: Path, skip_bad_audio: bool,
                 progress: Callable[[str], None] | None = None,
                 time_pooling: int = TIME_POOLING) -> Subset:
    names = listing.names
    if not names:
        raise DataError(f"{name}: empty subset (every file listed in {src.tsv or src.listed_by} "
                        f"is missing from {src.audio_dir})")
    paths = [src.audio_dir / n for n in names]
    cached = load_or_extract(cache_dir, name, root, names, paths, features,
                             skip_bad_audio=skip_bad_audio, progress=progress)
    if not cached.files:
        raise DataError(f"{name}: empty subset (every audio file in {src.audio_dir} "
                        "was unreadable)")
    index = {n: i for i, n in enumerate(names)}
    kept = [index[n] for n in cached.files]
    strong = weak = None
    events = None
    if listing.strong is not None:
        n_out = n_frames(features) // time_pooling
        rate = out_frame_rate(features, time_pooling)
        events = []
        grids, tags = [], []
        for clip, (i, shift) in enumerate(zip(kept, cached.shifts_s, strict=True)):
            evs = crop_events(listing.strong[i], shift, features.clip_s)
            events += [(clip, c, on, off) for c, on, off in evs]
            grids.append(encode_strong(evs, frame_rate=rate, n_frames=n_out))
            tags.append(encode_weak(c for c, _, _ in evs))
        strong = np.stack(grids)
        weak = np.stack(tags)
    elif listing.weak is not None:
        weak = np.stack([encode_weak(listing.weak[i]) for i in kept])
    durations = list(cached.durations_s)
    durations_from = "audio"
    if listing.durations is not None:
        lacking = [f for f in cached.files if f not in listing.durations]
        durations = [listing.durations.get(f, d) for f, d in zip(cached.files, durations,
                                                                  strict=True)]
        durations_from = "tsv+audio" if lacking else "tsv"
        if lacking and progress is not None:
            progress(f"{src.durations_tsv}: {name}: {len(lacking)} of {len(cached.files)} "
                     f"clips not listed; their decoded length is used ({shown(lacking)})")
    return Subset(name, cached.files, cached.mels, strong, weak, events,
                  audio_dir=src.audio_dir, durations_s=durations,
                  cache_key=cached.key, cache_hit=cached.hit, skipped=cached.skipped,
                  missing=[m for m, _ in listing.missing],
                  empty_dropped=listing.empty_dropped, tsv_rows=listing.tsv_rows,
                  durations_tsv=src.durations_tsv, durations_from=durations_from)


def load_dataset(path: str | Path | None, features: FeatureConfig, *,
                 cache_dir: str | Path | None = None, preset: str = "quick",
                 synth_seed: int = 0, skip_bad_audio: bool = False,
                 progress: Callable[[str], None] | None = None,
                 time_pooling: int = TIME_POOLING) -> Dataset:
    """The subsets with cached features and label arrays.

    Strong labels have ``n_frames // time_pooling`` frames per clip (the model's grid).

    ``path=None`` loads the embedded synthetic dataset (``preset``, ``synth_seed``),
    generating it into ``<cache_dir>/synth/`` the first time. ``progress`` gets one
    line naming the layout and folders (for a given path), one per subset with files
    left out or clips dropped, and one before each slow, one-off part (generation,
    feature extraction).

    Files listed in a tsv but missing on disk are all found before any decoding: a
    DataError listing them per subset, or with ``skip_bad_audio`` one line per subset
    and training without them (as for unreadable files).
    """
    check_resampler(features.resampler)
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if path is None:
        root = ensure_synth(cache, preset, synth_seed, progress)
        kind, layout = "synthetic", default_layout(root)
    else:
        kind, origin, root, layout = resolve_layout(path)
        if progress is not None:
            progress(describe_layout(kind, origin, root, layout))
    listings = {name: collect(name, src) for name, src in layout.items()}
    for name, listing in listings.items():
        if listing.empty_dropped and progress is not None:
            progress(f"{layout[name].tsv}: {name}: {len(listing.empty_dropped)} clips listed "
                     f"only with empty rows dropped, as the baseline's dropna "
                     f"({shown(listing.empty_dropped)})")
    reports = [missing_report(name, layout[name], listing)
               for name, listing in listings.items() if listing.missing]
    if reports and not skip_bad_audio:
        raise DataError("; ".join(reports) + " (set skip_bad_audio, --skip-bad-audio, to "
                        "train without them)")
    if progress is not None:
        for line in reports:
            progress(f"{line}: left out (skip_bad_audio)")
    subsets = {name: _load_subset(name, src, listings[name], root, features, cache,
                                  skip_bad_audio, progress, time_pooling)
               for name, src in layout.items()}
    missing = sorted(str(s.audio_dir / m) for s in subsets.values() for m in s.missing)
    unreadable = sorted({f for s in subsets.values() for f in s.skipped})
    return Dataset(root=root, skipped_audio=sorted({*missing, *unreadable}), layout=kind,
                   missing_audio=missing, unreadable_audio=unreadable, **subsets)


def load_run_dataset(cfg: RunConfig, progress: Callable[[str], None] | None = None, *,
                     time_pooling: int | None = None) -> Dataset:
    """The dataset a run's config names (its [data] and [features] sections), labelled on
    its model's output grid: ``time_pooling`` (the trainer's ``model_time_pooling``), else
    ``[model] time_pooling``, else the CRNN's 4 for a run without ``[model] factory``."""
    d, m = cfg.data, cfg.model
    if time_pooling is None and m.factory is not None and m.time_pooling is None:
        raise ConfigError(f"[model] factory = {m.factory!r}: pass time_pooling")
    return load_dataset(d.path, cfg.features, cache_dir=d.cache_dir, preset=d.preset,
                        synth_seed=d.synth_seed, skip_bad_audio=d.skip_bad_audio,
                        progress=progress,
                        time_pooling=time_pooling or m.time_pooling or TIME_POOLING)
