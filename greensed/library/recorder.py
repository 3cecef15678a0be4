"""The run writer for a training loop greensed does not run: a run directory that
``greensed report``, ``replay`` and ``status`` read like greensed's own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from greensed import config as C
from greensed.energy import Reading
from greensed.errors import ConfigError, GreensedError
from greensed.library.energy import EnergyMonitor, default_device
from greensed.library.records import budget_of, epoch_record, run_summary
from greensed.runlog import EpochRecord, LostEntry, RunDir, RunStatus, Summary
from greensed.stopping import Decision, MaxEpochs, Policy
from greensed.stopping.params import DEFAULT_METRIC
from greensed.train import ledger


class RunRecorder:
    """Writes a greensed run directory for a training loop greensed does not run:
    ``config.toml`` (a minimal, valid greensed config), ``hardware.json``,
    ``epochs.jsonl`` (and ``epochs.csv``), ``lost.jsonl`` and ``summary.json``, through
    greensed.runlog.

    ::

        with RunRecorder("runs/mine", metric="val_f1", policy=policy, max_epochs=30,
                         batch_size=32, monitor=monitor) as run:
            for epoch in range(1, 31):
                with monitor.window() as w:
                    ...
                run.add(epoch, {"val_f1": f1}, w.reading, loss=loss)
                if run.decide().stop:
                    break

    Leaving the block writes the summary: ``finished`` with the policy's stop reason
    (or the loop's end), ``interrupted`` on Ctrl-C, ``failed`` on an exception, whose
    partial epoch (the ``monitor``'s abandoned window) goes to ``lost.jsonl``.

    ``metric``/``mode``: what "best" means in the summary (the policies' metric).
    ``max_epochs``, ``batch_size``, ``seed``, ``recipe`` go to ``config.toml`` and the
    summary, where ``greensed report --by batch|recipe`` and ``status`` read them.
    ``resume``: continue a directory that holds a run; ``held_epochs``: the epochs the
    checkpoint you resume from holds (logged epochs after it move to the ledger).
    """

    def __init__(self, run_dir: str | Path, *, metric: str = DEFAULT_METRIC,
                 mode: str = "max", policy: Policy | None = None,
                 max_epochs: int | None = None, batch_size: int | None = None,
                 seed: int | None = None, recipe: str = "", trainer: str = "",
                 stop: Sequence[str] = (), monitor: EnergyMonitor | None = None,
                 device: str | None = None, hardware: Mapping[str, Any] | None = None,
                 classes: Sequence[str] = (), resume: bool = False,
                 held_epochs: int | None = None) -> None:
        self.run = RunDir(Path(run_dir))
        self.metric, self.mode, self.policy = metric, mode, policy
        self.max_epochs, self.batch_size, self.seed = max_epochs, batch_size, seed
        self.recipe, self.monitor, self.classes = recipe, monitor, tuple(classes)
        self.device, self.hardware, self.resume = device, hardware, resume
        self.held_epochs = held_epochs
        self.history: list[EpochRecord] = []
        self.lost: list[LostEntry] = []
        self.decision: Decision | None = None
        self.summary: Summary | None = None
        self._lock: Any = None
        raw: dict[str, dict[str, Any]] = {
            "recipe": {"name": recipe or None, "trainer": trainer or None,
                       "stop": list(stop) or None},
            "train": {"epochs": max_epochs, "batch_size": batch_size, "seed": seed},
            "stop": {"metric": metric, "mode": mode},
            "meter": {"spec": monitor.spec if monitor is not None else None}}
        self.config = {name: {k: v for k, v in t.items() if v is not None}
                       for name, t in raw.items()}
        self.config = {name: t for name, t in self.config.items() if t}
        C.override(C.RunConfig(), self.config, f"{self.run.config}")  # every value checked

    # -- start: config.toml, hardware.json, the lock; on resume, the history
    def start(self) -> Self:
        from greensed.train import preflight  # torch: only when a run starts

        if self.resume and not self.run.epochs.exists() and not self.run.config.exists():
            raise GreensedError(f"{self.run.root}: nothing to resume (no run log)")
        if not self.resume and self.run.epochs.exists():
            raise GreensedError(f"{self.run.root}: already holds a run; pass resume=True or "
                                "choose another run_dir")
        preflight.check_writable(self.run)
        lock = preflight.RunLock(self.run)
        lock.__enter__()
        self._lock = lock
        if self.resume:
            self._restore()
        if not self.resume or not self.run.config.exists():
            self.run.root.mkdir(parents=True, exist_ok=True)
            from greensed.runlog import atomic_write_bytes, atomic_write_json

            atomic_write_bytes(self.run.config, C.toml_text(self.config).encode())
            atomic_write_json(self.run.hardware, self._hardware(preflight))
        return self

    def _hardware(self, preflight: Any) -> dict[str, Any]:
        import torch

        info = preflight.hardware_info(torch.device(self.device or default_device()))
        return {**info, **(self.hardware or {})}

    def _restore(self) -> None:
        self.run.keep_epochs()  # a torn last line from a crash mid-append
        records, self.lost = self.run.read_epochs(), self.run.read_lost()
        held = len(records) if self.held_epochs is None else self.held_epochs
        plan = ledger.plan_resume(records, held, self.lost, None,
                                  checkpoint=f"{self.run.root} (held_epochs={held})")
        for entry in plan.moved:
            self.run.append_lost(entry)
            self.lost.append(entry)
        if plan.truncate_to is not None:
            self.run.keep_epochs(plan.truncate_to)
        self.history = plan.history
        if not self.recipe:  # the run's own name, not a resume's empty one
            import tomllib

            saved = tomllib.loads(self.run.read_config_text() or "")
            self.recipe = str(saved.get("recipe", {}).get("name", ""))

    @property
    def started(self) -> bool:
        """Whether the directory is this recorder's (started, not yet finished)."""
        return self._lock is not None

    # -- epochs
    @property
    def last(self) -> EpochRecord | None:
        return self.history[-1] if self.history else None

    def add(self, epoch: int, metrics: Mapping[str, Any], reading: Reading,
            **fields: Any) -> EpochRecord:
        """Make the epoch's record (see :func:`epoch_record` for ``fields``) and append
        it to ``epochs.jsonl``; the cumulative energy counts what the ledger holds."""
        record = epoch_record(epoch, metrics, reading, previous=self.last,
                              lost_kwh=ledger.lost_kwh_of(self.lost, epoch), **fields)
        return self.append(record)

    def append(self, record: EpochRecord) -> EpochRecord:
        """Append a record made elsewhere (its epoch must follow the last one)."""
        if self._lock is None:
            self.start()
        want = len(self.history) + 1
        if record.epoch != want:
            raise ConfigError(f"{self.run.epochs}: epoch {record.epoch} recorded where "
                              f"epoch {want} was due")
        self.run.append_epoch(record)
        self.history.append(record)
        self.run.write_epochs_csv(self.history)
        return record

    def cut(self, epoch: int, reading: Reading, why: str) -> LostEntry:
        """A partial epoch that will not be recorded (cut by ``why``): its energy goes to
        ``lost.jsonl`` and the run's total; a later record of ``epoch`` counts it."""
        entry = ledger.cut_entry(epoch, reading.energy_kwh, reading.duration_s, why, None)
        self.run.append_lost(entry)
        self.lost.append(entry)
        return entry

    def decide(self) -> Decision:
        """The ``policy``'s decision on the history so far (kept for the summary)."""
        if self.policy is None:
            raise ConfigError("RunRecorder.decide(): no policy given (policy=...)")
        self.decision = self.policy.decide(self.history)
        return self.decision

    # -- the end
    def finish(self, decision: Decision | None = None, *, status: RunStatus | None = None,
               error: str | None = None) -> Summary:
        """Write ``summary.json``: how the run ended (``decision``: the stop that ended
        it; default the last :meth:`decide`) and its totals. Releases the lock."""
        if self._lock is None:
            self.start()
        d = decision or self.decision
        if status is None:
            status = RunStatus.FAILED if error else RunStatus.FINISHED
        if status is RunStatus.FINISHED:
            if d is None or not d.stop:
                cap = MaxEpochs(self.max_epochs) if self.max_epochs else None
                d = cap.decide(self.history) if cap is not None else None
            if d is None or not d.stop:  # no policy's stop: the loop's own end
                d = Decision(True, "", f"the training loop ended after {len(self.history)} "
                             "epochs (no policy stopped it)")
            policy, reason = d.policy, d.reason
        elif status is RunStatus.INTERRUPTED:
            policy, reason = status.value, "interrupted (KeyboardInterrupt)"
        else:
            policy, reason = status.value, error or status.value
        self.summary = run_summary(self.history, self.lost, status=status, stop_policy=policy,
                                   stop_reason=reason, metric=self.metric, mode=self.mode,
                                   budget_kwh=budget_of(self.policy), meter=self._meter_name(),
                                   batch_size=self.batch_size, seed=self.seed,
                                   recipe=self.recipe, classes=self.classes, error=error)
        try:
            self.run.write_summary(self.summary)
        finally:
            self._release()
        return self.summary

    def _meter_name(self) -> str:
        if self.monitor is not None:
            return self.monitor.name
        return self.history[-1].meter if self.history else ""

    def _release(self) -> None:
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.summary is not None:  # finish() was called in the block
            return
        if exc_type is None or exc is None:
            self.finish()
            return
        self.abort(exc, self.monitor.abandoned if self.monitor is not None else None)

    def abort(self, exc: BaseException, reading: Reading | None) -> Summary:
        """End the run because of ``exc``: the epoch in flight, measured by ``reading``,
        goes to the ledger; the summary says interrupted (a Ctrl-C) or failed."""
        interrupted = isinstance(exc, KeyboardInterrupt)
        why = "a signal" if interrupted else f"an error ({type(exc).__name__})"
        if reading is not None:
            self.cut(len(self.history) + 1, reading, why)
        if interrupted:
            return self.finish(status=RunStatus.INTERRUPTED)
        return self.finish(error=f"{type(exc).__name__}: {exc}".splitlines()[0])
