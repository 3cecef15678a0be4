"""Group statistics for the study tables: mean ± sample std, and their formatting."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from greensed.numbers import count
from greensed.study.tables import Num, decimals_for


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (ddof = 1; None for a single value)."""
    n = len(values)
    if n == 0:
        raise ValueError("mean of no values")
    mean = sum(values) / n
    if n == 1:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


@dataclass
class Agg:
    """A column over a group's runs: mean ± std of the runs that have a value."""

    mean: float | None
    std: float | None
    n: int  # runs with a value
    missing: int  # runs without one

    @classmethod
    def of(cls, values: Sequence[float | None]) -> Agg:
        have = [v for v in values if v is not None]
        if not have:
            return cls(None, None, 0, len(values))
        m, s = mean_std(have)
        return cls(m, s, len(have), len(values) - len(have))

    @classmethod
    def of_cells(cls, cells: Sequence[Sequence[float | None]]) -> Agg:
        """Mean of every value; std pooled within the cells: sqrt(sum of squared
        deviations from each cell's own mean / sum of (n_cell - 1)), the seed-to-seed
        spread with the differences between cells taken out (None without a cell of
        two values)."""
        have = [[v for v in c if v is not None] for c in cells]
        values = [v for c in have for v in c]
        n_missing = sum(len(c) for c in cells) - len(values)
        if not values:
            return cls(None, None, 0, n_missing)
        dof = sum(len(c) - 1 for c in have if c)
        ss = sum((v - sum(c) / len(c)) ** 2 for c in have if c for v in c)
        return cls(sum(values) / len(values), math.sqrt(ss / dof) if dof else None,
                   len(values), n_missing)


def fmt_agg(a: Agg, scale: float = 1.0, min_decimals: int = 2, suffix: str = "",
            missing: str = "no data", decimals: int | None = None) -> Num:
    """``mean ± std`` at the decimals that keep two significant digits; the cell keeps
    the scaled numbers for CSV."""
    total = a.n + a.missing
    if a.mean is None:
        return Num(f"n/a ({missing})" if total == 1 else f"n/a ({total} of {total} {missing})",
                   None)
    d = decimals if decimals is not None else decimals_for(a.mean * scale, min_decimals)
    text = f"{a.mean * scale:.{d}f}{suffix}"
    if a.std is not None:
        text += f" ± {a.std * scale:.{d}f}{suffix}"
    if a.missing:
        text += f" ({a.missing} of {total} {missing})"
    return Num(text, a.mean * scale, None if a.std is None else a.std * scale)


def estimated(cell: Num) -> Num:
    """The cell marked ``~``: its figure includes energy estimated where a meter failed
    (the table's note says how)."""
    return cell if cell.mean is None else Num(f"~{cell}", cell.mean, cell.std, cell.unit)


def ratio_of_means(near: Agg, at_max: Agg) -> Num:
    """(mean at max - mean near max) / mean near max, in %."""
    if near.mean is None or at_max.mean is None or near.mean == 0:
        return Num("n/a", None)
    ratio = (at_max.mean - near.mean) / near.mean
    return Num(f"{ratio:.0%}", ratio * 100)


def co2_note(figures: Sequence[tuple[float | None, str]]) -> list[str]:
    """The note on CO2: each (intensity g/kWh, source) the runs' figures use, counted."""
    sources: dict[str, int] = {}
    for intensity, source in figures:
        what = f"{intensity or 0:.4g} g/kWh, {source}"
        sources[what] = sources.get(what, 0) + 1
    if not sources:
        return []
    return ["CO2 = total kWh x carbon intensity: " + "; ".join(
        f"{what} ({count(n, 'run')})" for what, n in sources.items())]


def estimate_note(runs: Sequence[tuple[object, Sequence[int], str]]) -> list[str]:
    """The note on ``~``, naming each (run, estimated epochs, meter) and the method."""
    if not runs:
        return []
    return ["~: counts a run with energy estimated for the epochs its meter missed (mean "
            "power of its measured epochs x the epoch's duration): " + "; ".join(
                f"{path} {'epoch' if len(epochs) == 1 else 'epochs'} "
                f"{', '.join(map(str, epochs))}" + (f" (meter {meter})" if meter else "")
                for path, epochs, meter in runs)]


def spread_note(by: str, other: str, lone: Sequence[tuple[str, int]]) -> list[str]:
    """The note on cells without a ±: each (group, number of runs) with no spread, one
    run, or no two runs in one (group, other factor) cell to pool a spread from."""
    if not lone:
        return []
    return ["No ± where there is no spread: " + "; ".join(
        f"{by} {key}: n=1" if n == 1 else
        f"{by} {key}: {n} runs, one per {by} × {other} cell (--std runs: their spread)"
        for key, n in lone)]


def fmt_duration(a: Agg) -> Num:
    """hh:mm as in the paper; hh:mm:ss when the mean is under an hour (seconds in CSV)."""
    if a.mean is None:
        return Num("n/a", None, unit="s")
    secs = a.mean < 3600
    text = _hms(a.mean, secs)
    if a.std is not None:
        std = _hms(a.std, secs)
        text += " ± " + (std[1:] if std.startswith("0") else std)  # paper: "08:28 ± 0:45"
    return Num(text, a.mean, a.std, unit="s")


def _hms(seconds: float, with_seconds: bool) -> str:
    if with_seconds:
        s = round(seconds)
        return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"
    m = round(seconds / 60)
    return f"{m // 60:02d}:{m % 60:02d}"
