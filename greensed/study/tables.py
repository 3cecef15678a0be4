"""Plain tables for the study commands, rendered as text, CSV or Markdown.

Cells are strings already formatted by the caller; this module only lays them
out, so every output format shows the same numbers. A :class:`Num` cell (a
mean ± std, as the report's tables hold) also keeps its numbers: text and
Markdown show its text ("12.5 ± 1.9"), CSV splits its column into numeric
``<column> mean`` and ``<column> std`` columns, for spreadsheets and pandas.
"""

from __future__ import annotations

import csv
import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field

FORMATS = ("table", "csv", "markdown")


class Num(str):
    """A formatted cell with its numbers: ``Num("12.5 ± 1.9", 12.5, 1.9)`` (in the units
    the text shows; ``unit`` names them in the CSV header when the text does not)."""

    mean: float | None
    std: float | None
    unit: str

    def __new__(cls, text: str, mean: float | None, std: float | None = None,
                unit: str = "") -> Num:
        obj = super().__new__(cls, text)
        obj.mean, obj.std, obj.unit = mean, std, unit
        return obj


@dataclass
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    key_columns: int = 1  # the leading columns that name a row (repeated when it is split)

    def add(self, row: Sequence[str]) -> None:
        if len(row) != len(self.columns):
            raise ValueError(
                f"{self.title}: row has {len(row)} cells, expected {len(self.columns)}")
        self.rows.append([c if isinstance(c, Num) else str(c) for c in row])


def render(table: Table, fmt: str, width: int | None = None) -> str:
    """``table`` as CSV, Markdown or text; ``width``: a terminal's, for text (else whole
    lines)."""
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        numeric = [any(isinstance(r[i], Num) for r in table.rows)
                   for i in range(len(table.columns))]
        header: list[str] = []
        for i, col in enumerate(table.columns):
            unit = next((r[i].unit for r in table.rows if isinstance(r[i], Num)), "")
            unit = f" ({unit})" if unit else ""
            header += [f"{col} mean{unit}", f"{col} std{unit}"] if numeric[i] else [col]
        writer.writerow(header)
        for r in table.rows:
            cells: list[str] = []
            for cell, num in zip(r, numeric, strict=True):
                if not num:
                    cells.append(cell)
                elif isinstance(cell, Num):
                    cells += [_number(cell.mean), _number(cell.std)]
                else:  # "n/a", "never reached": no number
                    cells += ["", ""]
            writer.writerow(cells)
        return buf.getvalue()
    if fmt == "markdown":
        lines = [f"**{table.title}**", ""]
        lines.append("| " + " | ".join(table.columns) + " |")
        lines.append("|" + "|".join("---" for _ in table.columns) + "|")
        lines += ["| " + " | ".join(r) + " |" for r in table.rows]
        lines += [""] + [f"_{n}_" for n in table.notes] if table.notes else []
        return "\n".join(lines) + "\n"
    if fmt == "table":
        return "\n".join(text_lines(table, width)) + "\n"
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


def text_lines(table: Table, width: int | None = None) -> list[str]:
    """The text table: whole lines (``width`` None: a pipe or a file, one row a line), or
    fitted to ``width`` columns as `greensed train` fits its lines: unchanged where it
    fits; else the title and notes wrapped, and the columns split into blocks that each
    repeat the key columns (a long last column wrapped in place), or, where the key
    columns alone fill half the width, each row as its key and ``column: value`` parts
    packed into lines."""
    widths = [max(len(c), *(len(r[i]) for r in table.rows)) if table.rows else len(c)
              for i, c in enumerate(table.columns)]
    grid = _grid(table.columns, table.rows, widths)
    notes = [f"  {n}" for n in table.notes]
    if width is None or all(len(x) <= width for x in [table.title, *grid, *notes]):
        return [table.title, *grid, *notes]
    width = max(width, 20)
    title = textwrap.wrap(table.title, width, subsequent_indent="  ") or [""]
    notes = [x for n in table.notes for x in textwrap.wrap(
        n, width, initial_indent="  ", subsequent_indent="    ")]
    if all(len(x) <= width for x in grid):
        return [*title, *grid, *notes]
    k = table.key_columns
    # A column may be as narrow as its widest cell or its header's longest word.
    narrow = [max([len(r[i]) for r in table.rows] + [len(w) for w in c.split()] or [1])
              for i, c in enumerate(table.columns)]
    key_width = sum(narrow[:k]) + 2 * (k - 1)
    if key_width > width // 2 or k >= len(table.columns):
        return [*title, *_records(table, width), *notes]
    out: list[str] = []
    for cols, fitted in _blocks(narrow, widths, k, width):
        out += [""] if out else []
        out += _grid([table.columns[i] for i in cols], [[r[i] for i in cols] for r in table.rows],
                     fitted)
    return [*title, *out, *notes]


def _blocks(narrow: Sequence[int], natural: Sequence[int], k: int, width: int
            ) -> list[tuple[list[int], list[int]]]:
    """Column blocks that fit ``width``: (column indices, their widths), each block
    starting with the ``k`` key columns; a column wider than what is left of a block
    gets the rest of it when it is the last column or starts the block. A block's
    room to spare widens its columns towards their ``natural`` widths (unwrapped
    headers)."""

    def widened(cols: list[int], widths: list[int]) -> tuple[list[int], list[int]]:
        room = width - sum(widths) - 2 * (len(widths) - 1)
        for j, i in enumerate(cols):
            add = max(min(natural[i] - widths[j], room), 0)
            widths[j] += add
            room -= add
        return cols, widths

    key = list(range(k))
    blocks: list[tuple[list[int], list[int]]] = []
    cols, widths = list(key), [narrow[i] for i in key]
    for i in range(k, len(narrow)):
        room = width - sum(widths) - 2 * len(widths)
        if narrow[i] <= room:
            cols.append(i)
            widths.append(narrow[i])
            continue
        if len(cols) > k and not (i == len(narrow) - 1 and room >= 20):
            blocks.append(widened(cols, widths))
            cols, widths = list(key), [narrow[j] for j in key]
            room = width - sum(widths) - 2 * len(widths)
        spare = sum(natural[c] - w for c, w in zip(cols, widths, strict=True))
        if room - spare >= 20:  # the others unwrapped first, the wrapped one gets the rest
            widths, room = [natural[c] for c in cols], room - spare
        cols.append(i)
        widths.append(max(min(narrow[i], room), 1))
    blocks.append(widened(cols, widths))
    return blocks


def _grid(columns: Sequence[str], rows: Sequence[Sequence[str]],
          widths: Sequence[int]) -> list[str]:
    """Header, rule and rows; a cell wider than its column is wrapped onto more lines."""
    def line(cells: Sequence[str]) -> list[str]:
        parts = [textwrap.wrap(c, w, break_on_hyphens=False) if len(c) > w else [c]
                 for c, w in zip(cells, widths, strict=True)]
        return ["  ".join((p[j] if j < len(p) else "").ljust(w)
                          for p, w in zip(parts, widths, strict=True)).rstrip()
                for j in range(max(len(p) for p in parts))]
    out = line(columns) + line(["-" * w for w in widths])
    return out + [x for r in rows for x in line(r)]


def _records(table: Table, width: int) -> list[str]:
    """Each row as its key cells, then ``column: value`` parts joined by `` | `` and
    packed into lines of ``width`` (continuations indented)."""
    k = table.key_columns
    out: list[str] = []
    for r in table.rows:
        parts = [" | ".join(r[:k])] + [f"{c}: {v}" for c, v in zip(table.columns[k:], r[k:],
                                                                       strict=True)]
        cur = ""
        for n, p in enumerate(parts):
            if cur and len(cur) + 3 + len(p) <= width:
                cur += " | " + p
                continue
            if cur:
                out.append(cur)
            pieces = textwrap.wrap(p, width - 2, break_on_hyphens=False) or [""]
            pieces = [("  " if n or j else "") + x for j, x in enumerate(pieces)]
            out += pieces[:-1]
            cur = pieces[-1]
        out.append(cur)
    return out


def decimals_for(x: float, minimum: int) -> int:
    """Decimals that keep at least two significant digits (paper style: 0.17, 1.27, 6.4)."""
    if x == 0 or not math.isfinite(x):
        return minimum
    return max(minimum, 1 - math.floor(math.log10(abs(x))))


def _number(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else repr(float(x))
