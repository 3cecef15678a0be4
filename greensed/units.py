"""How greensed writes a quantity for a reader (console lines, forecasts)."""

from __future__ import annotations


def fmt_duration(seconds: float) -> str:
    """``42 s``, ``17 min``, ``190 min``: whole units, short enough for an epoch line."""
    return f"{seconds / 60:.0f} min" if seconds >= 60 else f"{seconds:.0f} s"
