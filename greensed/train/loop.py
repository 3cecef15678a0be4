"""The training loop: epochs of mean-teacher steps, validation, energy, stopping.

Read top to bottom: `train()` sets up (data, model, meter, policy, run dir),
then each epoch is one measured window: train steps -> validation -> energy
reading -> log record -> checkpoints -> stop decision.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import hashlib
import math
import signal
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from greensed import config as C
from greensed import runlog
from greensed.data.desed import Dataset, load_dataset
from greensed.data.spec import CLASSES
from greensed.energy import Meter, make_meter
from greensed.errors import ConfigError, GreensedError
from greensed.model.crnn import CRNN
from greensed.model.teacher import make_teacher
from greensed.stopping import build_policy
from greensed.train import distributed as D
from greensed.train import rundir as R
from greensed.train.step import Batch, optimize, ramp
from greensed.train.validate import METRICS, validate, validation_tensors

Reporter = Callable[[str], None]

# Seconds between heartbeats within an epoch: after a kill -9 the lost partial
# epoch is estimated from the last heartbeat's elapsed time (docs/reliability.md).
HEARTBEAT_S = 5.0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available on this machine")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ConfigError(f"--device {name!r}: expected auto, cpu or cuda")
    return torch.device(name)


def batch_composition(batch_size: int) -> tuple[int, int, int]:
    """strong : weak : unlabelled = 1/4 : 1/4 : 1/2 of the batch, as in the baseline."""
    if batch_size < 4 or batch_size % 4:
        raise ConfigError(
            f"train.batch_size = {batch_size}: must be a multiple of 4 "
            "(composed 1/4 strong, 1/4 weak, 1/2 unlabelled)"
        )
    return batch_size // 4, batch_size // 4, batch_size // 2


def epoch_batches(sizes: tuple[int, int, int], shares: tuple[int, int, int], seed: int,
                  epoch: int, max_steps: int = 0) -> Iterator[tuple[np.ndarray, ...]]:
    """Index triples for one epoch. Each subset is shuffled on its own; the epoch
    ends when the shortest one (relative to its share) runs out. Derived from
    (seed, epoch) alone, so a resumed run sees exactly the same batches."""
    rng = np.random.default_rng([seed, epoch])
    perms = [rng.permutation(n) for n in sizes]
    n_steps = min(n // k for n, k in zip(sizes, shares, strict=True))
    if max_steps:
        n_steps = min(n_steps, max_steps)
    for i in range(n_steps):
        yield tuple(p[i * k:(i + 1) * k] for p, k in zip(perms, shares, strict=True))


def steps_per_epoch(sizes: tuple[int, int, int], shares: tuple[int, int, int],
                    max_steps: int = 0) -> int:
    n = min(s // k for s, k in zip(sizes, shares, strict=True))
    return min(n, max_steps) if max_steps else n


@dataclass
class DeviceData:
    """All features and labels as tensors on the training device (they fit:
    DESED's linear mels are ~4 GB in fp16), so a step never touches the disk."""

    strong: torch.Tensor
    weak: torch.Tensor
    unlabelled: torch.Tensor
    strong_labels: torch.Tensor
    weak_labels: torch.Tensor

    @classmethod
    def from_dataset(cls, ds: Dataset, device: torch.device) -> DeviceData:
        def t(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            # A copy: the cache is a read-only memmap, and the device copy must not alias it.
            return torch.from_numpy(np.array(a)).to(device=device, dtype=dtype)

        return cls(t(ds.strong.mels, torch.float16), t(ds.weak.mels, torch.float16),
                   t(ds.unlabelled.mels, torch.float16),
                   t(ds.strong.strong, torch.float32), t(ds.weak.weak, torch.float32))

    def sizes(self) -> tuple[int, int, int]:
        return len(self.strong), len(self.weak), len(self.unlabelled)

    def batch(self, idx: tuple[np.ndarray, ...]) -> Batch:
        i_s, i_w, i_u = (torch.from_numpy(i).to(self.strong.device) for i in idx)
        mels = torch.cat([self.strong[i_s], self.weak[i_w], self.unlabelled[i_u]]).float()
        return Batch(mels, self.strong_labels[i_s], self.weak_labels[i_w])


class StopSignal:
    """SIGINT/SIGTERM set a flag that the loop checks between steps: the epoch
    is cut cleanly, the log flushed, and the run stays resumable."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.signum = signum

    @contextmanager
    def installed(self) -> Iterator[StopSignal]:
        old = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


@dataclass
class TrainResult:
    run_dir: Path
    summary: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    # SHA-256 of the final student and teacher weights: equal on every rank of a group.
    model_sha256: str = ""
    # A local multi-process launch: each rank's status, epochs, steps, model_sha256, exitcode.
    ranks: list[dict[str, Any]] = field(default_factory=list)


def train(cfg: C.RunConfig, run_dir: str | Path, *, resume: bool = False, force: bool = False,
          meter: Meter | None = None, report: Reporter = print,
          recipe_name: str = "", nproc: int = 1) -> TrainResult:
    """Train one run into ``run_dir`` (see docs/training.md and docs/runlog.md).

    On several processes (docs/multigpu.md): with torchrun's environment
    variables set, this process joins that group as one rank; otherwise
    ``nproc`` > 1 starts that many local ranks (rank 0 prints with ``print``)
    and returns rank 0's result, with every rank's outcome in ``ranks``.
    """
    run_dir = Path(run_dir)
    env = D.env_from_environ()
    if nproc < 1 or (env is not None and nproc not in (1, env.world_size)):
        raise ConfigError(f"--nproc {nproc}: must be >= 1, and equal WORLD_SIZE "
                          f"({env.world_size if env else '-'}) under torchrun")
    world = env.world_size if env is not None else nproc
    shares = batch_composition(cfg.train.batch_size)
    D.check_batch(cfg.train.batch_size, world)
    D.check_meter_mode(cfg.meter.tracking_mode, world)
    check_metric(cfg.stop.metric)
    policy = build_policy(cfg.stop, max_epochs=cfg.train.epochs)
    device = resolve_device(cfg.train.device)
    if env is None and nproc > 1:
        # Bad input fails here, in one line, before any process starts.
        _check_run_dir(run_dir, resume)
        if device.type == "cuda" and nproc > torch.cuda.device_count():
            raise ConfigError(f"--nproc {nproc}: only {torch.cuda.device_count()} CUDA "
                              "device(s) visible; one process per GPU")
        D.rank_meter(meter or make_meter(cfg.meter.spec, device=str(device),
                                         tracking_mode=cfg.meter.tracking_mode),
                     measures_node=True)
        return _launch_local(nproc, cfg, run_dir, resume, force, meter, recipe_name)
    if env is None:
        return _train_in(D.SOLO, cfg, run_dir, device, policy, shares, resume=resume,
                         force=force, meter=meter, report=report, recipe_name=recipe_name)
    device = D.rank_device(device, env)
    group = D.RankGroup(env, device)
    try:
        return _train_in(group, cfg, run_dir, device, policy, shares, resume=resume,
                         force=force, meter=meter, report=report if env.is_main else _silent,
                         recipe_name=recipe_name)
    finally:
        group.close()


def _silent(_: str) -> None:
    pass


def _check_run_dir(run_dir: Path, resume: bool) -> None:
    if resume and not (run_dir / runlog.EPOCHS_FILE).exists() and not (
        run_dir / R.CHECKPOINT_DIR / "last.pt").exists():
        if not (run_dir / runlog.CONFIG_FILE).exists():
            raise GreensedError(f"{run_dir}: nothing to resume (no run log or checkpoint)")
    if not resume and (run_dir / runlog.EPOCHS_FILE).exists():
        raise GreensedError(f"{run_dir}: already holds a run; use --resume or another --out")


def _train_in(group: D.Group, cfg: C.RunConfig, run_dir: Path, device: torch.device,
              policy: Any, shares: tuple[int, int, int], *, resume: bool, force: bool,
              meter: Meter | None, report: Reporter, recipe_name: str) -> TrainResult:
    """The run on one process of ``group`` (D.SOLO: the only one). Steps that may
    fail on one rank end agreed (group.each/on_main): every rank raises, none hangs."""
    run_dir = Path(group.bcast(str(run_dir)))  # torchrun: rank 0's time-stamped default
    group.on_main(lambda: _check_run_dir(run_dir, resume))

    # Built (not started) before the run dir exists: a bad --meter, or a budget
    # with --meter none, fails without leaving a directory behind.
    def build_meter() -> Meter:
        m = meter or make_meter(cfg.meter.spec, device=str(device),
                                tracking_mode=cfg.meter.tracking_mode)
        if group.world_size == 1:
            return m
        part = D.rank_meter(m, measures_node=group.measures_node)
        return D.ReducedMeter(part, group, f"{m.name} x{group.world_size} ranks")

    meter = group.each(build_meter)
    needs_energy = bool(getattr(policy, "requires_energy", False))

    def check_energy() -> None:
        if needs_energy and _meter_unavailable(meter):
            raise _no_energy_error(cfg, meter)

    group.each(check_energy)
    group.on_main(lambda: R.check_writable(run_dir))
    with contextlib.ExitStack() as held:
        group.on_main(lambda: held.enter_context(R.RunLock(run_dir)))
        if resume:
            group.on_main(lambda: R.check_resume_config(run_dir, cfg, force=force))

        def load() -> Dataset:
            return load_dataset(cfg.data.path, cfg.features, cache_dir=cfg.data.cache_dir,
                                preset=cfg.data.preset, synth_seed=cfg.data.synth_seed,
                                skip_bad_audio=cfg.data.skip_bad_audio, progress=report)

        # Rank 0 first: it fills the feature cache, the other ranks then only read it.
        ds = group.on_main(load)
        ds = group.each(lambda: ds if ds is not None else load())
        group.each(meter.start)  # before describe(): CodeCarbon knows its methods once started

        def check_started() -> None:
            if needs_energy and _meter_unavailable(meter):
                meter.close()
                raise _no_energy_error(cfg, meter)

        group.each(check_started)
        hardware = R.hardware_info(device)
        if group.world_size > 1:
            hardware["world_size"] = group.world_size
            hardware["ranks"] = group.gather({
                "rank": group.rank, "hostname": socket.gethostname(), "device": str(device),
                "gpu_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                else None})

        def write_start() -> None:
            R.write_config(run_dir, cfg)
            runlog.atomic_write_json(run_dir / runlog.HARDWARE_FILE, hardware)

        group.on_main(write_start)
        return _Run(cfg, run_dir, ds, device, meter, policy, shares, report, recipe_name,
                    group).run(resume)


def _rank_main(cfg: C.RunConfig, run_dir: Path, resume: bool, force: bool,
               meter: Meter | None, recipe_name: str) -> dict[str, Any]:
    """One rank of a local launch (a spawned process): train, say how it ended."""
    res = train(cfg, run_dir, resume=resume, force=force, meter=meter, recipe_name=recipe_name)
    return {"status": res.summary.get("status"), "epochs": len(res.history),
            "steps": res.summary.get("steps"), "model_sha256": res.model_sha256}


def _launch_local(nproc: int, cfg: C.RunConfig, run_dir: Path, resume: bool, force: bool,
                  meter: Meter | None, recipe_name: str) -> TrainResult:
    outcomes = D.spawn(nproc, _rank_main, (cfg, run_dir, resume, force, meter, recipe_name))
    D.raise_first_error(outcomes)
    return TrainResult(run_dir, runlog.read_summary(run_dir), runlog.read_epochs(run_dir),
                       ranks=[{"rank": o.rank, "exitcode": o.exitcode, **o.value}
                              for o in outcomes])


def check_metric(name: str) -> None:
    """A misspelt metric would silently disable best.pt and the plateau policy."""
    known = METRICS + tuple(f"loss.{k}" for k in LOSS_KEYS)
    if name not in known:
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"stop.metric = {name!r}: unknown metric{hint}; choose from "
                          + ", ".join(known))


def _meter_unavailable(meter: Meter) -> bool:
    methods = meter.describe()
    return bool(methods) and all(m == "unavailable" for m in methods.values())


def _no_energy_error(cfg: C.RunConfig, meter: Meter) -> ConfigError:
    return ConfigError(
        f"stopping policy {cfg.stop.policies} needs energy readings but meter "
        f"'{meter.name}' is unavailable ({meter.describe()})")


class _Run:
    """State of one training run; `run()` is the epoch loop."""

    def __init__(self, cfg: C.RunConfig, run_dir: Path, ds: Dataset, device: torch.device,
                 meter: Meter, policy: Any, shares: tuple[int, int, int], report: Reporter,
                 recipe_name: str, group: D.Group = D.SOLO) -> None:
        self.cfg, self.run_dir, self.ds, self.device = cfg, run_dir, ds, device
        self.meter, self.policy, self.shares, self.report = meter, policy, shares, report
        self.recipe_name, self.group = recipe_name, group
        tc = cfg.train
        torch.manual_seed(tc.seed)
        # Every rank draws the same mixup decisions, lambdas and permutations.
        self.rng = np.random.default_rng(tc.seed)
        self.student = CRNN(n_classes=len(CLASSES), n_mels=cfg.features.n_mels).to(device)
        self.teacher = make_teacher(self.student)
        if group.world_size > 1:
            # Same initial weights on every rank (above); its own dropout masks (here).
            seq = np.random.SeedSequence([tc.seed, group.rank])
            torch.manual_seed(int(seq.generate_state(1)[0]))
        # What the step calls: the student itself or its DDP wrapper (gradients
        # averaged over ranks in backward, so one optimizer step sees the global
        # batch), and the teacher; with train.compile, compiled wrappers of them
        # (shared parameters). Validation, EMA and checkpoints use the eager
        # modules, so eval mode and other batch shapes trigger no recompilation.
        self.step_student = group.wrap(self.student)
        self.step_teacher = self.teacher
        if tc.compile:
            self.step_student = torch.compile(self.step_student)
            self.step_teacher = torch.compile(self.teacher)
        self.opt = torch.optim.Adam(self.student.parameters(), lr=tc.lr, betas=(0.9, 0.999),
                                    foreach=True)
        self.data = DeviceData.from_dataset(ds, device)
        # Validation runs once, on rank 0, over the whole validation set.
        self.val = validation_tensors(ds.validation, device) if group.is_main else None
        self.n_steps = steps_per_epoch(self.data.sizes(), shares, tc.max_steps_per_epoch)
        if self.n_steps < 1:
            raise GreensedError(
                f"an epoch has no step: subsets {self.data.sizes()} are smaller than the "
                f"batch shares {shares} (reduce train.batch_size)")
        self.rampup_steps = int(tc.warmup_epochs * self.n_steps)
        self.step = 0
        self.history: list[dict[str, Any]] = []
        self.lost: list[dict[str, Any]] = []
        self.stop = StopSignal()
        self.cut_signum: int | None = None  # the signal that cut an epoch, agreed by all ranks

    # -- checkpoints ----------------------------------------------------------
    def state(self, rank_rngs: list[Any] | None = None) -> dict[str, Any]:
        return {"student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
                "optimizer": self.opt.state_dict(), "step": self.step,
                "epoch": len(self.history), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                "numpy_rng": self.rng.bit_generator.state, "config": C.to_toml(self.cfg),
                "cumulative_kwh": self.history[-1]["cumulative_kwh"] if self.history else 0.0,
                "schema": runlog.SCHEMA_VERSION, "rank_rngs": rank_rngs or []}

    def rng_states(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return (torch.get_rng_state(),
                torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [])

    def load_last(self) -> int:
        """Weights, optimizer, step and generators from last.pt; the epochs it holds."""
        ckpt_path = self.run_dir / R.CHECKPOINT_DIR / "last.pt"
        if not ckpt_path.exists():
            return 0  # none yet: start from the seed's init
        ck = R.load_checkpoint(ckpt_path)
        self.student.load_state_dict(ck["student"])
        self.teacher.load_state_dict(ck["teacher"])
        self.opt.load_state_dict(ck["optimizer"])
        self.step = int(ck["step"])
        torch_rng, cuda_rng = ck["torch_rng"], ck.get("cuda_rng")
        ranks = ck.get("rank_rngs") or []
        if self.group.world_size > 1:
            if len(ranks) == self.group.world_size:  # each rank's own dropout stream
                torch_rng, cuda_rng = ranks[self.group.rank]
            else:  # another number of ranks: distinct streams, from the seed and the step
                torch_rng, cuda_rng = None, None
                torch.manual_seed(int(np.random.SeedSequence(
                    [self.cfg.train.seed, self.group.rank, self.step]).generate_state(1)[0]))
        if torch_rng is not None:
            torch.set_rng_state(torch_rng)
        if cuda_rng and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(cuda_rng)
        self.rng.bit_generator.state = ck["numpy_rng"]
        return int(ck["epoch"])

    def restore(self) -> None:
        ckpt_path = self.run_dir / R.CHECKPOINT_DIR / "last.pt"
        runlog.repair_epochs(self.run_dir)
        records = runlog.read_epochs(self.run_dir)
        n = self.load_last()  # epochs the checkpoint holds
        # The log may be one epoch ahead of the checkpoint if we died between the two writes.
        if len(records) > n + 1:
            held = f"holds epoch {n}" if ckpt_path.exists() else "is missing"
            raise GreensedError(f"{ckpt_path}: {held} but the log has {len(records)} "
                                "epochs; cannot resume")
        if len(records) > n:
            self.drop_unsaved(records[n:])
            runlog.truncate_epochs(self.run_dir, n)
        self.history = records[:n]

    def drop_unsaved(self, records: list[dict[str, Any]]) -> None:
        """An epoch logged but not checkpointed is redone; its measured energy
        moves to lost.jsonl so that the run's total still counts it (once)."""
        hb = R.read_heartbeat(self.run_dir) or {}
        seen = {(e.get("epoch"), e.get("record_time_utc")) for e in R.read_lost(self.run_dir)}
        for r in records:
            if (r["epoch"], r.get("time_utc")) in seen:
                continue  # a resume that died before truncating already moved it
            # The heartbeat of that same attempt must not add an estimate on top.
            beat = f"{hb.get('pid')}:{r['epoch']}" if hb.get("epoch") == r["epoch"] else None
            R.append_lost(self.run_dir, {
                "epoch": r["epoch"], "kwh": r.get("energy_kwh"), "duration_s": r["duration_s"],
                "how": "measured: finished epoch redone on resume (died before its checkpoint)",
                "record_time_utc": r.get("time_utc"), "heartbeat_pid_epoch": beat})

    def account_lost_energy(self) -> None:
        """Energy of a partial epoch cut by a crash: measured when we stopped
        cleanly (already in lost.jsonl), else estimated from the heartbeat's
        elapsed time x the average power of the finished epochs."""
        hb = R.read_heartbeat(self.run_dir)
        if hb and hb.get("epoch", 0) > len(self.history) and hb.get("pid") is not None:
            done = {e.get("heartbeat_pid_epoch") for e in R.read_lost(self.run_dir)}
            key = f"{hb['pid']}:{hb['epoch']}"
            if key not in done:
                powers = [r["avg_power_w"] for r in self.history if r.get("avg_power_w")]
                power_w = float(np.mean(powers)) if powers else None
                kwh = power_w * hb["elapsed_s"] / 3.6e6 if power_w else None
                R.append_lost(self.run_dir, {
                    "epoch": hb["epoch"], "kwh": kwh, "duration_s": hb["elapsed_s"],
                    "how": "estimated: elapsed time x mean power of finished epochs"
                    if kwh is not None else "unknown: no finished epoch to estimate power from",
                    "heartbeat_pid_epoch": key})
        self.lost = R.read_lost(self.run_dir)

    # -- the loop -------------------------------------------------------------
    def decide(self) -> Any:
        """The stop decision, taken once (rank 0, from the shared history)."""
        return self.group.from_main(lambda: self.policy.decide(self.history))

    def run(self, resume: bool) -> TrainResult:
        g = self.group
        if resume:
            def restore_main() -> None:
                self.restore()
                self.account_lost_energy()

            g.on_main(restore_main)
            if not g.is_main:  # after rank 0's repairs; last.pt is read, not written
                g.each(self.load_last)
            else:
                g.each(lambda: None)
            self.history = g.bcast(self.history)
        self.report(self._banner(resume))
        status, decision_policy, reason, error = "finished", "", "", None
        try:
            with self.stop.installed():
                decision = self.decide()
                while not decision.stop:
                    epoch = len(self.history) + 1
                    record = self.run_epoch(epoch)
                    if record is None:  # interrupted or diverged mid-epoch
                        status = "interrupted" if self.cut_signum else "diverged"
                        break
                    decision = self.decide()
                if decision.stop and status == "finished":
                    decision_policy, reason = decision.policy, decision.reason
        except KeyboardInterrupt:
            status = "interrupted"
        except GreensedError as exc:
            status, error = "failed", str(exc)
            raise
        except OSError as exc:  # disk full, run dir removed or read-only mid-run
            status = "failed"
            error = (f"cannot write the run log or a checkpoint ({exc}); the finished epochs "
                     "are intact: free space or fix the directory, then use --resume")
            raise GreensedError(error) from None
        except Exception as exc:  # never leave a summary that says "finished"
            status, error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.meter.close()
            if status == "interrupted":
                signum = self.cut_signum or self.stop.signum
                sig = signal.Signals(signum).name if signum else "SIGINT"
                decision_policy = "interrupted"
                reason = f"interrupted by {sig}; resume with --resume"
            elif status == "diverged":
                decision_policy = "diverged"
                reason = "diverged: non-finite loss; checkpoints/last.pt holds the last good epoch"
            elif status == "failed":
                decision_policy, reason = "failed", error or "error"
            try:
                summary = self.write_summary(status, decision_policy, reason, error) \
                    if g.is_main else {"status": status, "stop_policy": decision_policy,
                                       "stop_reason": reason, "epochs": len(self.history),
                                       "steps": self.step, "error": error}
            except OSError as exc:
                if error is None:  # else that error is already on its way up: keep it
                    raise GreensedError(
                        f"{self.run_dir / runlog.SUMMARY_FILE}: cannot write ({exc}); "
                        "epochs.jsonl is intact, use --resume") from None
                summary = {}
        if g.is_main:
            self.report(self._closing(summary))
        return TrainResult(self.run_dir, summary, self.history, self.model_sha256())

    def model_sha256(self) -> str:
        h = hashlib.sha256()
        for model in (self.student, self.teacher):
            for t in model.state_dict().values():
                h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()

    def run_epoch(self, epoch: int) -> dict[str, Any] | None:
        tc, g, main = self.cfg.train, self.group, self.group.is_main
        self.student.train()
        self.teacher.train()
        sums = torch.zeros(5, device=self.device)
        n = 0
        if main:
            R.write_heartbeat(self.run_dir, epoch, 0.0)
        self.meter.begin_window()
        t0 = last_beat = time.monotonic()
        # Several ranks read only agreed flags: a signal on any rank cuts all at one step.
        cut: int | None = None
        for idx in epoch_batches(self.data.sizes(), self.shares, tc.seed, epoch,
                                 tc.max_steps_per_epoch):
            losses = optimize(self.step_student, self.step_teacher, self.opt,
                              self.data.batch(g.shard(idx)),
                              step=self.step, rampup_steps=self.rampup_steps, tc=tc, rng=self.rng)
            self.step += 1
            sums += torch.stack([losses[k].detach() for k in LOSS_KEYS])
            n += 1
            bad = n % D.NONFINITE_CHECK_STEPS == 0 and not torch.isfinite(sums).all()  # host sync
            cut, bad = g.stop_flags(self.stop.signum, bool(bad), n)
            if bad:
                break
            if main and time.monotonic() - last_beat >= HEARTBEAT_S:
                last_beat = time.monotonic()
                R.write_heartbeat(self.run_dir, epoch, last_beat - t0)
            if cut is not None:
                break
        cut, _ = g.stop_flags(self.stop.signum if cut is None else cut, False, n, force=True)
        train_s = time.monotonic() - t0
        if main:
            R.write_heartbeat(self.run_dir, epoch, train_s)  # a crash in validation loses no more
        # Each rank's losses are means over its equal shard: their mean is the batch's.
        mean = (g.sum_(sums) / max(n * g.world_size, 1)).tolist()
        if cut is not None or not all(math.isfinite(v) for v in mean):
            self.cut_signum = cut
            reading = self.meter.end_window()

            def log_lost() -> None:
                R.append_lost(self.run_dir, {
                    "epoch": epoch, "kwh": reading.energy_kwh, "duration_s": reading.duration_s,
                    "how": "measured: partial epoch cut by " + (
                        "a signal" if cut is not None else "divergence")})
                R.write_heartbeat(self.run_dir, 0, 0.0)

            g.on_main(log_lost)
            return None
        t1 = time.monotonic()
        for model in (self.student, self.teacher):  # BatchNorm statistics of every shard
            g.average_buffers(model)
        metrics = g.from_main(lambda: validate(self.student, self.teacher, self.val, self.cfg))
        val_s = time.monotonic() - t1
        reading = self.meter.end_window()
        factor = ramp(self.step - 1, self.rampup_steps)  # that of the epoch's last step
        record = g.from_main(lambda: self.make_record(
            epoch, dict(zip(LOSS_KEYS, mean, strict=True)), factor, metrics, train_s, val_s,
            reading))
        rank_rngs = g.gather(self.rng_states()) if g.world_size > 1 else None

        def write() -> None:
            runlog.append_epoch(self.run_dir, record)
            self.history.append(record)
            self.save_checkpoints(record, rank_rngs)
            R.write_heartbeat(self.run_dir, 0, 0.0)

        g.on_main(write)
        if not main:
            self.history.append(record)
        self.report(self._epoch_line(record))
        return record

    def estimate_unknown_lost(self, epoch: int, reading: Any) -> None:
        """A kill before any epoch finished left an 'unknown' lost part; the redo of
        that same epoch now gives the power to estimate it from (same work)."""
        power_w = reading.avg_power_w
        unknown = [e for e in self.lost
                   if e["kwh"] is None and e["epoch"] == epoch and e.get("duration_s")]
        if power_w is None or not unknown:
            return
        for e in unknown:  # entries of self.lost, updated in place
            e["kwh"] = power_w * e["duration_s"] / 3.6e6
            e["how"] = "estimated: elapsed time x mean power of the redone epoch"
        R.rewrite_lost(self.run_dir, self.lost)

    def make_record(self, epoch: int, loss: dict[str, float], factor: float,
                    metrics: dict[str, Any], train_s: float, val_s: float,
                    reading: Any) -> dict[str, Any]:
        prev = self.history[-1]["cumulative_kwh"] if self.history else 0.0
        self.estimate_unknown_lost(epoch, reading)
        # Earlier attempts at this epoch cut by a crash or signal count once, here.
        lost = sum(e["kwh"] or 0.0 for e in self.lost if e["epoch"] == epoch)
        energy = reading.to_record()
        e = energy.get("energy_kwh")
        return {
            "schema": runlog.SCHEMA_VERSION, "epoch": epoch, "steps": self.step,
            "lr": self.cfg.train.lr * factor,
            "loss": {**loss, "consistency_weight": self.cfg.train.consistency_max * factor},
            "metrics": metrics, "train_s": train_s, "val_s": val_s,
            "duration_s": reading.duration_s, **energy,
            "cumulative_kwh": (prev + lost + e) if (e is not None and prev is not None) else None,
            "time_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }

    def save_checkpoints(self, record: dict[str, Any], rank_rngs: list[Any] | None = None
                         ) -> None:
        ckdir = self.run_dir / R.CHECKPOINT_DIR
        best = best_epoch(self.history, self.cfg.stop.metric, self.cfg.stop.mode)
        if best is not None and best["epoch"] == record["epoch"]:
            R.save_checkpoint(ckdir / "best.pt", {
                "student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
                "epoch": record["epoch"], "metric": self.cfg.stop.metric,
                "value": runlog.metric(record, self.cfg.stop.metric),
                "config": C.to_toml(self.cfg)})
        # last.pt after best.pt: if we die in between, resume redoes this epoch.
        R.save_checkpoint(ckdir / "last.pt", self.state(rank_rngs))

    def write_summary(self, status: str, policy: str, reason: str,
                      error: str | None) -> dict[str, Any]:
        h = self.history
        best = best_epoch(h, self.cfg.stop.metric, self.cfg.stop.mode)
        total = h[-1]["cumulative_kwh"] if h else None
        lost = R.read_lost(self.run_dir)
        lost_kwh = sum(e["kwh"] or 0.0 for e in lost)
        # Energy of a partial epoch cut just now (measured) is not in any record yet.
        unrecorded = sum(e["kwh"] or 0.0 for e in lost if e["epoch"] > len(h))
        if total is not None:
            total += unrecorded
        elif not h and lost:
            total = lost_kwh
        budget = self.cfg.stop.budget_kwh
        methods: dict[str, str] = {}
        for r in h:
            methods.update(r.get("energy_methods") or {})
        summary = {
            "schema": runlog.SCHEMA_VERSION, "status": status, "stop_reason": reason,
            "stop_policy": policy, "epochs": len(h), "stop_epoch": len(h),
            "best_epoch": best["epoch"] if best else None, "best_metric": self.cfg.stop.metric,
            "best_value": runlog.metric(best, self.cfg.stop.metric) if best else None,
            "best_cumulative_kwh": best["cumulative_kwh"] if best else None,
            "total_kwh": total, "total_s": sum(r["duration_s"] for r in h)
            + sum(e.get("duration_s") or 0.0 for e in lost),
            "lost_kwh": lost_kwh, "budget_kwh": budget,
            "budget_overrun_kwh": max(0.0, total - budget) if (budget and total) else 0.0,
            "energy_methods": methods, "meter": self.meter.name, "classes": list(CLASSES),
            "batch_size": self.cfg.train.batch_size, "seed": self.cfg.train.seed,
            "recipe": self.recipe_name, "skipped_audio": len(self.ds.skipped_audio),
            "steps": self.step, "steps_per_epoch": self.n_steps, "error": error,
        }
        runlog.atomic_write_json(self.run_dir / runlog.SUMMARY_FILE, summary)
        return summary

    # -- messages -------------------------------------------------------------
    def _banner(self, resume: bool) -> str:
        d, world = self.data.sizes(), self.group.world_size
        ranks = (f" | {world} ranks, {self.cfg.train.batch_size // world} clips each per step"
                 if world > 1 else "")
        verb = f"resuming at epoch {len(self.history) + 1}" if resume else "training"
        return (f"greensed: {verb} -> {self.run_dir} | device {self.device} | meter "
                f"{self.meter.name} | batch {self.cfg.train.batch_size} {self.shares} | "
                f"clips strong/weak/unlabelled/val {d[0]}/{d[1]}/{d[2]}/"
                f"{len(self.ds.validation)} | {self.n_steps} steps/epoch" + ranks)

    def _epoch_line(self, r: dict[str, Any]) -> str:
        m, e = r["metrics"], r.get("energy_kwh")
        clips_s = self.n_steps * self.cfg.train.batch_size / max(r["train_s"], 1e-9)
        energy = (f"{e * 1000:.3f} Wh (cum {r['cumulative_kwh'] * 1000:.2f} Wh, "
                  f"{r.get('avg_power_w') or 0:.0f} W)" if e is not None
                  else f"energy {r.get('energy_status')}")
        return (f"epoch {r['epoch']:3d} | loss {r['loss']['total']:.4f} | F1 student "
                f"{m['student_f1']:.3f} teacher {m['teacher_f1']:.3f} | weak F1 "
                f"{m['teacher_weak_f1']:.3f} | {r['train_s']:.1f}+{r['val_s']:.1f} s "
                f"({clips_s:.1f} clips/s) | {energy}")

    def _closing(self, s: dict[str, Any]) -> str:
        kwh = s["total_kwh"]
        energy = f"{kwh * 1000:.2f} Wh ({kwh:.5f} kWh)" if kwh is not None else "unavailable"
        best = (f"best {s['best_metric']} {s['best_value']:.3f} at epoch {s['best_epoch']} "
                f"({(s['best_cumulative_kwh'] or 0) * 1000:.2f} Wh)"
                if s["best_epoch"] else "no finished epoch")
        return (f"stopped after {s['epochs']} epochs: {s['stop_reason']}\n"
                f"energy {energy} in {s['total_s']:.0f} s | {best} | run log {self.run_dir}")


LOSS_KEYS = ("strong", "weak", "consistency_strong", "consistency_weak", "total")


def best_epoch(history: list[dict[str, Any]], metric: str, mode: str) -> dict[str, Any] | None:
    """The first epoch with the best finite value of ``metric`` (ties: earliest)."""
    best, best_v = None, None
    for r in history:
        v = runlog.metric(r, metric)
        if v is None or not math.isfinite(v):
            continue
        if best_v is None or (v > best_v if mode == "max" else v < best_v):
            best, best_v = r, v
    return best
