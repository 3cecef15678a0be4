"""One run's session: everything set up before the first step, and what the
epochs share (config, group, state, data, meter, policy, writer, history).

``open_session`` runs the checks, takes the lock, loads the data, starts the
meter and, on resume, restores the state and the ledger; leaving it closes the
meter and releases the lock. Steps that may fail on one rank end agreed
(``group.each``/``on_main``): every rank raises, none hangs.
"""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from greensed import config
from greensed.data.desed import Dataset, load_run_dataset
from greensed.data.spec import CLASSES
from greensed.energy import Meter, Reading
from greensed.energy.carbon import CarbonIntensity
from greensed.errors import GreensedError
from greensed.library.hardware import hardware_info
from greensed.library.records import budget_of, epoch_record, rank_summary, run_summary
from greensed.runlog import LOSS_KEYS, EpochRecord, RunDir, Summary
from greensed.runlog.lock import RunLock, check_run_dir, check_writable
from greensed.stopping import Decision, Policy, best_record, predict_run
from greensed.train import preflight, protocol
from greensed.train.batches import DeviceData, steps_per_epoch
from greensed.train.checkpoint import load_last
from greensed.train.group import Group
from greensed.train.messages import RunShape, stop_facts
from greensed.train.outcome import RunEnd
from greensed.train.signals import StopSignal
from greensed.train.state import TrainState, model_time_pooling
from greensed.train.step import factors
from greensed.train.validate import PSDS_TIME, validation_tensors
from greensed.train.writer import NullWriter, RunWriter, Writer

Reporter = Callable[[str], None]


@dataclass
class Session:
    cfg: config.RunConfig
    run: RunDir
    device: torch.device
    group: Group
    meter: Meter
    policy: Policy
    writer: Writer
    state: TrainState
    data: DeviceData
    val: dict[str, Any] | None  # validation tensors, on rank 0 only
    shares: tuple[int, int, int]
    n_steps: int
    report: Reporter
    recipe_name: str
    # Clips per subset in use (strong, weak_train, unlabelled, validation[, weak_validation]).
    clips: dict[str, int]
    # Files left out under skip_bad_audio: {"missing": n, "unreadable": m}.
    left_out: dict[str, int]
    carbon: CarbonIntensity  # resolved once per run (preflight.check_run_config)
    history: list[EpochRecord] = field(default_factory=list)
    stop: StopSignal = field(default_factory=StopSignal)
    resumed_at: int | None = None  # the first epoch of this session, when resuming
    # Held-out test tensors ([eval] test), on rank 0 only; scored into record.test.
    test: dict[str, Any] | None = None

    @property
    def rampup_steps(self) -> int:
        return int(self.cfg.train.rampup_epochs * self.n_steps)

    @property
    def config_toml(self) -> str:
        return config.to_toml(self.cfg)

    @property
    def shape(self) -> RunShape:
        return RunShape(self.run.root, str(self.device), self.meter.name,
                        self.cfg.train.batch_size, self.shares, self.data.sizes(),
                        self.clips["validation"], self.n_steps, self.group.world_size,
                        protocol=self.cfg.train.protocol,
                        n_heldout=self.clips.get("weak_validation"),
                        **stop_facts(self.cfg, self.carbon))

    @property
    def best_metric(self) -> str:
        """What picks best.pt: the baseline's objective, or the stopping metric."""
        return protocol.best_rule(self.cfg)[0]

    def decide(self) -> Decision:
        """The stop decision, taken once (rank 0, from the shared history)."""
        return self.group.from_main(lambda: self.policy.decide(self.history))

    def best(self, history: list[EpochRecord] | None = None) -> EpochRecord | None:
        metric, mode = protocol.best_rule(self.cfg)
        return best_record(self.history if history is None else history, metric, mode)

    def make_record(self, epoch: int, mean_losses: list[float], metrics: dict[str, Any],
                    train_s: float, val_s: float, reading: Reading,
                    test: dict[str, float] | None = None, test_s: float | None = None
                    ) -> EpochRecord:
        """The epoch's record (rank 0): the library's builder, with this protocol's
        loss terms, forecast, CO2 and test scores."""
        tc = self.cfg.train
        metrics = dict(metrics)
        psds_s = metrics.pop(PSDS_TIME, None)  # a time, not a metric: the record's field
        # Those of the epoch's last step.
        lr_factor, weight_factor = factors(tc.protocol, self.state.step - 1, self.rampup_steps)
        record = epoch_record(
            epoch, metrics, reading, previous=self.history[-1] if self.history else None,
            lost_kwh=self.writer.lost_kwh_of(epoch),
            loss={**dict(zip(LOSS_KEYS, mean_losses, strict=True)),
                  "consistency_weight": tc.consistency_max * weight_factor},
            steps=self.state.step, lr=tc.lr * lr_factor, train_s=train_s, val_s=val_s,
            carbon=self.carbon, psds_s=psds_s, test=test or {}, test_s=test_s)
        forecast = predict_run([*self.history, record], metric=self.cfg.stop.metric,
                               max_epochs=tc.epochs)
        return dataclasses.replace(record, forecast=forecast.as_dict())

    def summary(self, end: RunEnd) -> Summary:
        """The run's summary; on ranks other than 0 only what they know themselves
        (no collective: another rank may have failed)."""
        h, metric = self.history, self.best_metric
        if not self.group.is_main:
            return rank_summary(h, status=end.status, stop_policy=end.policy,
                                stop_reason=end.reason, steps=self.state.step, error=end.error)
        return run_summary(
            h, self.writer.lost, status=end.status, stop_policy=end.policy,
            stop_reason=end.reason, metric=metric, mode=protocol.best_rule(self.cfg)[1],
            budget_kwh=budget_of(self.policy), meter=self.meter.name, classes=CLASSES,
            batch_size=self.cfg.train.batch_size, seed=self.cfg.train.seed,
            recipe=self.recipe_name, error=end.error, steps=self.state.step,
            steps_per_epoch=self.n_steps, skipped_audio=self.left_out.get("unreadable", 0),
            left_out_audio=self.left_out, protocol=self.cfg.train.protocol,
            model_of_record=protocol.model_of_record(self.cfg, metric), clips=self.clips,
            carbon=self.carbon)


@contextmanager
def open_session(group: Group, cfg: config.RunConfig, run_dir: Path, device: torch.device,
                 policy: Policy, shares: tuple[int, int, int], *, resume: bool, force: bool,
                 meter: Meter | None, report: Reporter, recipe_name: str,
                 carbon: CarbonIntensity) -> Iterator[Session]:
    cfg = config.with_absolute_paths(cfg)  # what config.toml records
    run = RunDir(Path(group.bcast(str(run_dir))))  # torchrun: rank 0's time-stamped default
    group.on_main(lambda: check_run_dir(run, resume))
    # Built (not started) before the run dir exists: a bad --meter, or a budget
    # with --meter none, fails without leaving a directory behind.
    m = group.each(lambda: preflight.build_meter(cfg, device, group, meter))
    group.each(lambda: preflight.check_energy(policy, m, cfg))
    created = bool(group.on_main(lambda: check_writable(run)))
    with ExitStack() as held:  # a failed fresh start removes what it created (RunLock)
        group.on_main(lambda: held.enter_context(RunLock(run, fresh=not resume,
                                                        created=created)))
        group.on_main(run.remove_stale_temps)  # a kill -9 mid-write leaves its temp file
        if resume:
            group.on_main(lambda: preflight.check_resume_config(run, cfg, force=force))
        ds = _load(group, cfg, report)
        group.each(lambda: _check_test(ds, cfg))
        weak = group.each(lambda: protocol.weak_sets(ds, cfg))
        report(protocol.describe_split(weak, cfg))
        group.each(m.start)
        held.callback(m.close)
        # Again once started: CodeCarbon knows its methods only then.
        group.each(lambda: preflight.check_energy(policy, m, cfg))
        hardware = hardware_info(device)
        if group.world_size > 1:
            hardware["world_size"] = group.world_size
            hardware["ranks"] = group.gather({
                "rank": group.rank, "hostname": socket.gethostname(), "device": str(device),
                "gpu_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                else None})
        writer: Writer = (RunWriter(run, tensorboard=cfg.train.tensorboard) if group.is_main
                          else NullWriter())
        group.on_main(lambda: writer.start(config.to_toml(cfg), hardware))
        state = TrainState.create(cfg, device, group)
        data = DeviceData.from_dataset(ds, device, weak.train)
        n_steps = steps_per_epoch(data.sizes(), shares, cfg.train.max_steps_per_epoch)
        if n_steps < 1:
            raise GreensedError(
                "an epoch has no step: the clips of a subset (strong/weak/unlabelled "
                f"{_slashed(data.sizes())}) are fewer than one batch takes of it "
                f"(strong/weak/unlabelled {_slashed(shares)}); reduce train.batch_size")
        val = validation_tensors(ds.validation, device, clip_s=cfg.features.clip_s,
                                 heldout=weak.heldout) if group.is_main else None
        s = Session(cfg, run, device, group, m, policy, writer, state, data, val, shares,
                    n_steps, report, recipe_name, _clips(ds, weak), ds.left_out(), carbon,
                    test=_test_tensors(ds, cfg, device) if group.is_main else None)
        if resume:
            _restore(s)
        yield s


def _slashed(counts: tuple[int, ...]) -> str:
    """Counts as the banner words them: 2/2/4."""
    return "/".join(map(str, counts))


def _clips(ds: Dataset, weak: protocol.WeakSets) -> dict[str, int]:
    out = {"strong": len(ds.strong), "weak_train": len(weak.train),
           "unlabelled": len(ds.unlabelled), "validation": len(ds.validation)}
    if weak.heldout is not None:
        out["weak_validation"] = len(weak.heldout)
    return out


def _check_test(ds: Dataset, cfg: config.RunConfig) -> None:
    if cfg.eval.test and ds.test is None:
        raise GreensedError(f"[eval] test = true, but the dataset at {ds.root} has no test "
                            "subset (docs/data.md: a synthetic preset with n_test, or the "
                            "layout's test folder); set it to false or add one")


def _test_tensors(ds: Dataset, cfg: config.RunConfig, device: torch.device
                  ) -> dict[str, Any] | None:
    """The held-out test subset's tensors under [eval] test, else None."""
    if not cfg.eval.test or ds.test is None:
        return None
    return validation_tensors(ds.test, device, clip_s=cfg.features.clip_s)


def _load(group: Group, cfg: config.RunConfig, report: Reporter) -> Dataset:
    def load() -> Dataset:
        return load_run_dataset(cfg, progress=report, time_pooling=model_time_pooling(cfg))

    # Rank 0 first: it fills the feature cache, the other ranks then only read it.
    ds = group.on_main(load)
    return group.each(lambda: ds if ds is not None else load())


def _restore(s: Session) -> None:
    """The state and history of the last checkpoint; rank 0 first repairs the log
    and the ledger, then the others read last.pt (it is read, not written)."""
    g, kwargs = s.group, {"group": s.group, "seed": s.cfg.train.seed}

    def on_main() -> list[EpochRecord]:
        s.run.keep_epochs()  # a torn last line from a crash mid-append
        held, last = load_last(s.run, s.state, **kwargs)
        return s.writer.resume(s.run.read_epochs(), held, last)

    history = g.on_main(on_main)
    g.each((lambda: None) if g.is_main else (lambda: load_last(s.run, s.state, **kwargs)))
    s.history = g.bcast(history)
    s.resumed_at = len(s.history) + 1
