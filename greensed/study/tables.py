"""Plain tables for the study commands, rendered as text, CSV or Markdown.

Cells are strings already formatted by the caller; this module only lays them
out, so every output format shows the same numbers.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

FORMATS = ("table", "csv", "markdown")


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
        self.rows.append([str(c) for c in row])


def render(table: Table, fmt: str) -> str:
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(table.columns)
        writer.writerows(table.rows)
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
