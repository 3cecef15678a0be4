"""One run on two processes (CPU, gloo): shards, the run log, energy counted once,
a stop decided once, a signal on one rank (docs/multigpu.md)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from helpers import quiet, tiny_config, tweak

from greensed.energy.base import J_PER_KWH, Reading
from greensed.energy.constant import ConstantPowerMeter
from greensed.energy.ranks import rank_meter, reduce_readings
from greensed.errors import ConfigError
from greensed.runlog import RunDir, RunStatus
from greensed.train import group as G
from greensed.train.batches import batch_composition, epoch_batches
from greensed.train.loop import train

NODE_W, DEVICE_W = 100.0, 50.0


class Ticks:
    """A clock that advances 1 s per reading: every meter window lasts exactly 1 s.
    A class, not a lambda: it travels to the spawned ranks by pickle."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


class SignalAtWindow(ConstantPowerMeter):
    """Sends SIGTERM to its own process when window ``window`` begins on rank ``rank``."""

    def __init__(self, rank: int, window: int) -> None:
        super().__init__(NODE_W, DEVICE_W, clock=Ticks())
        self.kill_rank, self.kill_window, self.windows = rank, window, 0

    def begin_window(self) -> None:
        super().begin_window()
        self.windows += 1
        if os.environ.get("RANK") == str(self.kill_rank) and self.windows == self.kill_window:
            os.kill(os.getpid(), signal.SIGTERM)


def meter() -> ConstantPowerMeter:
    return ConstantPowerMeter(NODE_W, DEVICE_W, clock=Ticks())


def ddp_config(dataset: Path, cache: Path, epochs: int):
    cfg = tiny_config(dataset, cache, epochs=epochs)
    # strong/weak/unlabelled 2/2/4: each of 2 ranks gets 1/1/2
    return tweak(cfg, **{"train.batch_size": 8, "train.max_steps_per_epoch": 1})


# Trains or spawns trainers: left out of `make test-fast`.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ddp-cache")


def keys(record: dict) -> dict:
    """The key structure of a record, nested dicts included."""
    return {k: keys(v) if isinstance(v, dict) else type(v).__name__ for k, v in record.items()}


def lines(run: Path) -> list[dict]:
    """epochs.jsonl as written, one dict per line."""
    return [json.loads(ln) for ln in (run / "epochs.jsonl").read_text().splitlines()]


# -- (d) sharding -------------------------------------------------------------------


@pytest.mark.parametrize(("batch_size", "world"), [(8, 2), (16, 2), (16, 4), (48, 4)])
def test_shards_partition_every_global_batch(batch_size, world):
    shares = batch_composition(batch_size)
    sizes = (37, 23, 101)
    for epoch in (1, 2):
        for idx in epoch_batches(sizes, shares, seed=3, epoch=epoch):
            shards = [G.shard(idx, r, world) for r in range(world)]
            for part, whole in enumerate(idx):
                pieces = [s[part] for s in shards]
                assert {len(p) for p in pieces} == {len(whole) // world}  # equal, never empty
                assert len(whole) // world >= 1
                joined = np.concatenate(pieces)
                assert len(set(joined.tolist())) == len(joined)  # no overlap
                assert sorted(joined.tolist()) == sorted(whole.tolist())  # union = batch


def test_batch_size_must_split_over_ranks():
    G.check_batch(8, 2)
    G.check_batch(12, 1)
    for bs, world in ((12, 2), (8, 4), (20, 3)):
        with pytest.raises(ConfigError, match=f"multiple of {4 * world}"):
            G.check_batch(bs, world)


def test_env_partial_or_bad_is_a_config_error():
    assert G.env_from_environ({}) is None
    assert G.env_from_environ({"RANK": "3"}) is None  # not a launch without WORLD_SIZE
    env = G.env_from_environ({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1",
                              "MASTER_ADDR": "h", "MASTER_PORT": "1"})
    assert env == G.DistEnv(1, 2, 1) and not env.is_main and not env.measures_node
    with pytest.raises(ConfigError, match="MASTER_PORT"):
        G.env_from_environ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0",
                            "MASTER_ADDR": "h"})
    with pytest.raises(ConfigError, match="inconsistent"):
        G.env_from_environ({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0",
                            "MASTER_ADDR": "h", "MASTER_PORT": "1"})


# -- energy parts, without processes ---------------------------------------------------


def window(m) -> Reading:
    m.start()
    m.begin_window()
    return m.end_window()


def test_node_part_once_device_part_per_rank():
    node_rank = window(rank_meter(meter(), measures_node=True))
    other_rank = window(rank_meter(meter(), measures_node=False))
    assert node_rank.components_kwh == pytest.approx(
        {"cpu": NODE_W / J_PER_KWH, "gpu": DEVICE_W / J_PER_KWH})
    assert other_rank.components_kwh == pytest.approx({"gpu": DEVICE_W / J_PER_KWH})
    total = reduce_readings([node_rank, other_rank, other_rank], "x")  # 1 node, 3 GPUs
    assert total.energy_kwh * J_PER_KWH == pytest.approx(NODE_W + 3 * DEVICE_W)
    assert total.components_kwh["gpu"] * J_PER_KWH == pytest.approx(3 * DEVICE_W)
    assert total.duration_s == 1.0 and total.ok
    failed = Reading(None, 1.0, {}, {"gpu": "unavailable"}, "nvml", "error: counter")
    partial = reduce_readings([node_rank, failed], "x")
    assert partial.energy_kwh is None and partial.status.startswith("error: rank 1")
    with pytest.raises(ConfigError, match="without xN"):
        rank_meter(ConstantPowerMeter(NODE_W, DEVICE_W, n_devices=2), measures_node=True)


# -- real runs on two processes --------------------------------------------------------


def test_two_ranks_same_log_energy_once_budget_stop_once(tiny_dataset, shared_cache, tmp_path):
    """Same recipe on 1 and 2 processes, budget 500 J, every window 1 s:
    1 process: node 100 W + 1 device 50 W = 150 J/epoch -> stops after 3 epochs;
    2 processes: node 100 W once + 2 devices = 200 J/epoch -> stops after 2, both ranks."""
    cfg = ddp_config(tiny_dataset, shared_cache, epochs=5)
    cfg = tweak(cfg, **{"stop.policies": ["budget"]})
    cfg = tweak(cfg, **{"stop.budget.kwh": 500.0 / J_PER_KWH})
    one = train(cfg, tmp_path / "one", meter=meter(), report=quiet)
    two = train(cfg, tmp_path / "two", meter=meter(), nproc=2)

    assert [r.energy_kwh * J_PER_KWH for r in one.history] == pytest.approx([150.0] * 3)
    assert [r.energy_kwh * J_PER_KWH for r in two.history] == pytest.approx([200.0] * 2)
    for r in two.history:
        assert r.energy_components_kwh["cpu"] * J_PER_KWH == pytest.approx(NODE_W)
        assert r.energy_components_kwh["gpu"] * J_PER_KWH == pytest.approx(2 * DEVICE_W)
        assert r.duration_s == 1.0
    assert two.summary.total_kwh * J_PER_KWH == pytest.approx(400.0)
    assert one.summary.stop_policy == two.summary.stop_policy == "budget"

    # (a) the run log of a 2-process run has the single-process format
    assert [keys(r) for r in lines(tmp_path / "two")] == [
        keys(r) for r in lines(tmp_path / "one")][:2]
    assert set(json.loads((tmp_path / "two" / "summary.json").read_text())) == set(
        json.loads((tmp_path / "one" / "summary.json").read_text()))
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir())
    d = RunDir(tmp_path / "two")
    assert d.read_object(d.hardware)["world_size"] == 2
    # (c) both ranks stopped at the same epoch, exited cleanly, and hold the same model
    assert [(r["status"], r["epochs"], r["steps"], r["exitcode"]) for r in two.ranks] == [
        ("finished", 2, 2, 0)] * 2
    assert two.ranks[0]["model_sha256"] == two.ranks[1]["model_sha256"]


def test_signal_on_one_rank_stops_all_then_resume(tiny_dataset, shared_cache, tmp_path):
    """SIGTERM on rank 1 only, in epoch 2: both ranks cut epoch 2 at the same step,
    rank 0 writes an 'interrupted' summary naming SIGTERM; resume on 2 processes ends
    the run with contiguous epochs and the cut window counted once."""
    cfg = ddp_config(tiny_dataset, shared_cache, epochs=3)
    run = tmp_path / "run"
    first = train(cfg, run, meter=SignalAtWindow(rank=1, window=2), nproc=2)
    assert [(r["status"], r["epochs"], r["exitcode"]) for r in first.ranks] == [
        ("interrupted", 1, 0)] * 2
    assert first.summary.status is RunStatus.INTERRUPTED
    assert "SIGTERM" in first.summary.stop_reason
    assert first.summary.lost_kwh * J_PER_KWH == pytest.approx(NODE_W + 2 * DEVICE_W)

    second = train(cfg, run, resume=True, meter=meter(), nproc=2)
    assert [r.epoch for r in RunDir(run).read_epochs()] == [1, 2, 3]
    assert second.summary.finished
    assert second.summary.total_kwh * J_PER_KWH == pytest.approx(4 * (NODE_W + 2 * DEVICE_W))
    assert [(r["status"], r["epochs"]) for r in second.ranks] == [("finished", 3)] * 2
    assert second.ranks[0]["model_sha256"] == second.ranks[1]["model_sha256"]
