"""SED metrics, pure numpy: decoding, intersection-based F1, weak F1, PSDS (docs/metrics.md)."""

from greensed.metrics.events import Events, decode, median_filter_binary
from greensed.metrics.intersection import F1Result, intersection_f1
from greensed.metrics.psds import psds_scores
from greensed.metrics.weak import weak_f1

__all__ = [
    "Events",
    "F1Result",
    "decode",
    "intersection_f1",
    "median_filter_binary",
    "psds_scores",
    "weak_f1",
]
