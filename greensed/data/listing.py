"""What a subset lists, and which of it the disk lacks, found before any decoding.

A subset is listed by its tsv (strong, weak, validation, test) or, for unlabelled,
by a names tsv where the layout has one (DESED's ``unlabel_in_domain.tsv``), else
by the folder a ``_16k`` copy was made from, else by its own folder. A file listed
but not on disk is "missing" the same way whether one file is gone, the folder is
half-written or the whole folder is absent (docs/data.md: Missing files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from greensed.data.audio import AUDIO_SUFFIXES
from greensed.data.layout import SubsetSource
from greensed.data.tsv import read_durations_tsv, read_names_tsv, read_strong_tsv, read_weak_tsv
from greensed.errors import DataError

# File names a missing-file or dropped-clip report shows before "...".
SHOWN_NAMES = 3


@dataclass
class Listing:
    """What a subset's tsv or folder lists, before any audio is decoded."""

    names: list[str]  # on disk, in order
    strong: list[list[tuple[int, float, float]]] | None  # events per name (strong tsvs)
    weak: list[tuple[int, ...]] | None  # tags per name (weak tsv)
    missing: list[tuple[str, int]]  # (name, first tsv line; 0 for a folder listing)
    empty_dropped: list[str]  # listed only with empty rows
    tsv_rows: list[str] | None  # filename of every tsv row, in file order
    n_listed: int  # distinct names in the tsv (or files in the folder)
    durations: dict[str, float] | None  # from the durations tsv


def _audio_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir()
                  if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())


def _collect_unlabelled(name: str, src: SubsetSource,
                        durations: dict[str, float] | None) -> Listing:
    """As the baseline, every audio file of the folder, by name; what the names tsv (or
    the folder the copy was made from) lists and the folder lacks is missing."""
    names = _audio_names(src.audio_dir)
    if src.tsv is not None:
        first_line: dict[str, int] = {}
        for filename, line in read_names_tsv(src.tsv):
            first_line.setdefault(filename, line)
    elif src.listed_by is not None:
        first_line = dict.fromkeys(_audio_names(src.listed_by), 0)
    else:
        if not src.audio_dir.is_dir():
            raise DataError(f"{name}: audio folder not found ({src.audio_dir})")
        first_line = {}
    present = set(names)
    missing = [(n, line) for n, line in first_line.items() if n not in present]
    if not names and not missing:
        raise DataError(f"{name}: empty subset (no audio files in {src.audio_dir})")
    return Listing(names, None, None, missing, [], None, len(first_line) or len(names),
                   durations)


def collect(name: str, src: SubsetSource) -> Listing:
    """The subset's listing; a folder absent as a whole leaves every listed file missing."""
    durations = read_durations_tsv(src.durations_tsv) if src.durations_tsv else None
    if name == "unlabelled" or src.tsv is None:
        return _collect_unlabelled(name, src, durations)
    first_line: dict[str, int] = {}
    strong_out = weak_out = None
    empty: list[str] = []
    if name == "weak":
        rows = read_weak_tsv(src.tsv)
        tags: dict[str, set[int]] = {}
        for row in rows:
            first_line.setdefault(row.filename, row.line)
            tags.setdefault(row.filename, set()).update(row.classes)
        listed = list(tags)
        tsv_rows = [row.filename for row in rows]
    else:
        srows = read_strong_tsv(src.tsv)
        events: dict[str, list[tuple[int, float, float]]] = {}
        for srow in srows:
            first_line.setdefault(srow.filename, srow.line)
            evs = events.setdefault(srow.filename, [])
            if srow.event is not None:
                evs.append(srow.event)
        # The baseline's dropna() removes empty rows, so a clip with nothing else vanishes.
        empty = [n for n, evs in events.items() if not evs]
        listed = [n for n, evs in events.items() if evs]
        tsv_rows = [srow.filename for srow in srows]
    on_disk = [n for n in listed if (src.audio_dir / n).is_file()]
    present = set(on_disk)
    missing = [(n, first_line[n]) for n in listed if n not in present]
    if name == "weak":
        weak_out = [tuple(sorted(tags[n])) for n in on_disk]
    else:
        strong_out = [events[n] for n in on_disk]
    if not listed:
        why = "every clip has only empty rows" if empty else "no rows"
        raise DataError(f"{name}: empty subset ({why} in {src.tsv}; audio in {src.audio_dir})")
    return Listing(on_disk, strong_out, weak_out, missing, empty, tsv_rows,
                   len(first_line), durations)


def shown(names: Sequence[str]) -> str:
    more = ", ..." if len(names) > SHOWN_NAMES else ""
    return ", ".join(names[:SHOWN_NAMES]) + more


def missing_report(name: str, src: SubsetSource, listing: Listing) -> str:
    """One line: ``<tsv>:<line>: <subset>: N of M listed audio files not found in <folder>
    (first names)``, the line being the first missing file's; ``<listing folder>:`` in
    place of ``<tsv>:<line>:`` for a subset listed by the folder its copy was made from."""
    line, n = listing.missing[0][1], len(listing.missing)
    names = [m for m, _ in listing.missing]
    where = f"{src.tsv}:{line}" if src.tsv is not None else f"{src.listed_by}"
    folder = f"{src.audio_dir}" + ("" if src.audio_dir.is_dir() else " (no such folder)")
    return (f"{where}: {name}: {n} of {listing.n_listed - len(listing.empty_dropped)} "
            f"listed audio files not found in {folder} ({shown(names)})")
