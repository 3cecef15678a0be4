"""Where a dataset's subsets are on disk: DESED_task's 2022 layout (recognised by
itself), greensed's own layout, or a TOML map (docs/data.md)."""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from greensed.data.synth import LAYOUT, SUBSETS
from greensed.errors import DataError

# Subsets every layout has, and the optional one.
OPTIONAL_SUBSETS = ("test",)
ALL_SUBSETS = SUBSETS + OPTIONAL_SUBSETS
# Subsets whose durations feed the metrics (their tsv may come with a durations tsv).
TIMED_SUBSETS = ("validation", "test")

# DESED_task's 2022 recipe (confs/default.yaml): subset -> (audio folder, tsv,
# durations tsv), relative to the dataset root (the folder holding audio/ and
# metadata/). "<folder>_16k", the baseline's resampled copy, is used when present.
DESED_2022: dict[str, tuple[str, str | None, str | None]] = {
    "strong": ("audio/train/synthetic21_train/soundscapes",
               "metadata/train/synthetic21_train/soundscapes.tsv", None),
    "weak": ("audio/train/weak", "metadata/train/weak.tsv", None),
    # DESED's own metadata lists it (the recipe reads the folder): checked when present.
    "unlabelled": ("audio/train/unlabel_in_domain", "metadata/train/unlabel_in_domain.tsv",
                   None),
    "validation": ("audio/validation/synthetic21_validation/soundscapes",
                   "metadata/validation/synthetic21_validation/soundscapes.tsv",
                   "metadata/validation/synthetic21_validation/durations.tsv"),
    "test": ("audio/validation/validation", "metadata/validation/validation.tsv",
             "metadata/validation/validation_durations.tsv"),
}
# Either of these marks a root as DESED 2022 (the synthetic 2021 soundscapes).
DESED_2022_MARKERS = ("audio/train/synthetic21_train", "metadata/train/synthetic21_train")
# Optional parts of greensed's own layout (synth.LAYOUT has the four subsets).
OWN_TEST = ("audio/test", "metadata/test/test.tsv", "metadata/test/durations.tsv")
OWN_VALIDATION_DURATIONS = "metadata/validation/durations.tsv"
# Optional: the unlabelled files by name (a ``filename`` column), to check the folder.
OWN_UNLABELLED_TSV = "metadata/train/unlabelled.tsv"

LAYOUT_TITLES = {"desed2022": "DESED 2022 layout", "greensed": "greensed layout",
                 "toml": "TOML map", "synthetic": "embedded synthetic set"}


@dataclass(frozen=True)
class SubsetSource:
    audio_dir: Path
    # Unlabelled: a names tsv where the layout has one (else None), which only checks
    # that the folder holds every file it lists.
    tsv: Path | None
    durations_tsv: Path | None = None  # validation and test only
    # Unlabelled without a names tsv, read from a _16k copy: the folder it was made
    # from, whose files the copy must all hold.
    listed_by: Path | None = None


def default_cache_dir() -> Path:
    """$GREENSED_CACHE, else ~/.cache/greensed."""
    env = os.environ.get("GREENSED_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "greensed"


def default_layout(root: Path) -> dict[str, SubsetSource]:
    """greensed's own layout (synth.LAYOUT), with its optional test set and durations."""
    out = {name: SubsetSource(root / audio, root / tsv if tsv else None)
           for name, (audio, tsv) in LAYOUT.items()}
    if (root / OWN_UNLABELLED_TSV).is_file():
        out["unlabelled"] = SubsetSource(out["unlabelled"].audio_dir, root / OWN_UNLABELLED_TSV)
    if (root / OWN_VALIDATION_DURATIONS).is_file():
        val = out["validation"]
        out["validation"] = SubsetSource(val.audio_dir, val.tsv, root / OWN_VALIDATION_DURATIONS)
    audio, tsv, durations = OWN_TEST
    if (root / audio).is_dir() or (root / tsv).is_file():
        out["test"] = SubsetSource(root / audio, root / tsv,
                                   root / durations if (root / durations).is_file() else None)
    return out


def _prefer_16k(folder: Path) -> Path | None:
    """The baseline's resampled copy ``<folder>_16k`` if it exists, else ``folder``."""
    resampled = folder.with_name(folder.name + "_16k")
    if resampled.is_dir():
        return resampled
    return folder if folder.is_dir() else None


def desed_2022_layout(root: Path) -> dict[str, SubsetSource]:
    """DESED_task's 2022 layout under ``root``; test only where its folder or tsv exists,
    durations tsvs only where they exist."""
    out = {}
    for name, (audio, tsv, durations) in DESED_2022.items():
        folder = _prefer_16k(root / audio)
        tsv_path = root / tsv
        listed = tsv_path.is_file()
        if name == "unlabelled" and not listed:
            tsv_path = None
        if name in OPTIONAL_SUBSETS and folder is None and not listed:
            continue
        if folder is None and not listed:
            raise DataError(f"{name}: audio folder not found ({root / audio}_16k or "
                            f"{root / audio})")
        if folder is None:  # listed, none of it on disk: every file is missing
            folder = root / f"{audio}_16k"
        copied_from = (root / audio if name == "unlabelled" and tsv_path is None
                       and folder != root / audio and (root / audio).is_dir() else None)
        dur = root / durations if durations and (root / durations).is_file() else None
        out[name] = SubsetSource(folder, tsv_path, dur, copied_from)
    return out


def is_desed_2022(root: Path) -> bool:
    return any((root / marker).is_dir() for marker in DESED_2022_MARKERS)


def read_layout_toml(path: Path) -> tuple[Path, dict[str, SubsetSource]]:
    """A TOML file with one table per subset: ``audio = "..."``, ``tsv = "..."`` (for
    unlabelled an optional names tsv) and, for validation and test, an optional
    ``durations = "..."``; the
    ``[test]`` table is optional. Relative paths are from the TOML's folder."""
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read dataset file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(f"{path}: invalid TOML ({exc})") from None
    root = path.parent
    out = {}
    for name in raw:
        if name not in ALL_SUBSETS:
            close = difflib.get_close_matches(name, ALL_SUBSETS, n=1)
            hint = f"; did you mean [{close[0]}]?" if close else ""
            raise DataError(f"{path}: unknown subset [{name}]{hint}")
    for name in ALL_SUBSETS:
        table = raw.get(name)
        if table is None and name in OPTIONAL_SUBSETS:
            continue
        if not isinstance(table, dict):
            raise DataError(f"{path}: missing table [{name}]")
        required = ("audio",) if name == "unlabelled" else ("audio", "tsv")
        allowed = required + (("durations",) if name in TIMED_SUBSETS else ())
        allowed += ("tsv",) if name == "unlabelled" else ()  # a names tsv, optional
        for key in table:
            if key not in allowed:
                raise DataError(f"{path}: [{name}] unknown key ({key!r}); expected "
                                f"{', '.join(allowed)}")
        for key in allowed:
            if (key in required or key in table) and not isinstance(table.get(key), str):
                raise DataError(f"{path}: [{name}] needs {key} = \"<path>\"")
        tsv = root / table["tsv"] if "tsv" in table else None
        durations = root / table["durations"] if "durations" in table else None
        out[name] = SubsetSource(root / table["audio"], tsv, durations)
    return root, out


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def describe_layout(kind: str, origin: Path, root: Path,
                    sources: dict[str, SubsetSource]) -> str:
    """The one line saying which layout was found and which folders are used."""
    parts = []
    for name, src in sources.items():
        part = f"{name} {_rel(src.audio_dir, root)}"
        if name in TIMED_SUBSETS:
            part += (f" (durations {_rel(src.durations_tsv, root)})" if src.durations_tsv
                     else " (durations from the audio)")
        parts.append(part)
    return f"data: {LAYOUT_TITLES[kind]} at {origin}: " + ", ".join(parts)


def resolve_layout(path: str | Path) -> tuple[str, Path, Path, dict[str, SubsetSource]]:
    """(kind, origin, root, sources) of a dataset folder or TOML map (docs/data.md)."""
    p = Path(path).expanduser()
    if p.is_dir():
        if is_desed_2022(p):
            return "desed2022", p, p, desed_2022_layout(p)
        if (p / LAYOUT["strong"][0]).is_dir() or (p / "audio").is_dir():
            return "greensed", p, p, default_layout(p)
        nested = [c for c in (p / "dataset", p / "DESED") if is_desed_2022(c)]
        hint = f"; did you mean {nested[0]}?" if nested else ""
        raise DataError(f"{p}: no dataset layout found (neither DESED 2022's "
                        f"{DESED_2022_MARKERS[0]}/ nor greensed's {LAYOUT['strong'][0]}/; "
                        f"or give a .toml map){hint}")
    if p.is_file() and p.suffix == ".toml":
        root, sources = read_layout_toml(p)
        return "toml", p, root, sources
    if p.exists():
        raise DataError(f"{p}: dataset path must be a folder or a .toml file")
    raise DataError(f"{p}: dataset path not found")
