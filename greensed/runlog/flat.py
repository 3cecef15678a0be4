"""Epoch records as flat rows: ``epochs.csv`` beside ``epochs.jsonl`` (docs/runlog.md),
for spreadsheets and ``pandas.read_csv``.

One row per epoch, one column per scalar: the record's numbers, the losses as
``loss_<term>``, every scalar metric under its own key (lists such as the
per-class F1 are left out), each test score as ``test_<key>``, each energy
component as ``energy_<component>_kwh`` and the forecast as ``forecast_<key>``.
Columns are the union over the records, in first-seen order; a missing value is
an empty cell.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
from collections.abc import Iterable
from typing import Any

from greensed.runlog.records import EpochRecord, Losses

# The record's own columns, in this order (metrics, components and forecast follow).
HEAD = ("epoch", "steps", "lr")
TIMES = ("train_s", "val_s", "psds_s", "duration_s", "test_s")
ENERGY = ("energy_kwh", "cumulative_kwh", "avg_power_w", "co2_kg", "cumulative_co2_kg",
          "meter", "energy_status")


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float))


def flat_epoch(r: EpochRecord) -> dict[str, Any]:
    """One epoch record as ``{column: scalar}`` (None for a missing number)."""
    row: dict[str, Any] = {k: getattr(r, k) for k in HEAD}
    row.update({f"loss_{f.name}": getattr(r.loss, f.name) for f in dataclasses.fields(Losses)})
    for key, value in r.metrics.items():
        if _scalar(value) and not isinstance(value, bool):
            row[key if key not in _FIXED else f"metric_{key}"] = value
    row.update({k: getattr(r, k) for k in TIMES + ENERGY})
    for key, value in r.test.items():  # held-out test scores ([eval] test)
        if _scalar(value) and not isinstance(value, bool):
            row[f"test_{key}"] = value
    for comp, kwh in r.energy_components_kwh.items():
        row[f"energy_{comp}_kwh"] = kwh
    for key, value in (r.forecast or {}).items():
        if _scalar(value):
            row[f"forecast_{key}"] = value
    row["time_utc"] = r.time_utc
    return row


_FIXED = frozenset((*HEAD, *TIMES, *ENERGY, "time_utc",
                    *(f"loss_{f.name}" for f in dataclasses.fields(Losses))))


def epochs_csv(records: Iterable[EpochRecord]) -> str:
    """The CSV text of ``records`` (header and one line per epoch)."""
    rows = [flat_epoch(r) for r in records]
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([_cell(row.get(c)) for c in columns] for row in rows)
    return buf.getvalue()


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)

