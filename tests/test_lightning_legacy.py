"""greensed's callback under the pytorch_lightning that DCASE participants run: 1.9
(DESED_task 2023 and 2024), 1.6 and 1.5 (2022), with docs/dcase.md's lines in a
script shaped like DESED_task's ``single_run`` around a module shaped like its
``SEDTask4`` (tests/desed_run.py, tests/desed_shaped.py); and under the lowest
``lightning`` the ``[lightning]`` extra admits (2.1.4).

Each version is installed from the package index into ``.test-envs/`` (ignored by
git; once per machine, about a second) with ``pip install --no-deps --target``: the
project's environment is untouched, and what pytorch_lightning needs besides itself
(torch, torchmetrics, lightning-utilities, fsspec, PyYAML, tqdm) is already in it.
The run is a child process with that folder first on ``sys.path``, so that its
``pytorch_lightning`` is the old one. Without the index the tests skip, saying why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from greensed.cli import app
from greensed.runlog import RunDir, RunStatus

pytestmark = pytest.mark.slow  # installs packages and trains

ROOT = Path(__file__).resolve().parent.parent
ENVS = ROOT / ".test-envs"
DOC = ROOT / "docs" / "dcase.md"
# What each version needs beside the project's environment (its own pins).
EXTRA = {"1.5.10": ["pyDeprecate==0.3.2"], "1.6.5": ["pyDeprecate==0.3.2"]}


def provision(version: str, package: str = "pytorch_lightning") -> Path:
    """``package`` ``version`` in a folder of its own (made once, atomically)."""
    target = ENVS / f"{package}-{version}"
    if (target / package).is_dir():  # the package's own import folder: made before
        return target
    ENVS.mkdir(exist_ok=True)
    tmp = ENVS / f".{target.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    res = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--timeout", "30",
         "--retries", "1", "--target", str(tmp), f"{package}=={version}",
         *EXTRA.get(version, [])], capture_output=True, text=True, timeout=600)
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        lines = [ln for ln in (res.stderr + res.stdout).splitlines()
                 if ln.strip() and not ln.startswith("WARNING: Location")]
        pytest.skip(f"{package} {version} not installable from the package index: "
                    f"{lines[-1] if lines else res.returncode}")
    try:
        tmp.rename(target)
    except OSError:  # another run made it meanwhile: keep that one
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def run_doc(version: str, tmp_path: Path) -> dict:
    """docs/dcase.md's lines under pytorch_lightning ``version``; what the run returned."""
    target = provision(version)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), str(ROOT)])}
    out = tmp_path / "out.json"
    res = subprocess.run([sys.executable, str(ROOT / "tests" / "desed_run.py"), str(DOC),
                          str(tmp_path / "exp" / "mine"), str(out)],
                         env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["lightning"] == version  # the old one, not the environment's
    return got


def cli(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.output


def test_docs_dcase_lines_stop_a_pytorch_lightning_1_9_run(tmp_path):
    got = run_doc("1.9.5", tmp_path)
    run_dir = Path(got["run_dir"])
    assert got["callback_class"] == "PLEnergyEarlyStopping"
    # Validation every 10 epochs; the best objective at the 2nd (epoch 20), then
    # three validations without a better one: plateau:patience=30 stops at epoch 50
    # (Lightning's current_epoch counts the finished epochs, from 0).
    assert got["should_stop"] and got["current_epoch"] == 50
    assert run_dir == tmp_path / "exp" / "mine" / "version_0" / "greensed"
    s = RunDir(run_dir).read_summary()
    assert s.status is RunStatus.FINISHED and s.stop_policy == "plateau" and s.epochs == 50
    assert s.stop_reason == ("plateau: val/obj_metric did not improve for 30 epochs "
                             "(best 1.2 at epoch 20)")
    assert (s.best_metric, s.best_epoch, s.batch_size, s.seed, s.recipe) == (
        "val/obj_metric", 20, 60, 42, "mine")
    records = RunDir(run_dir).read_epochs()
    assert [r.epoch for r in records] == list(range(1, 51))
    assert [r.metric("val/obj_metric") for r in records][9::10] == pytest.approx(
        [0.9, 1.2, 1.1, 1.15, 1.0])
    assert records[0].metric("val/obj_metric") is None  # before the first validation
    assert all(r.energy_kwh and r.energy_kwh > 0 for r in records)  # meter="auto"
    assert records[-1].cumulative_kwh == pytest.approx(sum(r.energy_kwh for r in records))
    # The window holds the validation: it runs inside the training epoch, before
    # on_train_epoch_end, under 1.9 as under 2.x.
    hooks = got["hooks"]
    first_val = hooks.index("on_validation_start")
    assert hooks[first_val - 1:first_val + 3] == [
        "on_train_epoch_start", "on_validation_start", "on_validation_end",
        "on_train_epoch_end"]
    assert records[9].val_s > 0 and records[8].val_s == 0
    # The recipe's ModelCheckpoint beside it kept the best epoch (Lightning's 19).
    assert Path(got["best_model_path"]).name == "epoch=19-step=40.ckpt"
    assert json.loads((run_dir / "psds.json").read_text()) == pytest.approx(
        {"psds1": 0.48, "psds2": 0.71})
    # The study tools read it.
    out = cli("report", str(tmp_path / "exp"), "--metric", "val/obj_metric", "--format",
              "csv", "--no-plots", "--out", str(tmp_path / "report"))
    assert "Table 1" in out
    out = cli("replay", str(run_dir), "--metric", "val/obj_metric", "--policy",
              "plateau:patience=10", "--format", "csv")
    assert "30/50" in out  # the 3rd validation did not beat the 2nd
    out = cli("dcase", str(run_dir), "--baseline", str(run_dir), "--format", "csv")
    assert "0.48" in out and "0.71" in out


@pytest.mark.parametrize("version", ["1.6.5", "1.5.10"])
def test_the_callback_stops_pytorch_lightning_of_dcase_2022(version, tmp_path):
    """DESED_task 2022 ran 1.5: the same lines stop it and checkpoint beside it.
    (Resuming from a checkpoint is tested under 1.9 and 2.x only.)"""
    got = run_doc(version, tmp_path)
    assert got["callback_class"] == "PLEnergyEarlyStopping" and got["should_stop"]
    s = RunDir(got["run_dir"]).read_summary()
    assert (s.status, s.stop_policy, s.epochs, s.best_epoch) == (
        RunStatus.FINISHED, "plateau", 50, 20)
    assert Path(got["best_model_path"]).name.startswith("epoch=19-")


RESUME = """
import numpy as np
np.Inf = np.inf  # test environment only (see tests/desed_run.py)
import sys, warnings
import pytorch_lightning as pl
from desed_shaped import SEDTask4
from greensed.energy import ConstantPowerMeter
from greensed.lightning import EnergyEarlyStopping

warnings.simplefilter("ignore")


def fit(max_epochs, ckpt_path=None, run_dir=None):
    ticks = iter(range(100_000))  # exactly 1 kWh a window
    cb = EnergyEarlyStopping(stop="plateau:patience=5", monitor="val/obj_metric",
                             meter=ConstantPowerMeter(3.6e6, clock=lambda: float(next(ticks))),
                             run_dir=run_dir)
    trainer = pl.Trainer(max_epochs=max_epochs, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[
                             cb, pl.callbacks.ModelCheckpoint("ck", save_last=True)])
    trainer.fit(SEDTask4({}, [0.1, 0.2], (0.0, 0.0)), ckpt_path=ckpt_path)


fit(2, run_dir="run")
fit(4, ckpt_path="ck/last.ckpt")  # the run directory from the checkpoint
"""


def run_code(target: Path, code: str, cwd: Path) -> str:
    """``code`` in a child whose ``sys.path`` starts with ``target``; its stdout."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(target), str(ROOT), str(ROOT / "tests")])}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, timeout=600, cwd=cwd)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def test_a_pytorch_lightning_1_9_run_resumes_from_its_checkpoint(tmp_path):
    run_code(provision("1.9.5"), RESUME, tmp_path)
    records = RunDir(tmp_path / "run").read_epochs()
    assert [r.epoch for r in records] == [1, 2, 3, 4]
    assert records[-1].cumulative_kwh == pytest.approx(4.0)
    s = RunDir(tmp_path / "run").read_summary()
    assert (s.status, s.stop_policy, s.epochs) == (RunStatus.FINISHED, "max-epochs", 4)


LOWEST_2X = """
import warnings
import lightning.pytorch as pl
import lightning_tiny
from greensed.lightning import EnergyEarlyStopping

warnings.simplefilter("ignore")
cb = EnergyEarlyStopping(stop="plateau:patience=2", monitor="val_f1", meter="constant:10",
                         run_dir="run")
trainer = pl.Trainer(accelerator="cpu", max_epochs=10, logger=False, callbacks=[cb],
                     enable_progress_bar=False, enable_model_summary=False,
                     enable_checkpointing=False)
trainer.fit(lightning_tiny.Tiny([0.1, 0.3, 0.3, 0.2, 0.5]))
print(pl.__version__, trainer.current_epoch, type(cb).__name__)
"""


def test_the_lowest_lightning_2_is_stopped_too(tmp_path):
    """pyproject's [lightning] extra: lightning>=2.1; its lowest release (numpy 2 needs
    no shim there)."""
    out = run_code(provision("2.1.4", "lightning"), LOWEST_2X, tmp_path)
    assert out.split()[-3:] == ["2.1.4", "4", "LightningEnergyEarlyStopping"]
    s = RunDir(tmp_path / "run").read_summary()
    assert (s.stop_policy, s.epochs, s.best_epoch) == ("plateau", 4, 2)
