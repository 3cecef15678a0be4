"""A run directory has one writer: the same epochs written through the library's
RunRecorder and through greensed's own trainer path (Session's builders and its
RunWriter) give the same epochs.jsonl, lost.jsonl and summary.json, apart from
the fields only greensed's protocol has. For a finished run, a run with a cut
epoch (then resumed) and a run resumed from a checkpoint one epoch behind."""

from __future__ import annotations

import itertools
import json
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest

from greensed import config
from greensed.data.spec import CLASSES
from greensed.energy import Reading
from greensed.library import RunRecorder
from greensed.runlog import RunDir, RunStatus
from greensed.stopping import build_policy
from greensed.train import preflight, protocol
from greensed.train.outcome import RunEnd
from greensed.train.session import Session
from greensed.train.writer import RunWriter

# Fields greensed's protocol adds through the builders (docs/runlog.md); CO2 is
# both paths' (the run's carbon intensity, by the same defaults).
PROTOCOL_EPOCH = {"forecast"}
PROTOCOL_SUMMARY = {"protocol", "model_of_record", "clips", "skipped_audio", "left_out_audio"}
N_STEPS = 4
METER = "constant:100W"


def reading(epoch: int, attempt: int = 0) -> Reading:
    duration_s = 10.0 + epoch + 0.5 * attempt
    power_w = 100.0 + 7 * epoch + attempt
    return Reading(power_w * duration_s / 3.6e6, duration_s, {"cpu": power_w * duration_s / 3.6e6},
                   {"cpu": "constant"}, METER)


def metrics(epoch: int) -> dict[str, float]:
    f1 = [0.2, 0.5, 0.4, 0.45][epoch - 1]
    return {protocol.OBJECTIVE: f1, "student_f1": f1 - 0.01, "teacher_f1": f1 + 0.02}


@pytest.fixture
def clock(monkeypatch):
    """Each record's time stamp, the same sequence on both paths (the ledger keys a
    redone epoch by it)."""
    def install() -> None:
        ticks = itertools.count()
        monkeypatch.setattr("greensed.library.records.now_utc",
                            lambda: f"2026-01-01T00:00:{next(ticks):02d}+00:00")
    return install


class Greensed:
    """greensed's trainer path without the training: Session's record and summary
    builders and RunWriter's writes, in the order train/epoch.py and train/loop.py
    make them (checkpoints are not what is compared)."""

    def __init__(self, run: Path, cfg: config.RunConfig, monkeypatch) -> None:
        monkeypatch.setattr("greensed.train.checkpoint.save_epoch", lambda *a, **k: None)
        self.run, self.cfg = RunDir(run), cfg
        self.policy = build_policy(cfg.stop, max_epochs=cfg.train.epochs)

    def session(self, *, resume_held: int | None = None) -> Session:
        writer = RunWriter(self.run)
        s = Session(self.cfg, self.run, None, SimpleNamespace(is_main=True), SimpleNamespace(
            name=METER), self.policy, writer, SimpleNamespace(step=0), None, None, (1, 1, 2),
            N_STEPS, print, "same", {"strong": 4}, {}, preflight.check_run_config(self.cfg))
        if resume_held is None:
            writer.start(config.to_toml(self.cfg), {"host": "here"})
        else:
            self.run.keep_epochs()
            s.history = writer.resume(self.run.read_epochs(), resume_held)
        s.state.step = N_STEPS * len(s.history)
        return s

    def epoch(self, s: Session, epoch: int, attempt: int = 0) -> None:
        r = reading(epoch, attempt)
        with s.writer.heartbeat(epoch) as beat:
            s.state.step += N_STEPS
            s.writer.settle_unknown(epoch, r.avg_power_w)
            record = s.make_record(epoch, [0.1, 0.2, 0.3, 0.4, 0.5], metrics(epoch), 8.0, 2.0, r)
            s.writer.commit(record, s.state, beat, is_best=False, metric="objective",
                            config_toml="", rank_rngs=None)
        s.history.append(record)

    def cut(self, s: Session, epoch: int) -> None:
        with s.writer.heartbeat(epoch) as beat:
            s.writer.record_cut(epoch, reading(epoch, 1), "a signal", beat)
        s.writer.write_summary(s.summary(RunEnd.interrupted(signal.SIGINT)))

    def finish(self, s: Session) -> None:
        s.writer.write_summary(s.summary(RunEnd.stopped(self.policy.decide(s.history))))


class Library:
    """The same epochs through RunRecorder, as a user's loop (or the Lightning
    callback) writes them."""

    def __init__(self, run: Path, cfg: config.RunConfig) -> None:
        self.run, self.cfg = run, cfg
        self.policy = build_policy(cfg.stop, max_epochs=cfg.train.epochs)
        self.metric, self.mode = protocol.best_rule(cfg)

    def recorder(self, *, resume_held: int | None = None) -> RunRecorder:
        tc = self.cfg.train
        return RunRecorder(self.run, metric=self.metric, mode=self.mode, policy=self.policy,
                           max_epochs=tc.epochs, batch_size=tc.batch_size, seed=tc.seed,
                           recipe="same", classes=CLASSES, hardware={"host": "here"},
                           device="cpu", resume=resume_held is not None,
                           held_epochs=resume_held).start()

    def epoch(self, rec: RunRecorder, epoch: int, like: dict, attempt: int = 0) -> None:
        rec.begin()  # as a monitor's window does: the epoch's heartbeat starts
        rec.add(epoch, metrics(epoch), reading(epoch, attempt), loss=like["loss"],
                steps=like["steps"], lr=like["lr"], train_s=8.0, val_s=2.0)

    def finish(self, rec: RunRecorder) -> None:
        rec.decide()
        rec.finish()


def files(run: Path) -> dict[str, object]:
    epochs = [{k: v for k, v in json.loads(ln).items() if k not in PROTOCOL_EPOCH}
              for ln in (run / "epochs.jsonl").read_text().splitlines()]
    lost = [json.loads(ln) for ln in (run / "lost.jsonl").read_text().splitlines()] \
        if (run / "lost.jsonl").exists() else []
    summary = {k: v for k, v in json.loads((run / "summary.json").read_text()).items()
               if k not in PROTOCOL_SUMMARY}
    return {"epochs.jsonl": epochs, "lost.jsonl": lost, "summary.json": summary}


def run_config(epochs: int) -> config.RunConfig:
    return config.override(config.RunConfig(), {"train": {"epochs": epochs}}, "test")


def record_of(run: Path, epoch: int) -> dict:
    rows = [json.loads(ln) for ln in (run / "epochs.jsonl").read_text().splitlines()]
    row = next(r for r in rows if r["epoch"] == epoch)
    loss = {k: v for k, v in row["loss"].items() if v is not None}
    return {"loss": loss, "steps": row["steps"], "lr": row["lr"]}


@pytest.mark.parametrize("scenario", ["finished", "cut", "resumed"])
def test_the_library_and_greensed_write_the_same_run_directory(tmp_path, monkeypatch, clock,
                                                               scenario):
    cfg = run_config(3)
    ours, theirs = tmp_path / "greensed", tmp_path / "library"
    g, lib = Greensed(ours, cfg, monkeypatch), Library(theirs, cfg)

    clock()
    s = g.session()
    for epoch in (1, 2, 3) if scenario != "cut" else (1, 2):
        g.epoch(s, epoch)
    if scenario == "cut":
        g.cut(s, 3)
        s = g.session(resume_held=2)
        g.epoch(s, 3, attempt=2)
    elif scenario == "resumed":  # killed after epoch 3's record, before its checkpoint
        s = g.session(resume_held=2)
        g.epoch(s, 3, attempt=2)
    g.finish(s)

    clock()
    rec = lib.recorder()
    for epoch in (1, 2, 3) if scenario != "cut" else (1, 2):
        lib.epoch(rec, epoch, record_of(ours, epoch))
    if scenario == "cut":
        rec.begin()
        rec.cut(3, reading(3, 1), "a signal")
        rec.finish(status=RunStatus.INTERRUPTED)
        rec = lib.recorder(resume_held=2)
        lib.epoch(rec, 3, record_of(ours, 3), attempt=2)
    elif scenario == "resumed":
        rec._release()  # the process died: no summary
        rec = lib.recorder(resume_held=2)
        lib.epoch(rec, 3, record_of(ours, 3), attempt=2)
    lib.finish(rec)

    mine, yours = files(ours), files(theirs)
    for name in mine:
        assert mine[name] == yours[name], name
    assert len(mine["epochs.jsonl"]) == 3
    if scenario != "finished":  # the first attempt at epoch 3 is in the ledger, once
        (entry,) = mine["lost.jsonl"]
        assert entry["epoch"] == 3 and entry["kwh"] == pytest.approx(
            reading(3, 1 if scenario == "cut" else 0).energy_kwh)
        total = mine["summary.json"]["total_kwh"]
        assert total == pytest.approx(sum(reading(e).energy_kwh for e in (1, 2))
                                      + entry["kwh"] + reading(3, 2).energy_kwh)
