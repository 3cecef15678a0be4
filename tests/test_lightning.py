"""The Lightning callback: a real lightning.Trainer on a tiny model (CPU), stopped by
greensed's policies on a budget and on a plateau; its run directory is read by
`greensed report` and `greensed replay`.

Lightning takes seconds to import, so it is imported in the fixture, not at the top
(`make test-fast` collects this module without paying for it).
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from greensed.cli import app
from greensed.energy import ConstantPowerMeter
from greensed.errors import ConfigError, GreensedError
from greensed.runlog import RunDir, RunStatus, load_run

# Every test here runs a Trainer: left out of `make test-fast`.
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def tick_meter() -> ConstantPowerMeter:
    """Exactly 1 kWh a window, whatever the machine's speed (3.6 MW for one tick)."""
    ticks = iter(range(100_000))
    return ConstantPowerMeter(3.6e6, clock=lambda: float(next(ticks)))


@pytest.fixture(scope="module")
def L():
    """Lightning, greensed's callback, and the tiny module of tests/lightning_tiny.py."""
    pl = pytest.importorskip("lightning.pytorch")
    import lightning_tiny

    from greensed.lightning import EnergyEarlyStopping

    return SimpleNamespace(pl=pl, EnergyEarlyStopping=EnergyEarlyStopping,
                           Tiny=lightning_tiny.Tiny, Hooks=lightning_tiny.Hooks)


def fit(L, tmp_path: Path, callback, f1: list[float], max_epochs: int = 10,
        ckpt_path: str | None = None, extra: tuple = ()):
    logger = L.pl.loggers.CSVLogger(tmp_path / "logs", name="tiny")
    trainer = L.pl.Trainer(accelerator="cpu", max_epochs=max_epochs, logger=logger,
                           callbacks=[callback, *extra], enable_progress_bar=False,
                           enable_model_summary=False, enable_checkpointing=bool(extra),
                           num_sanity_val_steps=1, default_root_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's advice on workers and log steps
        trainer.fit(L.Tiny(f1), ckpt_path=ckpt_path)
    return trainer


def cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def logged(trainer, name: str) -> list[float]:
    path = Path(trainer.logger.log_dir) / "metrics.csv"
    rows = list(csv.DictReader(path.open()))
    return [float(r[name]) for r in rows if r.get(name)]


def test_stops_a_lightning_training_on_a_budget(L, tmp_path):
    run_dir = tmp_path / "run"
    hooks = L.Hooks()
    cb = L.EnergyEarlyStopping(stop=["budget:kwh=2.5"], monitor="val_f1", meter=tick_meter(),
                               run_dir=run_dir, recipe="tiny", country_iso_code="FRA")
    trainer = fit(L, tmp_path, cb, [0.1, 0.2, 0.3, 0.4], extra=(hooks,))
    # 1 kWh an epoch: after 2 epochs a third would overrun 2.5 kWh.
    assert trainer.current_epoch == 2 and trainer.should_stop
    s = RunDir(run_dir).read_summary()
    assert s.status is RunStatus.FINISHED and s.stop_policy == "budget"
    assert s.stop_reason.startswith("budget: next epoch predicted 1 kWh")
    assert s.epochs == 2 and s.total_kwh == pytest.approx(2.0) and s.budget_kwh == 2.5
    assert (s.batch_size, s.recipe, s.best_metric, s.best_epoch) == (4, "tiny", "val_f1", 2)
    records = RunDir(run_dir).read_epochs()
    assert [r.metric("val_f1") for r in records] == pytest.approx([0.1, 0.2])
    assert records[1].cumulative_kwh == pytest.approx(2.0) and records[1].steps == 4
    assert "train_loss" in records[0].metrics and records[0].lr == 0.1
    assert records[0].energy_methods == {"cpu": "constant-power model"}
    # CO2 at France's grid mix (CodeCarbon's offline data), labelled; no lock file left.
    g = s.carbon_intensity_g_per_kwh
    assert g > 0 and s.carbon_source.startswith("codecarbon: FRA grid mix")
    assert [r.cumulative_co2_kg for r in records] == pytest.approx([g / 1000, 2 * g / 1000])
    assert s.total_co2_kg == pytest.approx(2 * g / 1000)
    assert not RunDir(run_dir).lock.exists()
    # Energy scalars reached the trainer's logger.
    assert logged(trainer, "energy/cumulative_kwh") == pytest.approx([1.0, 2.0])
    assert logged(trainer, "energy/epoch_kwh") == pytest.approx([1.0, 1.0])
    # The order the window relies on: validation ends inside the training epoch,
    # before on_train_epoch_end; the sanity check runs before on_train_start.
    epoch = ["on_train_epoch_start", "on_validation_start", "on_validation_end",
             "on_train_epoch_end"]
    assert hooks.calls == ["on_validation_start (sanity)", "on_validation_end (sanity)",
                           "on_train_start", *epoch, *epoch, "on_train_end"]
    # greensed report and replay read the run directory.
    out = cli("report", str(run_dir), "--metric", "val_f1", "--format", "csv", "--no-plots",
              "--out", str(tmp_path / "report"))
    assert "Table 1" in out and len((tmp_path / "report/runs.csv").read_text().splitlines()) == 2
    (row,) = csv.DictReader((tmp_path / "report/runs.csv").open())
    assert float(row["co2_kg"]) == pytest.approx(2 * g / 1000)
    out = cli("replay", str(run_dir), "--metric", "val_f1", "--policy", "budget:kwh=1.5",
              "--format", "csv")
    assert "budget:kwh=1.5" in out and "1/2" in out


def test_stops_a_lightning_training_on_a_plateau(L, tmp_path):
    run_dir = tmp_path / "run"
    cb = L.EnergyEarlyStopping(stop="plateau:patience=2", monitor="val_f1", meter=tick_meter(),
                               run_dir=run_dir)
    trainer = fit(L, tmp_path, cb, [0.1, 0.3, 0.3, 0.2, 0.5, 0.6])
    assert trainer.current_epoch == 4  # epochs 3 and 4 did not beat epoch 2's 0.3
    s = RunDir(run_dir).read_summary()
    assert s.stop_policy == "plateau" and s.best_epoch == 2
    assert s.stop_reason == ("plateau: val_f1 did not improve for 2 epochs "
                             "(best 0.3 at epoch 2)")
    out = cli("replay", str(run_dir), "--metric", "val_f1", "--policy", "plateau:patience=1",
              "--format", "csv")
    assert "3/4" in out
    log = load_run(run_dir)
    assert log.summary.total_kwh == pytest.approx(4.0)
    assert json.loads(Path(run_dir, "hardware.json").read_text())["device"] == "cpu"


def test_runs_to_the_epoch_cap_and_resumes_from_a_checkpoint(L, tmp_path):
    run_dir = tmp_path / "run"
    ckpt = L.pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)
    cb = L.EnergyEarlyStopping(stop="plateau:patience=5", monitor="val_f1", meter=tick_meter(),
                               run_dir=run_dir, recipe="tiny")
    fit(L, tmp_path, cb, [0.1, 0.2, 0.3, 0.4], max_epochs=2, extra=(ckpt,))
    s = RunDir(run_dir).read_summary()
    assert s.stop_policy == "max-epochs" and s.epochs == 2
    cb2 = L.EnergyEarlyStopping(stop="plateau:patience=5", monitor="val_f1",
                                meter=tick_meter())  # run_dir from the checkpoint
    ckpt2 = L.pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck")
    fit(L, tmp_path, cb2, [0.1, 0.2, 0.3, 0.4], max_epochs=4, extra=(ckpt2,),
        ckpt_path=str(tmp_path / "ck" / "last.ckpt"))
    records = RunDir(run_dir).read_epochs()
    assert [r.epoch for r in records] == [1, 2, 3, 4]
    assert [r.metric("val_f1") for r in records] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    assert records[-1].cumulative_kwh == pytest.approx(4.0)
    assert RunDir(run_dir).read_summary().epochs == 4
    assert RunDir(run_dir).read_summary().recipe == "tiny"  # kept from the first fit


def test_resumes_from_an_older_checkpoint_redoing_the_later_epochs(L, tmp_path):
    """fit(ckpt_path=<epoch 1's checkpoint>) on a run that logged 3 epochs: epochs 2
    and 3 are redone, their first attempts' energy in the ledger (docs/library.md)."""
    run_dir = tmp_path / "run"
    ckpt = L.pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", save_top_k=-1,
                                          filename="{epoch}")
    cb = L.EnergyEarlyStopping(stop="plateau:patience=5", monitor="val_f1", meter=tick_meter(),
                               run_dir=run_dir)
    fit(L, tmp_path, cb, [0.1, 0.2, 0.3], max_epochs=3, extra=(ckpt,))
    assert len(RunDir(run_dir).read_epochs()) == 3
    cb2 = L.EnergyEarlyStopping(stop="plateau:patience=5", monitor="val_f1", meter=tick_meter())
    fit(L, tmp_path, cb2, [0.1, 0.2, 0.3], max_epochs=3,
        ckpt_path=str(tmp_path / "ck" / "epoch=0.ckpt"))
    run = RunDir(run_dir)
    assert [r.epoch for r in run.read_epochs()] == [1, 2, 3]
    assert [(e.epoch, e.kwh) for e in run.read_lost()] == [(2, 1.0), (3, 1.0)]
    assert run.read_epochs()[-1].cumulative_kwh == pytest.approx(5.0)  # 3 + 2 first attempts
    s = run.read_summary()
    assert s.epochs == 3 and s.total_kwh == pytest.approx(5.0) and s.lost_kwh == 2.0


def test_a_missing_monitor_fails_the_run_with_its_summary(L, tmp_path):
    run_dir = tmp_path / "run"
    cb = L.EnergyEarlyStopping(stop="plateau", monitor="val_f2", meter=tick_meter(),
                               run_dir=run_dir)
    with pytest.raises(ConfigError, match="monitor='val_f2' is not among the logged metrics"):
        fit(L, tmp_path, cb, [0.1])
    s = RunDir(run_dir).read_summary()
    assert s.status is RunStatus.FAILED and "val_f2" in s.error
    assert s.lost_kwh == pytest.approx(1.0)  # the epoch whose record failed


def test_a_used_run_dir_is_refused_and_left_as_it_was(L, tmp_path):
    run_dir = tmp_path / "run"
    fit(L, tmp_path, L.EnergyEarlyStopping(stop="budget:kwh=1.5", meter=tick_meter(),
                                           run_dir=run_dir), [0.1])
    before = (run_dir / "summary.json").read_text()
    with pytest.raises(GreensedError, match="already holds a run"):
        fit(L, tmp_path, L.EnergyEarlyStopping(stop="budget:kwh=1.5", meter=tick_meter(),
                                               run_dir=run_dir), [0.1])
    assert (run_dir / "summary.json").read_text() == before
    assert len(RunDir(run_dir).read_epochs()) == 1


def test_bad_arguments_fail_at_construction(L):
    with pytest.raises(ConfigError, match="unknown stop policy 'plateu'"):
        L.EnergyEarlyStopping(stop="plateu", monitor="val_f1")
    with pytest.raises(ConfigError, match="watches a metric; name the logged one with monitor"):
        L.EnergyEarlyStopping(stop=["budget:kwh=1", "plateau"])
    with pytest.raises(ConfigError, match="constant:"):
        L.EnergyEarlyStopping(stop="budget:kwh=1", meter="constant:x")
    L.EnergyEarlyStopping(stop="budget:kwh=1")  # a budget alone watches no metric


def test_ranks_agree_on_the_stop_and_their_energy_is_summed(L, tmp_path):
    """Two CPU processes (ddp_spawn): rank 0 decides, the strategy's
    reduce_boolean_decision stops both at the same epoch (else the run would hang),
    and each window's energy is the sum of the ranks' parts."""
    run_dir = tmp_path / "run"
    cb = L.EnergyEarlyStopping(stop="plateau:patience=2", monitor="val_f1",
                               meter="constant:36000", run_dir=run_dir)
    trainer = L.pl.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", max_epochs=10,
                           logger=False, callbacks=[cb], enable_progress_bar=False,
                           enable_model_summary=False, enable_checkpointing=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(L.Tiny([0.1, 0.3, 0.3, 0.2, 0.5]))
    s = RunDir(run_dir).read_summary()
    assert s.stop_policy == "plateau" and s.epochs == 4
    records = RunDir(run_dir).read_epochs()
    assert all(r.meter == "constant:36000 x2 ranks" for r in records)
    # 36 kW on the node (local rank 0's window), nothing of its own on rank 1; the
    # window is as long as the longest rank's.
    for r in records:
        assert r.energy_components_kwh.keys() == {"cpu"}
        assert 0 < r.energy_kwh <= 36000 * r.duration_s / 3.6e6 * (1 + 1e-9)


def test_a_pytorch_lightning_trainer_takes_the_callback_too(L, tmp_path):
    """pytorch_lightning (2.x here; 1.9 in tests/test_lightning_legacy.py) is a package
    of its own whose Trainer refuses lightning.pytorch's callbacks. Once the calling
    code has imported both, the callback is a Callback of each: either trainer takes
    it and is stopped by it. (Last in this module: later ones would get that class.)"""
    pl2 = pytest.importorskip("pytorch_lightning")
    import lightning_tiny

    from greensed.lightning import callback_class

    assert callback_class("pytorch_lightning").__name__ == "PLEnergyEarlyStopping"
    for package in (pl2, L.pl):
        run_dir = tmp_path / package.__name__
        cb = L.EnergyEarlyStopping(stop="plateau:patience=2", monitor="val_f1",
                                   meter=tick_meter(), run_dir=run_dir)
        assert type(cb).__name__ == "AnyLightningEnergyEarlyStopping"
        assert isinstance(cb, pl2.Callback) and isinstance(cb, L.pl.Callback)
        module = type("Tiny", (lightning_tiny.TinyCore, package.LightningModule), {})
        trainer = package.Trainer(accelerator="cpu", max_epochs=10, logger=False,
                                  callbacks=[cb], enable_progress_bar=False,
                                  enable_model_summary=False, enable_checkpointing=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(module([0.1, 0.3, 0.3, 0.2, 0.5]))
        assert trainer.current_epoch == 4 and trainer.should_stop
        s = RunDir(run_dir).read_summary()
        assert (s.stop_policy, s.epochs, s.best_epoch, s.total_kwh) == (
            "plateau", 4, 2, pytest.approx(4.0))
