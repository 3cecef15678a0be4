"""Parse DESED metadata tsvs (strong and weak) into plain records.

Strong: ``filename<TAB>onset<TAB>offset<TAB>event_label`` with a header row. A row
whose onset, offset and label are all empty names a clip without events (DESED
writes such rows for clips with nothing to annotate). Weak:
``filename<TAB>event_labels`` with labels comma-separated. Durations:
``filename<TAB>duration`` in seconds (the baseline writes them with ``%.1f``).
Columns are found by their header name, so extra columns are ignored.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path

from greensed.data.spec import CLASS_INDEX, CLASSES
from greensed.errors import DataError

STRONG_COLUMNS = ("filename", "onset", "offset", "event_label")
WEAK_COLUMNS = ("filename", "event_labels")
DURATION_COLUMNS = ("filename", "duration")
NAMES_COLUMNS = ("filename",)


@dataclass(frozen=True)
class StrongRow:
    filename: str
    # None for a clip without events.
    event: tuple[int, float, float] | None  # (class index, onset_s, offset_s)
    line: int


@dataclass(frozen=True)
class WeakRow:
    filename: str
    classes: tuple[int, ...]
    line: int


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: tsv not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read tsv ({exc})") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise DataError(f"{path}: empty file")
    header = [h.strip() for h in lines[0].split("\t")]
    for col in columns:
        if col not in header:
            raise DataError(f"{path}:1: missing column '{col}' (header: {lines[0]!r})")
    where = {col: header.index(col) for col in columns}
    rows = []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        record = {}
        for col, idx in where.items():
            if idx >= len(fields):
                # A strong no-event row may come as just "filename" without tabs.
                if columns == STRONG_COLUMNS and len(fields) == 1 and col != "filename":
                    record[col] = ""
                    continue
                raise DataError(f"{path}:{lineno}: missing column '{col}' ({line!r})")
            record[col] = fields[idx].strip()
        if not record["filename"]:
            raise DataError(f"{path}:{lineno}: empty filename ({line!r})")
        rows.append((lineno, record))
    return rows


def class_index(label: str, where: str) -> int:
    """The index of a DESED class name; unknown names get a close-match hint."""
    try:
        return CLASS_INDEX[label]
    except KeyError:
        close = difflib.get_close_matches(label, CLASSES, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        raise DataError(f"{where}: unknown class label ({label!r}){hint}") from None


def _time(value: str, name: str, where: str) -> float:
    try:
        t = float(value)
    except ValueError:
        raise DataError(f"{where}: {name} is not a number ({value!r})") from None
    if not math.isfinite(t):
        raise DataError(f"{where}: {name} is not a finite number ({value!r})")
    if t < 0:
        raise DataError(f"{where}: negative {name} ({value})")
    return t


def read_strong_tsv(path: str | Path) -> list[StrongRow]:
    """Rows of a strong tsv, in file order."""
    path = Path(path)
    out = []
    for lineno, rec in _read_rows(path, STRONG_COLUMNS):
        where = f"{path}:{lineno}"
        on, off, label = rec["onset"], rec["offset"], rec["event_label"]
        if on == "" and off == "" and label == "":
            out.append(StrongRow(rec["filename"], None, lineno))
            continue
        for name, value in (("onset", on), ("offset", off), ("event_label", label)):
            if value == "":
                raise DataError(f"{where}: missing column '{name}' (empty value)")
        onset_s = _time(on, "onset", where)
        offset_s = _time(off, "offset", where)
        if onset_s > offset_s:
            raise DataError(f"{where}: onset > offset ({on} > {off})")
        out.append(StrongRow(rec["filename"], (class_index(label, where), onset_s, offset_s),
                             lineno))
    return out


def read_weak_tsv(path: str | Path) -> list[WeakRow]:
    """Rows of a weak tsv, in file order; labels de-duplicated and sorted by class index."""
    path = Path(path)
    out = []
    for lineno, rec in _read_rows(path, WEAK_COLUMNS):
        where = f"{path}:{lineno}"
        labels = [s.strip() for s in rec["event_labels"].split(",") if s.strip()]
        if not labels:
            raise DataError(f"{where}: missing column 'event_labels' (empty value)")
        classes = sorted({class_index(label, where) for label in labels})
        out.append(WeakRow(rec["filename"], tuple(classes), lineno))
    return out


def read_names_tsv(path: str | Path) -> list[tuple[str, int]]:
    """(filename, line) of every row of a tsv that lists files by name (DESED's
    ``unlabel_in_domain.tsv``: a ``filename`` column), in file order."""
    return [(rec["filename"], lineno) for lineno, rec in _read_rows(Path(path), NAMES_COLUMNS)]


def read_durations_tsv(path: str | Path) -> dict[str, float]:
    """filename -> duration_s of a durations tsv; a duplicate or non-positive one is an error."""
    path = Path(path)
    out: dict[str, float] = {}
    first_line: dict[str, int] = {}
    for lineno, rec in _read_rows(path, DURATION_COLUMNS):
        where = f"{path}:{lineno}"
        name = rec["filename"]
        if name in out:
            raise DataError(f"{where}: duplicate filename ({name}; first at line "
                            f"{first_line[name]})")
        if rec["duration"] == "":
            raise DataError(f"{where}: missing column 'duration' (empty value)")
        duration_s = _time(rec["duration"], "duration", where)
        if duration_s == 0:
            raise DataError(f"{where}: zero duration ({rec['duration']})")
        out[name] = duration_s
        first_line[name] = lineno
    return out


def write_strong_tsv(path: str | Path, rows: list[tuple[str, float, float, str]]) -> None:
    """Write (filename, onset_s, offset_s, label) rows with DESED's header, 3 decimals."""
    lines = ["\t".join(STRONG_COLUMNS)]
    lines += [f"{f}\t{on:.3f}\t{off:.3f}\t{lab}" for f, on, off, lab in rows]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_weak_tsv(path: str | Path, rows: list[tuple[str, list[str]]]) -> None:
    lines = ["\t".join(WEAK_COLUMNS)]
    lines += [f"{f}\t{','.join(labels)}" for f, labels in rows]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
