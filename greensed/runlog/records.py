"""The typed records of a run directory: what training writes and the study tools read.

Each record is a frozen dataclass with ``to_json()`` and a tolerant
``from_json()``: a field missing from an older log takes its default, a field
this version does not know is ignored, and a record of a newer schema is
refused with one line naming the file and line. ``docs/runlog.md`` lists every
field; a test checks that the two agree.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from greensed.errors import GreensedError
from greensed.numbers import finite_float

# Version 1: the fields of docs/runlog.md. It changes only when a field changes meaning.
SCHEMA_VERSION = 1


class RunLogError(GreensedError):
    """A run-log file that cannot be read as this greensed understands it."""


class RunStatus(StrEnum):
    """How a run ended (``summary.json`` ``status``)."""

    FINISHED = "finished"  # a policy or the epoch cap stopped it
    INTERRUPTED = "interrupted"  # SIGINT/SIGTERM/SIGHUP; resumable
    DIVERGED = "diverged"  # non-finite loss
    FAILED = "failed"  # an error; ``error`` holds its line


def check_schema(raw: Mapping[str, Any], where: str) -> int:
    """The record's schema version; newer than this greensed, or not a version, is an error."""
    schema = raw.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise RunLogError(f"{where}: schema {schema!r} is not a greensed run-log version")
    if schema > SCHEMA_VERSION:
        raise RunLogError(f"{where}: schema {schema} is newer than this greensed understands "
                          f"({SCHEMA_VERSION}); upgrade greensed")
    return schema


def _from_fields(cls: type[Any], raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Keyword arguments for ``cls`` from a JSON object: known fields only, each checked."""
    if not isinstance(raw, Mapping):
        raise RunLogError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            continue  # an older log: the default
        value, hint = raw[f.name], hints[f.name]
        has_default = (f.default is not dataclasses.MISSING
                       or f.default_factory is not dataclasses.MISSING)
        if value is None and has_default and type(None) not in typing.get_args(hint):
            continue  # null where the field has a non-null default
        out[f.name] = _coerce(value, hint, f"{where}: field '{f.name}'")
    return out


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_null = [a for a in args if a is not type(None)]
        return _coerce(value, non_null[0], where) if len(non_null) == 1 else value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise RunLogError(f"{where} = {value!r} is not a number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise RunLogError(f"{where} = {value!r} is not an integer")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise RunLogError(f"{where} = {value!r} is not a string")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise RunLogError(f"{where} = {value!r} is not a list")
        return tuple(value)
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise RunLogError(f"{where} = {value!r} is not an object")
        return dict(value)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        try:
            return hint(value)
        except ValueError:
            known = ", ".join(m.value for m in hint)
            raise RunLogError(f"{where} = {value!r} is not one of {known}") from None
    return value


def _to_json(obj: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            v = _to_json(v)
        elif isinstance(v, StrEnum):
            v = v.value
        elif isinstance(v, tuple):
            v = list(v)
        elif isinstance(v, Mapping):
            v = dict(v)
        out[f.name] = v
    return out


@dataclass(frozen=True)
class Losses:
    """Mean training losses of an epoch; ``consistency_weight`` at its last step."""

    strong: float | None = None
    weak: float | None = None
    consistency_strong: float | None = None
    consistency_weak: float | None = None
    total: float | None = None
    consistency_weight: float | None = None


# The loss terms a training step returns, in the order the loop sums them.
LOSS_KEYS = ("strong", "weak", "consistency_strong", "consistency_weak", "total")


@dataclass(frozen=True)
class EpochRecord:
    """One finished epoch (one line of ``epochs.jsonl``)."""

    epoch: int
    steps: int = 0
    lr: float | None = None
    loss: Losses = field(default_factory=Losses)
    # Validation metrics by name (``teacher_f1``, ``student_class_f1``, ...); see docs/runlog.md.
    metrics: Mapping[str, Any] = field(default_factory=dict)
    train_s: float | None = None
    val_s: float | None = None
    duration_s: float | None = None
    energy_kwh: float | None = None
    cumulative_kwh: float | None = None
    energy_components_kwh: Mapping[str, float] = field(default_factory=dict)
    energy_methods: Mapping[str, str] = field(default_factory=dict)
    avg_power_w: float | None = None
    meter: str = ""
    energy_status: str = "ok"
    time_utc: str = ""
    # What the rest of the run to its cap should cost and give, from the epochs so far
    # (greensed.stopping.predict_run); None in logs written before it existed.
    forecast: Mapping[str, Any] | None = None
    schema: int = SCHEMA_VERSION
    # kg CO2eq of this epoch and from the start of the run: kWh x the run's carbon
    # intensity (summary.json names it and its source); None without energy.
    co2_kg: float | None = None
    cumulative_co2_kg: float | None = None
    # Seconds of val_s spent on PSDS ([validate] psds); None when it was not scored.
    psds_s: float | None = None
    # Scores on the held-out test subset (``[eval] test``): ``student_f1``, ``teacher_f1``.
    # Kept apart from ``metrics`` on purpose: ``metric()`` never returns them, so no
    # policy, objective or best-epoch rule sees them. Empty: not scored.
    test: Mapping[str, Any] = field(default_factory=dict)
    # Seconds the test scoring took, after the epoch's energy window (not in duration_s).
    test_s: float | None = None

    def metric(self, key: str) -> float | None:
        """A finite number by name: a key of ``metrics`` (``teacher_f1``), a numeric
        field (``cumulative_kwh``) or a loss (``loss.total``); else None. Never a
        test score (``test``): what decides must not see them."""
        if key in self.metrics:
            return finite_float(self.metrics[key])
        if key.startswith("loss."):
            name = key[len("loss."):]
            return finite_float(getattr(self.loss, name, None))
        if key in _NUMERIC_FIELDS:
            return finite_float(getattr(self, key))
        return None

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], where: str = "epoch record") -> Self:
        schema = check_schema(raw, where) if isinstance(raw, Mapping) else None
        kwargs = _from_fields(cls, raw, where)
        if "epoch" not in kwargs:
            raise RunLogError(f"{where}: no 'epoch' field")
        loss = raw.get("loss")
        kwargs["loss"] = Losses(**_from_fields(Losses, loss, f"{where}: loss")) \
            if isinstance(loss, Mapping) else Losses()
        kwargs["schema"] = schema
        return cls(**kwargs)


_NUMERIC_FIELDS = frozenset({"epoch", "steps", "lr", "train_s", "val_s", "duration_s",
                             "energy_kwh", "cumulative_kwh", "avg_power_w", "co2_kg",
                             "cumulative_co2_kg", "psds_s", "test_s"})


@dataclass(frozen=True)
class Summary:
    """How a run ended and its totals (``summary.json``)."""

    status: RunStatus
    stop_reason: str = ""
    # The policy that fired, or the status for stops that are not a policy's.
    stop_policy: str = ""
    epochs: int = 0
    stop_epoch: int = 0
    best_epoch: int | None = None
    best_metric: str = ""
    best_value: float | None = None
    best_cumulative_kwh: float | None = None
    total_kwh: float | None = None
    total_s: float | None = None
    lost_kwh: float = 0.0
    budget_kwh: float | None = None
    budget_overrun_kwh: float = 0.0
    energy_methods: Mapping[str, str] = field(default_factory=dict)
    meter: str = ""
    classes: tuple[str, ...] = ()
    batch_size: int | None = None
    seed: int | None = None
    recipe: str = ""
    skipped_audio: int = 0
    # Audio files left out under skip_bad_audio, per reason: {"missing": n, "unreadable": m}.
    left_out_audio: Mapping[str, int] = field(default_factory=dict)
    # "baseline" | "greensed" (train.protocol); "" in logs from before protocols existed.
    protocol: str = ""
    # The model whose scores the run reports (best.pt holds both): "student" | "teacher".
    model_of_record: str = ""
    # Clips per subset the run used: strong, weak_train, unlabelled, validation and,
    # under the baseline protocol, weak_validation (the held-out weak clips).
    clips: Mapping[str, int] = field(default_factory=dict)
    steps: int | None = None
    steps_per_epoch: int | None = None
    error: str | None = None
    schema: int = SCHEMA_VERSION
    # kg CO2eq of the whole run (total_kwh x the intensity), the intensity in g CO2eq/kWh
    # and where it came from ("codecarbon: FRA grid mix 2023", "given: 300 g/kWh").
    total_co2_kg: float | None = None
    carbon_intensity_g_per_kwh: float | None = None
    carbon_source: str = ""

    @property
    def finished(self) -> bool:
        return self.status is RunStatus.FINISHED

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], where: str = "summary") -> Self:
        if not isinstance(raw, Mapping):
            raise RunLogError(f"{where}: expected a JSON object, got {type(raw).__name__}")
        schema = check_schema(raw, where)
        kwargs = _from_fields(cls, raw, where)
        if "status" not in kwargs:
            raise RunLogError(f"{where}: no 'status' field")
        return cls(**{**kwargs, "schema": schema})


@dataclass(frozen=True)
class LostEntry:
    """Energy of a partial epoch that no epoch record holds yet (``lost.jsonl``).

    ``kwh`` is None when nothing could be measured or estimated; ``how`` says
    which ("measured: ...", "estimated: ...", "unknown: ...").
    """

    epoch: int
    kwh: float | None
    duration_s: float | None = None
    how: str = ""
    # A redone epoch's record time, so a second resume does not move it twice.
    record_time_utc: str | None = None
    # "pid:epoch" of the heartbeat this entry accounts for (so it is counted once).
    heartbeat_pid_epoch: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], where: str = "lost entry") -> Self:
        kwargs = _from_fields(cls, raw, where)
        if "epoch" not in kwargs:
            raise RunLogError(f"{where}: no 'epoch' field")
        return cls(**{"kwh": None, **kwargs})


@dataclass(frozen=True)
class Heartbeat:
    """Progress of the epoch in flight (``heartbeat.json``); epoch 0: none in flight."""

    epoch: int
    elapsed_s: float
    pid: int | None = None

    @property
    def key(self) -> str:
        return f"{self.pid}:{self.epoch}"

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], where: str = "heartbeat") -> Self:
        kwargs = _from_fields(cls, raw, where)
        if "epoch" not in kwargs or "elapsed_s" not in kwargs:
            raise RunLogError(f"{where}: needs 'epoch' and 'elapsed_s'")
        return cls(**kwargs)


class LaunchState(StrEnum):
    """Where a launched grid cell is (``launch.json`` ``state``, docs/cluster.md)."""

    SUBMITTED = "submitted"  # handed to the launcher, not started yet
    STARTED = "started"  # an attempt is running (or died without a word)
    ENDED = "ended"  # the attempt ended; ``status`` says how the run did
    FAILED = "failed"  # the attempt failed; ``error`` holds its line


@dataclass(frozen=True)
class LaunchRecord:
    """``launch.json``: what a launcher wrote of a cell's last attempt (docs/cluster.md)."""

    launcher: str | None = None
    state: LaunchState | None = None
    job_id: str | None = None
    recipe: str | None = None
    submitted_utc: str | None = None
    started_utc: str | None = None
    ended_utc: str | None = None
    host: str | None = None
    pid: int | None = None
    action: str | None = None
    status: RunStatus | None = None
    error: str | None = None
    log: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _to_json(self)

    @classmethod
    def from_json(cls, raw: Mapping[str, Any], where: str = "launch.json") -> Self:
        return cls(**_from_fields(cls, raw, where))
