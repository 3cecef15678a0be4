"""The run log: the contract between training and the study tools.

A run directory holds ``config.toml``, ``epochs.jsonl`` (one JSON record per
finished epoch), ``summary.json`` (written at the end, rewritten on resume),
``hardware.json`` and the checkpoints. The record fields are documented in
``docs/runlog.md``; ``SCHEMA_VERSION`` changes whenever a field changes meaning.
This module only reads and writes files; it imports nothing heavy.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greensed.errors import GreensedError

SCHEMA_VERSION = 1
EPOCHS_FILE = "epochs.jsonl"
SUMMARY_FILE = "summary.json"
CONFIG_FILE = "config.toml"
HARDWARE_FILE = "hardware.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file + fsync + rename: a crash leaves the old file intact."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(_clean(obj), indent=2) + "\n").encode())


def _clean(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can parse the log."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def append_epoch(run_dir: Path, record: Mapping[str, Any]) -> None:
    """Append one epoch record as a single line, flushed and fsynced.

    One ``write`` of a whole line: a crash can at worst leave a truncated last
    line, which :func:`read_epochs` drops (and :func:`repair_epochs` removes).
    """
    line = json.dumps(_clean(dict(record)), separators=(",", ":")) + "\n"
    with open(Path(run_dir) / EPOCHS_FILE, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_epochs(run_dir: Path, *, strict: bool = False) -> list[dict[str, Any]]:
    """Epoch records in order. A torn last line (crash mid-write) is skipped;
    a bad line elsewhere is an error naming the file and line."""
    path = Path(run_dir) / EPOCHS_FILE
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    records: list[dict[str, Any]] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if lineno == len(lines) and not strict:
                break  # torn final line from an interrupted write
            raise GreensedError(f"{path}:{lineno}: not a JSON record: {line[:60]!r}") from None
        if rec.get("schema", SCHEMA_VERSION) > SCHEMA_VERSION:
            raise GreensedError(
                f"{path}:{lineno}: schema {rec.get('schema')} is newer than this greensed "
                f"understands ({SCHEMA_VERSION}); upgrade greensed"
            )
        records.append(rec)
    return records


def repair_epochs(run_dir: Path) -> int:
    """Rewrite epochs.jsonl without a torn last line; returns lines dropped."""
    path = Path(run_dir) / EPOCHS_FILE
    if not path.exists():
        return 0
    good = read_epochs(run_dir)
    n_lines = sum(1 for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip())
    if n_lines != len(good):
        _rewrite_epochs(run_dir, good)
    return n_lines - len(good)


def truncate_epochs(run_dir: Path, keep: int) -> None:
    """Keep only the first ``keep`` records (used on resume from an older checkpoint)."""
    _rewrite_epochs(run_dir, read_epochs(run_dir)[:keep])


def _rewrite_epochs(run_dir: Path, records: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    atomic_write_bytes(Path(run_dir) / EPOCHS_FILE, text.encode())


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    return read_json(Path(run_dir) / SUMMARY_FILE)


def read_json(path: Path) -> dict[str, Any] | None:
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise GreensedError(f"{path}: not valid JSON ({exc})") from None


@dataclass
class RunLog:
    """Everything the study tools may know about a run, read from its directory."""

    run_dir: Path
    epochs: list[dict[str, Any]]
    summary: dict[str, Any] | None
    config_text: str | None
    hardware: dict[str, Any] | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return bool(self.summary) and self.summary.get("status") == "finished"

    def series(self, key: str) -> list[float | None]:
        return [metric(r, key) for r in self.epochs]


def metric(record: Mapping[str, Any], key: str) -> float | None:
    """Look up a metric in an epoch record: top-level key, or a key of
    ``record['metrics']`` (e.g. ``teacher_f1``), or a dotted path."""
    if key in record and not isinstance(record[key], Mapping):
        return record[key]
    metrics = record.get("metrics", {})
    if key in metrics:
        return metrics[key]
    node: Any = record
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node if not isinstance(node, Mapping) else None


def load_run(run_dir: str | Path) -> RunLog:
    run_dir = Path(run_dir)
    if not (run_dir / EPOCHS_FILE).exists():
        raise GreensedError(f"{run_dir}: not a run directory (no {EPOCHS_FILE})")
    cfg = run_dir / CONFIG_FILE
    return RunLog(
        run_dir=run_dir,
        epochs=read_epochs(run_dir),
        summary=read_summary(run_dir),
        config_text=cfg.read_text(encoding="utf-8") if cfg.exists() else None,
        hardware=read_json(run_dir / HARDWARE_FILE),
    )


def find_runs(paths: Iterable[str | Path]) -> list[Path]:
    """Run directories at or below the given paths (any depth), sorted."""
    found: set[Path] = set()
    for p in paths:
        p = Path(p)
        if (p / EPOCHS_FILE).exists():
            found.add(p)
        elif p.is_dir():
            found.update(f.parent for f in p.rglob(EPOCHS_FILE))
        else:
            raise GreensedError(f"{p}: no such run directory")
    return sorted(found)
