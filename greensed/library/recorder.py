"""The run writer for a training loop greensed does not run: a run directory that
``greensed report``, ``replay`` and ``status`` read like greensed's own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from greensed import config
from greensed.energy import Reading
from greensed.energy.carbon import CarbonIntensity
from greensed.errors import ConfigError, GreensedError
from greensed.library.energy import EnergyMonitor, default_device, resolve_carbon
from greensed.library.journal import HEARTBEAT_S, Beat, RunJournal
from greensed.library.records import budget_of, epoch_record, run_summary
from greensed.runlog import EpochRecord, LostEntry, RunDir, RunStatus, Summary
from greensed.runlog.lock import RunLock, check_writable
from greensed.stopping import Decision, MaxEpochs, Policy
from greensed.stopping.params import DEFAULT_METRIC


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
    ``heartbeat_s``: the period of the heartbeat of the epoch in flight, which a
    ``monitor``'s window starts (or :meth:`begin`): a kill -9 loses at most that much
    of the epoch's energy, the resume estimates the rest (docs/reliability.md).
    ``carbon_intensity`` (g CO2eq/kWh), else ``country_iso_code`` (and ``region``):
    the grid whose CO2 each record (``co2_kg``, ``cumulative_co2_kg``) and the
    summary (``total_co2_kg``, with the intensity and its source) count, as
    ``greensed train`` takes them; without either, the ``monitor``'s, else
    CodeCarbon's world average. Resolved once, here (``carbon``).
    """

    def __init__(self, run_dir: str | Path, *, metric: str = DEFAULT_METRIC,
                 mode: str = "max", policy: Policy | None = None,
                 max_epochs: int | None = None, batch_size: int | None = None,
                 seed: int | None = None, recipe: str = "", trainer: str = "",
                 stop: Sequence[str] = (), monitor: EnergyMonitor | None = None,
                 device: str | None = None, hardware: Mapping[str, Any] | None = None,
                 classes: Sequence[str] = (), resume: bool = False,
                 held_epochs: int | None = None, heartbeat_s: float = HEARTBEAT_S,
                 carbon_intensity: float | CarbonIntensity | None = None,
                 country_iso_code: str | None = None, region: str | None = None) -> None:
        self.run = RunDir(Path(run_dir))
        own_carbon = carbon_intensity is not None or country_iso_code or region
        self.carbon = monitor.carbon if monitor is not None and not own_carbon else \
            resolve_carbon(carbon_intensity, country_iso_code, region)
        self.metric, self.mode, self.policy = metric, mode, policy
        self.max_epochs, self.batch_size, self.seed = max_epochs, batch_size, seed
        self.recipe, self.monitor, self.classes = recipe, monitor, tuple(classes)
        self.device, self.hardware, self.resume = device, hardware, resume
        self.held_epochs, self.heartbeat_s = held_epochs, heartbeat_s
        self._beat: Beat | None = None  # the epoch in flight, from its window's start
        if monitor is not None:
            monitor.on_window.append(self.begin)
        self.history: list[EpochRecord] = []
        self.journal: RunJournal | None = None  # once started
        self.decision: Decision | None = None
        self.summary: Summary | None = None
        self._lock: RunLock | None = None
        raw: dict[str, dict[str, Any]] = {
            "recipe": {"name": recipe or None, "trainer": trainer or None,
                       "stop": list(stop) or None},
            "train": {"epochs": max_epochs, "batch_size": batch_size, "seed": seed},
            "stop": {"metric": metric, "mode": mode},
            "meter": {"spec": monitor.spec if monitor is not None else None,
                      "carbon_intensity": carbon_intensity
                      if isinstance(carbon_intensity, (int, float)) else None,
                      "country_iso_code": country_iso_code, "region": region}}
        given = {name: {k: v for k, v in t.items() if v is not None} for name, t in raw.items()}
        self.config = {name: t for name, t in given.items() if t}
        config.override(config.RunConfig(), self.config, f"{self.run.config}")  # all checked

    # -- start: config.toml, hardware.json, the lock; on resume, the history
    def start(self) -> Self:
        if self.resume and not self.run.epochs.exists() and not self.run.config.exists():
            raise GreensedError(f"{self.run.root}: nothing to resume (no run log)")
        if not self.resume and self.run.epochs.exists():
            raise GreensedError(f"{self.run.root}: already holds a run; pass resume=True or "
                                "choose another run_dir")
        check_writable(self.run)
        lock = RunLock(self.run)
        lock.__enter__()
        self._lock = lock
        self.journal = RunJournal(self.run, heartbeat_s=self.heartbeat_s)
        if self.resume:
            self._restore(self.journal)
        if not self.resume or not self.run.config.exists():
            self.journal.start(config.toml_text(self.config), self._hardware())
        return self

    def _hardware(self) -> dict[str, Any]:
        import torch  # only when a run starts

        from greensed.library.hardware import hardware_info

        info = hardware_info(torch.device(self.device or default_device()))
        return {**info, **(self.hardware or {})}

    def _restore(self, journal: RunJournal) -> None:
        self.run.keep_epochs()  # a torn last line from a crash mid-append
        records = self.run.read_epochs()
        held = len(records) if self.held_epochs is None else self.held_epochs
        # Any older checkpoint: a loop (Lightning's ModelCheckpoint) may keep several.
        self.history = journal.resume(records, held, max_ahead=None,
                                      checkpoint=f"{self.run.root} (held_epochs={held})")
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

    @property
    def lost(self) -> list[LostEntry]:
        """The ledger's entries (lost.jsonl) as this run holds them."""
        return self.journal.lost if self.journal is not None else []

    def _journal(self) -> RunJournal:
        if self.journal is None:
            self.start()
        assert self.journal is not None
        return self.journal

    def add(self, epoch: int, metrics: Mapping[str, Any], reading: Reading,
            **fields: Any) -> EpochRecord:
        """Make the epoch's record (see :func:`epoch_record` for ``fields``) and append
        it to ``epochs.jsonl``; the cumulative energy counts what the ledger holds. A
        refused record (an epoch out of turn, a bad value) puts ``reading`` in
        ``lost.jsonl``, so the window's energy stays in the run's total."""
        journal = self._journal()
        try:
            self._check_turn(epoch)
            journal.settle_unknown(epoch, reading.avg_power_w)
            record = epoch_record(epoch, metrics, reading, previous=self.last,
                                  lost_kwh=journal.lost_kwh_of(epoch), carbon=self.carbon,
                                  **fields)
        except ConfigError as exc:
            raise self._refused(exc, reading) from None
        return self.append(record)

    def append(self, record: EpochRecord) -> EpochRecord:
        """Append a record made elsewhere (its epoch must follow the last one; a refused
        one's energy goes to ``lost.jsonl``, as in :meth:`add`)."""
        journal = self._journal()
        try:
            self._check_turn(record.epoch)
        except ConfigError as exc:
            raise self._refused(exc, Reading(record.energy_kwh, record.duration_s or 0.0,
                                             meter=record.meter)) from None
        journal.append(record, self._beat)
        self._end_beat()
        self.history.append(record)
        return record

    def _check_turn(self, epoch: int) -> None:
        want = len(self.history) + 1
        if epoch != want:
            raise ConfigError(f"{self.run.epochs}: epoch {epoch!r} recorded where epoch "
                              f"{want} was due")

    def _refused(self, exc: ConfigError, reading: Reading) -> ConfigError:
        """The error for a refused record, once its window's energy is in the ledger
        (as a part of the epoch that was due, which its record will count)."""
        due = len(self.history) + 1
        entry = self.cut(due, reading, "a refused record")
        kwh = "energy unknown" if entry.kwh is None else f"{entry.kwh:.6g} kWh"
        return ConfigError(f"{exc}; its window ({kwh}) is in {self.run.lost} as part of "
                           f"epoch {due}: do not add that reading again")

    def cut(self, epoch: int, reading: Reading, why: str) -> LostEntry:
        """A partial epoch that will not be recorded (cut by ``why``): its energy goes to
        ``lost.jsonl`` and the run's total; a later record of ``epoch`` counts it."""
        beat = self._beat if self._beat is not None and self._beat.epoch == epoch else None
        entry = self._journal().cut(epoch, reading, why, beat)
        if beat is not None:
            self._end_beat()
        return entry

    def begin(self) -> None:
        """The window of the next epoch begins: its heartbeat starts (a ``monitor``
        given to the recorder calls this at each window's start; the Lightning callback
        at each epoch's). Until its record or cut, ``heartbeat.json`` says how long it
        has run, so a resume after kill -9 estimates its energy as greensed's trainer
        does."""
        if self.journal is None or self.summary is not None:
            return
        self._end_beat()
        self._beat = self.journal.heartbeat(len(self.history) + 1).__enter__()

    def _end_beat(self) -> None:
        beat, self._beat = self._beat, None
        if beat is not None:
            beat.__exit__(None, None, None)

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
        journal = self._journal()
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
                                   recipe=self.recipe, classes=self.classes, error=error,
                                   carbon=self.carbon)
        if self._beat is not None:  # a window begun for no epoch: nothing in flight now
            self._beat.accounted = True
        self._end_beat()
        try:
            journal.finish(self.summary)
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
