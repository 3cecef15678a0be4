"""The run log: the contract between training and the study tools (docs/runlog.md).

``records`` holds the typed records (epoch, summary, lost entry, heartbeat) and
the run status; ``files`` owns the run directory's paths and their atomic
writes and tolerant reads. Importing this package imports nothing heavy.
"""

from greensed.runlog.files import (
    EPOCHS_FILE,
    RunDir,
    RunLog,
    atomic_write_bytes,
    atomic_write_json,
    find_runs,
    load_run,
    read_json,
)
from greensed.runlog.records import (
    LOSS_KEYS,
    SCHEMA_VERSION,
    EpochRecord,
    Heartbeat,
    LaunchRecord,
    LaunchState,
    Losses,
    LostEntry,
    RunLogError,
    RunStatus,
    Summary,
)

__all__ = [
    "EPOCHS_FILE",
    "LOSS_KEYS",
    "SCHEMA_VERSION",
    "EpochRecord",
    "Heartbeat",
    "LaunchRecord",
    "LaunchState",
    "LostEntry",
    "Losses",
    "RunDir",
    "RunLog",
    "RunLogError",
    "RunStatus",
    "Summary",
    "atomic_write_bytes",
    "atomic_write_json",
    "find_runs",
    "load_run",
    "read_json",
]
