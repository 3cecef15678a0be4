"""One answer to "is this a usable number?", shared by every layer."""

from __future__ import annotations

import math
from typing import Any


def finite_float(value: Any) -> float | None:
    """``value`` as a float when it is a finite int or float (not a bool), else None.

    Run logs write NaN and inf as null, so a missing, null or non-finite value
    all mean "no number" to a reader.
    """
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def count(n: int, noun: str) -> str:
    """``1 epoch``, ``3 epochs``: a count with its noun in the right number."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
