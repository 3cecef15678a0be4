"""Who may write a run directory: one process at a time (an exclusive lock), into
a directory that can be written and, unless resuming, holds no run yet. Each
refusal is one line and leaves nothing behind."""

from __future__ import annotations

import fcntl
import os
import socket
from typing import Any

from greensed.errors import GreensedError
from greensed.runlog.files import RunDir


class RunLock:
    """An exclusive flock on RUN_DIR/lock: a second trainer is refused, and a
    killed process releases it automatically (the kernel drops the lock). Released by
    its process (a run's end, whatever its status), the file goes too: a finished run
    holds no lock file, a killed one keeps a stale one, which nobody holds."""

    def __init__(self, run: RunDir, *, fresh: bool = False, created: bool = False) -> None:
        """``fresh``: the start of a new run, whose failure before its first record
        removes what it wrote (the lock, config.toml, hardware.json) and, when this start
        ``created`` the directory, the directory once empty: a failed start leaves
        nothing behind."""
        self.path, self.run, self.fresh, self.created = run.lock, run, fresh, created
        self._fh: Any = None

    def __enter__(self) -> RunLock:
        while True:
            self._fh = open(self.path, "a+")
            try:
                fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self._fh.seek(0)
                owner = self._fh.read().strip() or "another process"
                self._fh.close()
                self._fh = None
                raise GreensedError(
                    f"{self.path.parent}: run directory is in use by {owner}; "
                    "wait for it or choose another --out"
                ) from None
            if self._is_the_path():
                break
            # Its holder removed the file as we opened it: lock the path's file anew.
            self._fh.close()
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        self._fh.flush()
        return self

    def _is_the_path(self) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(self._fh.fileno()).st_ino
        except FileNotFoundError:
            return False

    def __exit__(self, exc_type: object = None, *exc: object) -> None:
        if self._fh is None:
            return
        try:
            if exc_type is not None and self.fresh:
                self._undo()  # still locked: no other trainer is starting here meanwhile
            # Removed while still held: one who opened it meanwhile sees another file
            # at the path once it has the lock, and takes that one (__enter__).
            self.path.unlink(missing_ok=True)
        finally:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def _undo(self) -> None:
        run = self.run
        if any(p.exists() for p in (run.epochs, run.summary, run.lost, run.last)):
            return  # the run has a log: keep everything
        for p in (run.config, run.hardware, run.heartbeat, run.epochs_csv, run.lock):
            p.unlink(missing_ok=True)
        for folder in (run.checkpoints, *((run.root,) if self.created else ())):
            try:
                folder.rmdir()  # only when empty: never what someone else put there
            except OSError:
                pass


def check_run_dir(run: RunDir, resume: bool) -> None:
    if resume and not run.epochs.exists() and not run.last.exists() \
            and not run.config.exists():
        raise GreensedError(f"{run.root}: nothing to resume (no run log or checkpoint)")
    # A fresh start on a run's files would mix two runs' energy (lost.jsonl, summary).
    held = [p.name for p in (run.epochs, run.summary, run.lost, run.last) if p.exists()]
    if not resume and held:
        raise GreensedError(f"{run.root}: already holds a run ({', '.join(held)}); use "
                            "--resume or another --out")


def check_writable(run: RunDir) -> bool:
    """Fail before training if the run directory cannot be written; True when this
    call created it."""
    created = not run.root.exists()
    try:
        run.root.mkdir(parents=True, exist_ok=True)
        probe = run.root / f".write-test-{os.getpid()}"
        probe.write_bytes(b"x" * 4096)
        probe.unlink()
    except OSError as exc:
        raise GreensedError(f"{run.root}: run directory is not writable ({exc.strerror})"
                            ) from None
    return created
