"""What the study tools need to know of one run besides its epochs: its group,
hardware, totals. Reads run logs only (greensed.runlog)."""

from __future__ import annotations

import tomllib
from typing import Any

from greensed.errors import GreensedError
from greensed.numbers import finite_float
from greensed.runlog import RunLog

GROUP_BY = ("batch", "hardware", "recipe")
DEFAULT_METRIC = "teacher_f1"


def read_config(run: RunLog) -> dict[str, Any]:
    """The run's config.toml as a dict ({} when there is none)."""
    if not run.config_text:
        return {}
    try:
        return tomllib.loads(run.config_text)
    except tomllib.TOMLDecodeError as exc:
        raise GreensedError(f"{run.dir.config}: invalid TOML: {exc}") from None


def hardware_key(run: RunLog) -> str:
    hw = run.hardware or {}
    return str(hw.get("gpu_name") or hw.get("cpu_model") or "unknown hardware")


def check_by(by: str, *, allow_all: bool = False) -> None:
    choices = (*GROUP_BY, "all") if allow_all else GROUP_BY
    if by not in choices:
        raise GreensedError(f"--by {by!r}: choose from {', '.join(choices)}")


def group_key(run: RunLog, by: str) -> str:
    check_by(by, allow_all=True)
    summary = run.summary
    if by == "batch":
        b = (summary.batch_size if summary else None) or \
            read_config(run).get("train", {}).get("batch_size")
        return str(b) if b is not None else "unknown"
    if by == "hardware":
        return hardware_key(run)
    if by == "recipe":
        return str((summary.recipe if summary else "")
                   or read_config(run).get("recipe", {}).get("name") or "unknown")
    return "all"


def sort_key(key: str) -> tuple[int, float, str]:
    """Numeric group keys (batch sizes) in numeric order, then the others by name."""
    try:
        return (0, float(key), key)
    except ValueError:
        return (1, 0.0, key)


def run_total_s(run: RunLog) -> float | None:
    total = finite_float(run.summary.total_s) if run.summary else None
    if total is not None:
        return total
    secs = [finite_float(r.duration_s) for r in run.epochs]
    return float(sum(secs)) if secs and all(s is not None for s in secs) else None  # type: ignore[misc]
