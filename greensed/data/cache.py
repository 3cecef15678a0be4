"""On-disk cache of linear mel features, one float16 .npy per subset.

Layout: ``<cache_dir>/features/<key>/<subset>.npy`` ([N, 626, 128] float16) and
``<subset>.json`` (the manifest: files kept, their durations and crop shifts,
files skipped). The key hashes the feature parameters, the cache-format
version, the subset name and each audio file's (relative path, size,
mtime_ns): change any of them and the key changes, so stale features are
never read. The manifest is written last and both files are renamed into
place, so an interrupted extraction leaves nothing that counts as valid.

float16: the model sees dB clamped at -50 (amplitude 3.2e-3), far above
float16's smallest normal number (6.1e-5); its 11-bit mantissa is a relative
error below 2^-11, i.e. under 0.005 dB.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from greensed.config import FeatureConfig
from greensed.data import audio as audio_mod
from greensed.data.features import compute_mels, feature_params, mel_module, n_frames
from greensed.errors import DataError

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
FP16_MAX = 65504.0
BATCH = 32


@dataclass
class CachedSubset:
    mels: np.ndarray  # [N, T, F] float16, memory-mapped
    files: list[str]  # names kept, in order (skipped ones removed)
    durations_s: list[float]  # of each file before padding or cropping
    shifts_s: list[float]  # crop start of each file (events move by -shift)
    skipped: list[str]  # paths of files that could not be decoded
    key: str
    hit: bool  # True when read from the cache without decoding audio
    extract_s: float  # seconds spent extracting (0 on a hit)


def fingerprint(root: Path, paths: list[Path]) -> list[tuple[str, int, int]]:
    """(path relative to root, size, mtime_ns) per file: cheap, and changes on rewrite."""
    out = []
    for p in paths:
        try:
            st = p.stat()
        except OSError as exc:
            raise DataError(f"{p}: cannot stat audio file ({exc.strerror})") from None
        try:
            rel = p.relative_to(root).as_posix()
        except ValueError:
            rel = p.as_posix()
        out.append((rel, st.st_size, st.st_mtime_ns))
    return out


def cache_key(features: FeatureConfig, subset: str, prints: list[tuple[str, int, int]]) -> str:
    blob = json.dumps({"version": CACHE_FORMAT_VERSION, "params": feature_params(features),
                       "subset": subset, "files": prints}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _read_hit(folder: Path, subset: str, key: str, shape_tf: tuple[int, int]
              ) -> CachedSubset | None:
    manifest, npy = folder / f"{subset}.json", folder / f"{subset}.npy"
    if not (manifest.is_file() and npy.is_file()):
        return None
    try:
        meta = json.loads(manifest.read_text())
        mels = np.load(npy, mmap_mode="r")
    except (OSError, ValueError, json.JSONDecodeError):
        return None
    if (meta.get("key") != key or mels.dtype != np.float16
            or mels.shape != (len(meta["files"]), *shape_tf)):
        return None
    return CachedSubset(mels, meta["files"], meta["durations_s"], meta["shifts_s"],
                        meta["skipped"], key, True, 0.0)


def load_or_extract(cache_dir: Path, subset: str, root: Path, names: list[str],
                    paths: list[Path], features: FeatureConfig, *,
                    skip_bad_audio: bool = False,
                    progress: Callable[[str], None] | None = None) -> CachedSubset:
    """Features of ``paths`` (named ``names``), from the cache or extracted into it.

    Every file is decoded once here, so bad audio surfaces before training:
    DataError naming it, or with ``skip_bad_audio`` a warning and the file left out.
    A ``progress`` that also has a ``clips(subset, done, total)`` method is told after
    each batch of clips extracted (the terminal's progress bar; docs/training.md).
    """
    key = cache_key(features, subset, fingerprint(root, paths))
    folder = Path(cache_dir) / "features" / key
    shape_tf = (n_frames(features), features.n_mels)
    hit = _read_hit(folder, subset, key, shape_tf)
    if hit is not None:
        if hit.skipped and not skip_bad_audio:
            raise DataError(f"{hit.skipped[0]}: unreadable audio (skipped when the cache "
                            "was built; fix or remove it, or set skip_bad_audio)")
        return hit
    if progress is not None:
        progress(f"extracting features: {subset} ({len(paths)} clips, once)")
    try:
        return _extract(folder, subset, key, names, paths, features, shape_tf, skip_bad_audio,
                        getattr(progress, "clips", None))
    except OSError as exc:  # read-only, full, or not a folder: say so, do not crash
        raise DataError(f"{cache_dir}: cannot write the feature cache ({exc.strerror or exc}); "
                        "free space, fix its permissions or choose another --cache-dir"
                        ) from None


def _extract(folder: Path, subset: str, key: str, names: list[str], paths: list[Path],
             features: FeatureConfig, shape_tf: tuple[int, int], skip_bad_audio: bool,
             on_clips: Callable[[str, int, int], None] | None = None) -> CachedSubset:
    t0 = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    tag = f".tmp-{os.getpid()}-{time.monotonic_ns()}"
    tmp_npy = folder / f"{subset}{tag}.npy"
    module = mel_module(features)
    out = np.lib.format.open_memmap(tmp_npy, mode="w+", dtype=np.float16,
                                    shape=(len(paths), *shape_tf))
    # The memmap's file is sparse: on a full disk, writing a page would kill the process
    # with SIGBUS. Reserve its blocks now, so a full disk is an ENOSPC error here.
    with open(tmp_npy, "r+b") as fh:
        os.posix_fallocate(fh.fileno(), 0, os.fstat(fh.fileno()).st_size)
    kept: list[int] = []
    durations: list[float] = []
    shifts: list[float] = []
    skipped: list[str] = []

    def load(p: Path) -> audio_mod.Clip | DataError:
        try:
            return audio_mod.load_clip(p, sample_rate=features.sample_rate,
                                       clip_s=features.clip_s, resampler=features.resampler)
        except DataError as exc:
            return exc

    try:
        # Threads overlap decoding (libsndfile releases the GIL) with the mel batches.
        with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
            for start in range(0, len(paths), BATCH):
                batch = list(pool.map(load, paths[start:start + BATCH]))
                waves = []
                for i, clip in enumerate(batch, start=start):
                    if isinstance(clip, DataError):
                        if not skip_bad_audio:
                            raise clip
                        log.warning("skipping unreadable audio: %s", clip)
                        skipped.append(str(paths[i]))
                        continue
                    kept.append(i)
                    durations.append(clip.duration_s)
                    shifts.append(clip.shift_s)
                    waves.append(torch.from_numpy(clip.wave))
                if waves:
                    mels = compute_mels(torch.stack(waves), module).numpy()
                    row = len(kept) - len(waves)
                    out[row:row + len(waves)] = np.minimum(mels, FP16_MAX)
                if on_clips is not None:
                    on_clips(subset, min(start + BATCH, len(paths)), len(paths))
        out.flush()
        del out
        if skipped:  # rewrite without the unused tail rows
            full = np.load(tmp_npy, mmap_mode="r")
            tmp2 = folder / f"{subset}{tag}-kept.npy"
            np.save(tmp2, np.asarray(full[:len(kept)]))
            del full
            os.replace(tmp2, tmp_npy)
        meta = {"key": key, "subset": subset, "version": CACHE_FORMAT_VERSION,
                "files": [names[i] for i in kept], "durations_s": durations,
                "shifts_s": shifts, "skipped": skipped,
                "extract_s": round(time.perf_counter() - t0, 3)}
        tmp_json = folder / f"{subset}{tag}.json"
        tmp_json.write_text(json.dumps(meta))
        os.replace(tmp_npy, folder / f"{subset}.npy")
        os.replace(tmp_json, folder / f"{subset}.json")  # last: marks the entry valid
    finally:
        for leftover in folder.glob(f"{subset}{tag}*"):
            leftover.unlink(missing_ok=True)
    extract_s = time.perf_counter() - t0
    log.info("extracted %d %s clips in %.1f s", len(kept), subset, extract_s)
    return CachedSubset(np.load(folder / f"{subset}.npy", mmap_mode="r"), meta["files"],
                        durations, shifts, skipped, key, False, extract_s)
