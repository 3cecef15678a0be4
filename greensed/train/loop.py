"""The training loop: epochs of mean-teacher steps, validation, energy, stopping.

Read top to bottom: `train()` sets up (data, model, meter, policy, run dir),
then each epoch is one measured window: train steps -> validation -> energy
reading -> log record -> checkpoints -> stop decision.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import signal
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


def train(cfg: C.RunConfig, run_dir: str | Path, *, resume: bool = False, force: bool = False,
          meter: Meter | None = None, report: Reporter = print,
          recipe_name: str = "") -> TrainResult:
    """Train one run into ``run_dir`` (see docs/training.md and docs/runlog.md)."""
    run_dir = Path(run_dir)
    shares = batch_composition(cfg.train.batch_size)
    check_metric(cfg.stop.metric)
    policy = build_policy(cfg.stop, max_epochs=cfg.train.epochs)
    device = resolve_device(cfg.train.device)
    if resume and not (run_dir / runlog.EPOCHS_FILE).exists() and not (
        run_dir / R.CHECKPOINT_DIR / "last.pt").exists():
        if not (run_dir / runlog.CONFIG_FILE).exists():
            raise GreensedError(f"{run_dir}: nothing to resume (no run log or checkpoint)")
    if not resume and (run_dir / runlog.EPOCHS_FILE).exists():
        raise GreensedError(f"{run_dir}: already holds a run; use --resume or another --out")
    # Built (not started) before the run dir exists: a bad --meter, or a budget
    # with --meter none, fails without leaving a directory behind.
    meter = meter or make_meter(cfg.meter.spec, device=str(device),
                                tracking_mode=cfg.meter.tracking_mode)
    needs_energy = bool(getattr(policy, "requires_energy", False))
    if needs_energy and _meter_unavailable(meter):
        raise _no_energy_error(cfg, meter)
    R.check_writable(run_dir)
    with R.RunLock(run_dir):
        if resume:
            R.check_resume_config(run_dir, cfg, force=force)
        ds = load_dataset(cfg.data.path, cfg.features, cache_dir=cfg.data.cache_dir,
                          preset=cfg.data.preset, synth_seed=cfg.data.synth_seed,
                          skip_bad_audio=cfg.data.skip_bad_audio)
        meter.start()  # before describe(): CodeCarbon knows its methods only once started
        if needs_energy and _meter_unavailable(meter):
            meter.close()
            raise _no_energy_error(cfg, meter)
        R.write_config(run_dir, cfg)
        runlog.atomic_write_json(run_dir / runlog.HARDWARE_FILE, R.hardware_info(device))
        return _Run(cfg, run_dir, ds, device, meter, policy, shares, report, recipe_name).run(
            resume)


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
                 recipe_name: str) -> None:
        self.cfg, self.run_dir, self.ds, self.device = cfg, run_dir, ds, device
        self.meter, self.policy, self.shares, self.report = meter, policy, shares, report
        self.recipe_name = recipe_name
        tc = cfg.train
        torch.manual_seed(tc.seed)
        self.rng = np.random.default_rng(tc.seed)
        self.student = CRNN(n_classes=len(CLASSES), n_mels=cfg.features.n_mels).to(device)
        self.teacher = make_teacher(self.student)
        self.opt = torch.optim.Adam(self.student.parameters(), lr=tc.lr, betas=(0.9, 0.999),
                                    foreach=True)
        self.data = DeviceData.from_dataset(ds, device)
        self.val = validation_tensors(ds.validation, device)
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

    # -- checkpoints ----------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
                "optimizer": self.opt.state_dict(), "step": self.step,
                "epoch": len(self.history), "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                "numpy_rng": self.rng.bit_generator.state, "config": C.to_toml(self.cfg),
                "cumulative_kwh": self.history[-1]["cumulative_kwh"] if self.history else 0.0,
                "schema": runlog.SCHEMA_VERSION}

    def restore(self) -> None:
        ckpt_path = self.run_dir / R.CHECKPOINT_DIR / "last.pt"
        runlog.repair_epochs(self.run_dir)
        records = runlog.read_epochs(self.run_dir)
        n = 0  # epochs the checkpoint holds; none yet: start from the seed's init
        if ckpt_path.exists():
            ck = R.load_checkpoint(ckpt_path)
            self.student.load_state_dict(ck["student"])
            self.teacher.load_state_dict(ck["teacher"])
            self.opt.load_state_dict(ck["optimizer"])
            self.step = int(ck["step"])
            torch.set_rng_state(ck["torch_rng"])
            if ck.get("cuda_rng") and self.device.type == "cuda":
                torch.cuda.set_rng_state_all(ck["cuda_rng"])
            self.rng.bit_generator.state = ck["numpy_rng"]
            n = int(ck["epoch"])
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
    def run(self, resume: bool) -> TrainResult:
        if resume:
            self.restore()
            self.account_lost_energy()
        self.report(self._banner(resume))
        status, decision_policy, reason, error = "finished", "", "", None
        try:
            with self.stop.installed():
                decision = self.policy.decide(self.history)
                while not decision.stop:
                    epoch = len(self.history) + 1
                    record = self.run_epoch(epoch)
                    if record is None:  # interrupted or diverged mid-epoch
                        status = "interrupted" if self.stop.signum else "diverged"
                        break
                    decision = self.policy.decide(self.history)
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
                sig = signal.Signals(self.stop.signum).name if self.stop.signum else "SIGINT"
                decision_policy = "interrupted"
                reason = f"interrupted by {sig}; resume with --resume"
            elif status == "diverged":
                decision_policy = "diverged"
                reason = "diverged: non-finite loss; checkpoints/last.pt holds the last good epoch"
            elif status == "failed":
                decision_policy, reason = "failed", error or "error"
            try:
                summary = self.write_summary(status, decision_policy, reason, error)
            except OSError as exc:
                if error is None:  # else that error is already on its way up: keep it
                    raise GreensedError(
                        f"{self.run_dir / runlog.SUMMARY_FILE}: cannot write ({exc}); "
                        "epochs.jsonl is intact, use --resume") from None
                summary = {}
        self.report(self._closing(summary))
        return TrainResult(self.run_dir, summary, self.history)

    def run_epoch(self, epoch: int) -> dict[str, Any] | None:
        tc = self.cfg.train
        self.student.train()
        self.teacher.train()
        sums = torch.zeros(5, device=self.device)
        n = 0
        R.write_heartbeat(self.run_dir, epoch, 0.0)
        self.meter.begin_window()
        t0 = last_beat = time.monotonic()
        for idx in epoch_batches(self.data.sizes(), self.shares, tc.seed, epoch,
                                 tc.max_steps_per_epoch):
            losses = optimize(self.student, self.teacher, self.opt, self.data.batch(idx),
                              step=self.step, rampup_steps=self.rampup_steps, tc=tc, rng=self.rng)
            self.step += 1
            sums += torch.stack([losses[k].detach() for k in LOSS_KEYS])
            n += 1
            if n % 50 == 0 and not torch.isfinite(sums).all():  # one host sync
                break
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                last_beat = time.monotonic()
                R.write_heartbeat(self.run_dir, epoch, last_beat - t0)
            if self.stop.signum is not None:
                break
        train_s = time.monotonic() - t0
        R.write_heartbeat(self.run_dir, epoch, train_s)  # a crash in validation loses no more
        mean = (sums / max(n, 1)).tolist()
        if self.stop.signum is not None or not all(math.isfinite(v) for v in mean):
            reading = self.meter.end_window()
            R.append_lost(self.run_dir, {
                "epoch": epoch, "kwh": reading.energy_kwh, "duration_s": reading.duration_s,
                "how": "measured: partial epoch cut by " + (
                    "a signal" if self.stop.signum is not None else "divergence")})
            R.write_heartbeat(self.run_dir, 0, 0.0)
            return None
        t1 = time.monotonic()
        metrics = validate(self.student, self.teacher, self.val, self.cfg)
        val_s = time.monotonic() - t1
        reading = self.meter.end_window()
        factor = ramp(self.step - 1, self.rampup_steps)  # that of the epoch's last step
        record = self.make_record(epoch, dict(zip(LOSS_KEYS, mean, strict=True)), factor,
                                  metrics, train_s, val_s, reading)
        runlog.append_epoch(self.run_dir, record)
        self.history.append(record)
        self.save_checkpoints(record)
        R.write_heartbeat(self.run_dir, 0, 0.0)
        self.report(self._epoch_line(record))
        return record

    def make_record(self, epoch: int, loss: dict[str, float], factor: float,
                    metrics: dict[str, Any], train_s: float, val_s: float,
                    reading: Any) -> dict[str, Any]:
        prev = self.history[-1]["cumulative_kwh"] if self.history else 0.0
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

    def save_checkpoints(self, record: dict[str, Any]) -> None:
        ckdir = self.run_dir / R.CHECKPOINT_DIR
        best = best_epoch(self.history, self.cfg.stop.metric, self.cfg.stop.mode)
        if best is not None and best["epoch"] == record["epoch"]:
            R.save_checkpoint(ckdir / "best.pt", {
                "student": self.student.state_dict(), "teacher": self.teacher.state_dict(),
                "epoch": record["epoch"], "metric": self.cfg.stop.metric,
                "value": runlog.metric(record, self.cfg.stop.metric),
                "config": C.to_toml(self.cfg)})
        # last.pt after best.pt: if we die in between, resume redoes this epoch.
        R.save_checkpoint(ckdir / "last.pt", self.state())

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
        d = self.data.sizes()
        verb = f"resuming at epoch {len(self.history) + 1}" if resume else "training"
        return (f"greensed: {verb} -> {self.run_dir} | device {self.device} | meter "
                f"{self.meter.name} | batch {self.cfg.train.batch_size} {self.shares} | "
                f"clips strong/weak/unlabelled/val {d[0]}/{d[1]}/{d[2]}/"
                f"{len(self.ds.validation)} | {self.n_steps} steps/epoch")

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
