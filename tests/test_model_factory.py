"""Your own model: [model] factory, its I/O contract, and the pooling it sets for
labels and decoding (the baseline CRNN stays the default, figure for figure)."""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import pytest
import torch
from helpers import quiet, tiny_config, tweak
from torch import nn
from typer.testing import CliRunner

from greensed import config as C
from greensed.cli import app
from greensed.data.desed import load_dataset, load_run_dataset
from greensed.data.spec import CLASSES, OUT_FRAME_S, TIME_POOLING, out_frame_rate, out_frame_s
from greensed.errors import ConfigError
from greensed.model.crnn import CRNN
from greensed.model.examples import small_crnn
from greensed.model.factory import build_model, resolve_factory, time_pooling
from greensed.recipes import recipe_path
from greensed.train.state import make_model, model_frame_s, model_time_pooling

SMALL = "greensed.model.examples:small_crnn"
# The first forward pass of a process spins up the thread pool: one thread is faster
# on the shared cores.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def model_cfg(**model: object) -> C.RunConfig:
    return C.override(C.RunConfig(), {"model": model}, "test")


@pytest.fixture
def fake_models(monkeypatch):
    """A module ``fake_models`` of factories that break the contract in one way each."""
    mod = types.ModuleType("fake_models")

    class Frames(nn.Module):
        def __init__(self, pooling: int | None, t_out: int | None = None, weak: bool = True,
                     n_classes: int = 10) -> None:
            super().__init__()
            self.lin = nn.Linear(128, n_classes)
            if pooling is not None:
                self.time_pooling = pooling
            self.t_out, self.weak = t_out, weak

        def forward(self, x):
            t = self.t_out or x.shape[1] // 4
            strong = torch.sigmoid(self.lin(x[:, :t])).transpose(1, 2)
            return (strong, strong.mean(-1)) if self.weak else strong

    mod.good = lambda n_classes=10: Frames(4, n_classes=n_classes)
    mod.no_pooling = lambda: Frames(None)
    mod.wrong_frames = lambda: Frames(4, t_out=100)
    mod.one_output = lambda: Frames(4, weak=False)
    mod.not_a_module = lambda: "a string"
    mod.needs_depth = lambda depth: Frames(4)
    mod.VALUE = 3
    monkeypatch.setitem(sys.modules, "fake_models", mod)
    return mod


def test_default_is_the_baseline_crnn_with_the_same_weights():
    torch.manual_seed(0)
    built = make_model(C.RunConfig())
    torch.manual_seed(0)
    crnn = CRNN(n_classes=len(CLASSES), n_mels=128)
    assert type(built) is CRNN and built.time_pooling == TIME_POOLING == CRNN.time_pooling == 4
    for a, b in zip(built.state_dict().values(), crnn.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert model_time_pooling(C.RunConfig()) == 4
    assert model_frame_s(C.RunConfig()) == OUT_FRAME_S == 0.064
    f = C.RunConfig().features
    assert out_frame_rate(f, 4) == 15.625 and out_frame_s(f, 8) == 0.128


def test_old_configs_without_a_model_section_mean_the_crnn():
    text = C.to_toml(C.RunConfig()).split("[model]")[0]
    cfg = C.from_toml_text(text, "old config.toml")
    assert cfg.model == C.ModelConfig() and cfg.model.factory is None


def test_model_section_round_trips_through_config_toml():
    cfg = model_cfg(factory=SMALL, kwargs={"rnn_hidden": 16, "time_pools": [2, 2, 2]},
                    time_pooling=8)
    back = C.from_toml_text(C.to_toml(cfg), "config.toml")
    assert back.model.kwargs == {"rnn_hidden": 16, "time_pools": [2, 2, 2]}
    assert back.model == cfg.model


def test_example_small_crnn_pools_time_by_8():
    cfg = C.load_recipe(recipe_path("examples/small-crnn.toml"))
    assert cfg.model.factory == SMALL
    model = make_model(cfg)
    assert isinstance(model, CRNN) and model.time_pooling == 8
    assert sum(p.numel() for p in model.parameters()) < 200_000  # the baseline: 1.1 M
    strong, weak = model(torch.zeros(2, 626, 128))
    assert strong.shape == (2, 10, 78) and weak.shape == (2, 10)
    assert model_time_pooling(cfg) == 8 and model_frame_s(cfg) == 0.128
    assert small_crnn(time_pools=(2,), channels=(8,)).time_pooling == 2


def test_pooling_is_read_without_drawing_from_the_generators():
    cfg = model_cfg(factory=SMALL, kwargs={"time_pools": [2, 1, 2]})
    torch.manual_seed(3)
    expected = torch.rand(3)
    torch.manual_seed(3)
    assert time_pooling(cfg, n_classes=10) == 4
    build_model(cfg, n_classes=10, n_frames=626)  # the dry forward pass draws nothing
    torch.manual_seed(3)
    assert time_pooling(cfg, n_classes=10) == 4  # cached
    assert torch.equal(torch.rand(3), expected)


def test_factory_gets_n_classes_and_n_mels_only_when_it_takes_them(fake_models):
    model = build_model(model_cfg(factory="fake_models:good"), n_classes=10, n_frames=626)
    assert model.lin.out_features == 10
    # A declared pooling serves a model that does not say it.
    build_model(model_cfg(factory="fake_models:no_pooling", time_pooling=4), n_classes=10,
                n_frames=626)


@pytest.mark.parametrize(("model", "message"), [
    ({"factory": "no_colon"}, "expected 'package.module:function'"),
    ({"factory": "no_such_module_xyz:f"}, "no module 'no_such_module_xyz' in the current "
                                          "folder"),
    ({"factory": "fake_models:missing"}, "has no attribute 'missing'"),
    ({"factory": "fake_models:VALUE"}, "'VALUE' is a int, not callable"),
    ({"factory": "fake_models:not_a_module"}, "returned a str, not a torch.nn.Module"),
    ({"factory": "fake_models:needs_depth"}, "cannot be called with []"),
    ({"factory": "fake_models:good", "kwargs": {"width": 3}},
     "cannot be called with ['n_classes', 'width']"),
    ({"factory": "fake_models:no_pooling"},
     "no time_pooling attribute; declare [model] time_pooling"),
    ({"factory": "fake_models:good", "time_pooling": 8},
     "[model] time_pooling = 8 but the model says time_pooling = 4"),
    ({"factory": "fake_models:wrong_frames"},
     "returned ([2, 10, 100], [2, 10]); expected log-mel [B, T, F] = [2, 626, 128] in; "
     "strong [B, C, T'] = [2, 10, 156]"),
    ({"factory": "fake_models:one_output"}, "returned one tensor [2, 10, 156]"),
    ({"time_pooling": 2}, "[model] time_pooling = 2 but the model says time_pooling = 4"),
])
def test_a_bad_factory_is_one_config_error_line(fake_models, model, message):
    with pytest.raises(ConfigError) as err:
        build_model(model_cfg(**model), n_classes=10, n_frames=626)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_resolve_factory_takes_dotted_attributes():
    assert resolve_factory("greensed.model.crnn:CRNN.forward") is CRNN.forward


def test_labels_follow_the_model_pooling(tiny_dataset, tmp_path):
    cfg = tiny_config(tiny_dataset, tmp_path / "cache")
    base = load_run_dataset(cfg)
    assert base.validation.strong.shape == (4, 10, 156)
    eight = load_dataset(tiny_dataset, cfg.features, cache_dir=tmp_path / "cache",
                         time_pooling=8)
    assert eight.validation.strong.shape == (4, 10, 78)
    # The same events on a grid of half the frames: frame k of the coarse grid is on
    # exactly when one of frames 2k, 2k+1 of the fine one is.
    fine, coarse = base.validation.strong.astype(bool), eight.validation.strong.astype(bool)
    assert np.array_equal(coarse, fine.reshape(4, 10, 78, 2).any(-1))
    with pytest.raises(ConfigError, match="pass time_pooling"):
        load_run_dataset(tweak(cfg, **{"model.factory": SMALL}))


@pytest.mark.slow
def test_recipe_with_a_model_factory_trains_end_to_end_and_report_reads_it(
        tiny_dataset, tmp_path, one_torch_thread):
    from greensed.train.evaluate import evaluate
    from greensed.train.loop import train

    tiny = tiny_config(tiny_dataset, tmp_path / "cache", epochs=2)
    cfg = C.load_recipe(recipe_path("examples/small-crnn.toml"), tiny)
    cfg = tweak(cfg, **{"train.epochs": 2, "train.batch_size": 4, "stop.policies": []})
    run = tmp_path / "run"
    res = train(cfg, run, report=quiet, recipe_name="small-crnn")
    assert res.summary.finished and res.summary.epochs == 2
    saved = C.from_toml_text((run / "config.toml").read_text(), "config.toml")
    assert saved.model.factory == SMALL and saved.model.kwargs["time_pools"] == [2, 2, 2]
    ck = torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    assert ck["student"]["strong_head.weight"].shape == (10, 64)  # GRU 32, bidirectional
    psds = evaluate(run)  # decodes 78 frames of 128 ms
    assert 0.0 <= psds["psds1"] <= 1.0 and psds["n_clips"] == 4
    out = tmp_path / "report"
    r = CliRunner().invoke(app, ["report", str(run), "--metric", "student_f1", "--format",
                                 "csv", "--no-plots", "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = (out / "runs.csv").read_text().splitlines()
    assert len(rows) == 2 and str(run) in rows[1]
    assert json.loads((run / "summary.json").read_text())["recipe"] == "small-crnn"



# --- a model module of the user's own, beside the recipe or in the current folder ---

MODULE = """
from greensed.model.examples import small_crnn

def build(n_classes, n_mels):
    return small_crnn(n_classes=n_classes, n_mels=n_mels)
"""


@pytest.fixture
def own_module(tmp_path, monkeypatch):
    """A folder holding ``ux_model_<test>.py``; sys.path and sys.modules restored after."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = f"ux_model_{len(sys.modules)}_{tmp_path.name}".replace("-", "_")
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / f"{name}.py").write_text(MODULE)
    yield folder, name
    sys.modules.pop(name, None)


def test_a_module_in_the_current_folder_is_found_as_python_m_finds_it(own_module,
                                                                        monkeypatch):
    folder, name = own_module
    monkeypatch.chdir(folder)
    assert str(folder) not in sys.path  # the `greensed` command's path lacks it
    assert callable(resolve_factory(f"{name}:build"))


def test_a_module_beside_the_recipe_is_found(own_module, tmp_path, monkeypatch):
    from greensed.cli.train import _model_folder

    folder, name = own_module
    monkeypatch.chdir(tmp_path)  # elsewhere
    recipe = folder / "r.toml"
    recipe.write_text(f'[model]\nfactory = "{name}:build"\n')
    _model_folder(C.load_recipe(recipe), recipe)
    assert callable(resolve_factory(f"{name}:build"))


def test_a_module_found_nowhere_says_where_it_looked_and_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as exc:
        resolve_factory("mymodel_nowhere:build")
    assert str(exc.value) == (
        f"[model] factory = 'mymodel_nowhere:build': no module 'mymodel_nowhere' in the "
        f"current folder ({tmp_path}), the recipe's folder or the Python path; put "
        "mymodel_nowhere.py (or the package mymodel_nowhere/) in one of them, pip install "
        "it, or add its folder to PYTHONPATH")


def test_a_module_that_imports_a_missing_one_names_that_one(own_module, monkeypatch):
    folder, name = own_module
    (folder / f"{name}.py").write_text("import not_installed_dep_xyz\n")
    monkeypatch.chdir(folder)
    with pytest.raises(ConfigError, match=f"cannot import module '{name}' \\(No module "
                                          "named 'not_installed_dep_xyz'\\)"):
        resolve_factory(f"{name}:build")
