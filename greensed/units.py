"""How greensed writes a quantity for a reader (console lines, forecasts)."""

from __future__ import annotations


def fmt_duration(seconds: float) -> str:
    """``42 s``, ``17 min``, ``190 min``: whole units, short enough for an epoch line."""
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"


def fmt_clock(seconds: float) -> str:
    """``0:42``, ``17:05``, ``3:05:09``: a clock, for an ETA or a time taken."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else \
        f"{s // 60}:{s % 60:02d}"
