"""The run directory on disk: one owner of every path, atomic writes, tolerant reads.

A run directory holds ``config.toml``, ``hardware.json``, ``epochs.jsonl`` (one
record per finished epoch), ``summary.json`` (written when the run ends), the
lost-energy ledger and heartbeat, the checkpoints, and what launchers and
``greensed evaluate`` add. ``docs/runlog.md`` describes each file. This module
only reads and writes files; it imports nothing heavy.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greensed.runlog.flat import epochs_csv
from greensed.runlog.records import (
    EpochRecord,
    Heartbeat,
    LaunchRecord,
    LostEntry,
    RunLogError,
    RunStatus,
    Summary,
)

EPOCHS_FILE = "epochs.jsonl"


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
    atomic_write_bytes(path, (json.dumps(clean_json(obj), indent=2) + "\n").encode())


def clean_json(obj: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can parse the log."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    return obj


def _json_line(obj: Any) -> str:
    return json.dumps(clean_json(obj), separators=(",", ":")) + "\n"


def append_line(path: Path, obj: Any) -> None:
    """Append one JSON line in a single ``write``, flushed and fsynced: a crash can at
    worst leave a torn last line, which the readers drop."""
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(_json_line(obj))
        fh.flush()
        os.fsync(fh.fileno())


def read_lines(path: Path, *, strict: bool = False) -> list[tuple[int, Any]]:
    """(line number, parsed JSON) of a JSONL file. A torn last line (crash mid-write)
    is dropped unless ``strict``; a bad line elsewhere is an error naming file and line."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    out = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            out.append((lineno, json.loads(line)))
        except json.JSONDecodeError:
            if lineno == len(lines) and not strict:
                break
            raise RunLogError(f"{path}:{lineno}: not a JSON record: {line[:60]!r}") from None
    return out


def read_json(path: Path) -> Any:
    """A JSON file's content, None when it does not exist; invalid JSON is one line."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunLogError(f"{path}: not valid JSON ({exc})") from None


@dataclass(frozen=True)
class RunDir:
    """Every path of a run directory, named once, and its typed reads and writes."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    # -- what training writes (docs/runlog.md)
    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def hardware(self) -> Path:
        return self.root / "hardware.json"

    @property
    def epochs(self) -> Path:
        return self.root / EPOCHS_FILE

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def lost(self) -> Path:
        return self.root / "lost.jsonl"

    @property
    def heartbeat(self) -> Path:
        return self.root / "heartbeat.json"

    @property
    def lock(self) -> Path:
        return self.root / "lock"

    @property
    def epochs_csv(self) -> Path:
        return self.root / "epochs.csv"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def last(self) -> Path:
        return self.checkpoints / "last.pt"

    # -- what launchers and `greensed evaluate` add (docs/cluster.md, docs/runlog.md)
    @property
    def launch(self) -> Path:
        return self.root / "launch.json"

    @property
    def cell_recipe(self) -> Path:
        return self.root / "cell.toml"

    @property
    def cell_log(self) -> Path:
        return self.root / "launch.log"

    @property
    def psds(self) -> Path:
        return self.root / "psds.json"

    # -- epochs
    def read_epochs(self, *, strict: bool = False) -> list[EpochRecord]:
        return [EpochRecord.from_json(raw, f"{self.epochs}:{n}")
                for n, raw in read_lines(self.epochs, strict=strict)]

    def torn_epoch_line(self) -> bool:
        """Whether the last line of epochs.jsonl is cut mid-JSON (a crash while appending)."""
        if not self.epochs.exists():
            return False
        lines = [ln for ln in self.epochs.read_text(encoding="utf-8",
                                                     errors="replace").splitlines()
                 if ln.strip()]
        if not lines:
            return False
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            return True
        return False

    def append_epoch(self, record: EpochRecord) -> None:
        append_line(self.epochs, record.to_json())

    def write_epochs_csv(self, records: Iterable[EpochRecord] | None = None) -> None:
        """``epochs.csv``, rewritten whole from ``records`` (default: epochs.jsonl), so it
        never disagrees with the log, also after a resume cut it (greensed.runlog.flat)."""
        rows = self.read_epochs() if records is None else records
        atomic_write_bytes(self.epochs_csv, epochs_csv(rows).encode())

    def keep_epochs(self, keep: int | None = None) -> int:
        """Rewrite epochs.jsonl with its first ``keep`` good lines (None: all of them),
        as written and without a torn last line; returns the lines dropped. Fields this
        version does not know survive."""
        good = read_lines(self.epochs)
        n_lines = sum(1 for ln in self.epochs.read_text(encoding="utf-8", errors="replace")
                      .splitlines() if ln.strip()) if self.epochs.exists() else 0
        kept = good if keep is None else good[:keep]
        if len(kept) != n_lines:
            atomic_write_bytes(self.epochs, "".join(_json_line(raw) for _, raw in kept).encode())
        return n_lines - len(kept)

    # -- summary
    def read_summary(self) -> Summary | None:
        raw = read_json(self.summary)
        return None if raw is None else Summary.from_json(raw, str(self.summary))

    def write_summary(self, summary: Summary) -> None:
        atomic_write_json(self.summary, summary.to_json())

    # -- lost-energy ledger and heartbeat
    def read_lost(self) -> list[LostEntry]:
        # Any torn line is skipped, not only the last: an append may have been cut
        # before an atomic rewrite appended after it (docs/reliability.md).
        out = []
        if not self.lost.exists():
            return out
        for n, line in enumerate(self.lost.read_text(encoding="utf-8", errors="replace")
                                 .splitlines(), start=1):
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                continue
            out.append(LostEntry.from_json(raw, f"{self.lost}:{n}"))
        return out

    def append_lost(self, entry: LostEntry) -> None:
        append_line(self.lost, entry.to_json())

    def rewrite_lost(self, entries: Iterable[LostEntry]) -> None:
        atomic_write_bytes(self.lost, "".join(_json_line(e.to_json()) for e in entries).encode())

    def read_heartbeat(self) -> Heartbeat | None:
        """The last heartbeat; None when absent or unreadable (it is only a hint)."""
        try:
            raw = read_json(self.heartbeat)
            return None if raw is None else Heartbeat.from_json(raw, str(self.heartbeat))
        except RunLogError:
            return None

    def write_heartbeat(self, beat: Heartbeat) -> None:
        atomic_write_bytes(self.heartbeat, json.dumps(beat.to_json()).encode())

    def remove_stale_temps(self) -> list[Path]:
        """Delete the temp files of atomic writes whose writer is dead (a kill -9 during a
        checkpoint write leaves up to a whole checkpoint behind); returns them."""
        gone = []
        for folder in (self.root, self.checkpoints):
            for p in folder.glob(".*.tmp-*") if folder.is_dir() else ():
                pid = p.name.rsplit("-", 1)[-1]
                if pid.isdigit() and not _alive(int(pid)):
                    p.unlink(missing_ok=True)
                    gone.append(p)
        return gone

    # -- the rest
    def read_config_text(self) -> str | None:
        try:
            return self.config.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise RunLogError(f"{self.config}: cannot read ({exc})") from None

    def read_launch(self) -> LaunchRecord | None:
        """``launch.json`` (a launched cell's), typed; None if absent."""
        raw = self.read_object(self.launch)
        return LaunchRecord.from_json(raw, str(self.launch)) if raw is not None else None

    def read_object(self, path: Path) -> dict[str, Any] | None:
        """A JSON object file of this directory (hardware, launch, psds); None if absent."""
        raw = read_json(path)
        if raw is not None and not isinstance(raw, dict):
            raise RunLogError(f"{path}: expected a JSON object, got {type(raw).__name__}")
        return raw


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class RunLog:
    """Everything the study tools may know about a run, read from its directory."""

    dir: RunDir
    epochs: list[EpochRecord]
    summary: Summary | None
    config_text: str | None
    hardware: dict[str, Any] | None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.dir.root

    @property
    def status(self) -> RunStatus | None:
        return self.summary.status if self.summary else None

    @property
    def finished(self) -> bool:
        return self.summary is not None and self.summary.finished

    def series(self, key: str) -> list[float | None]:
        return [r.metric(key) for r in self.epochs]


def load_run(run_dir: str | Path, *, need_epochs: bool = True) -> RunLog:
    """Read a run directory; without ``need_epochs`` a directory with no epochs.jsonl
    yet (a queued or failed grid cell) reads as a run with no epochs."""
    d = RunDir(Path(run_dir))
    if need_epochs and not d.epochs.exists():
        raise RunLogError(f"{d.root}: not a run directory (no {EPOCHS_FILE})")
    return RunLog(dir=d, epochs=d.read_epochs(), summary=d.read_summary(),
                  config_text=d.read_config_text(), hardware=d.read_object(d.hardware))


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
            raise RunLogError(f"{p}: no such run directory")
    return sorted(found)
