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

    def add(self, row: Sequence[str]) -> None:
        if len(row) != len(self.columns):
            raise ValueError(
                f"{self.title}: row has {len(row)} cells, expected {len(self.columns)}")
        self.rows.append([c if isinstance(c, Num) else str(c) for c in row])


def render(table: Table, fmt: str) -> str:
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
        widths = [max(len(c), *(len(r[i]) for r in table.rows)) if table.rows else len(c)
                  for i, c in enumerate(table.columns)]
        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
        out = [table.title, line(table.columns), line(["-" * w for w in widths])]
        out += [line(r) for r in table.rows]
        out += [f"  {n}" for n in table.notes]
        return "\n".join(out) + "\n"
    raise ValueError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")


def decimals_for(x: float, minimum: int) -> int:
    """Decimals that keep at least two significant digits (paper style: 0.17, 1.27, 6.4)."""
    if x == 0 or not math.isfinite(x):
        return minimum
    return max(minimum, 1 - math.floor(math.log10(abs(x))))


def _number(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else repr(float(x))
