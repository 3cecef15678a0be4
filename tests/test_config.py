"""Recipes and saved configs: every key typed and in range, one-line errors naming
file, section and key; legacy keys of earlier greensed still read; frozen sections."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from greensed import config as C
from greensed.errors import ConfigError

FIXTURE_CONFIG = Path(__file__).resolve().parent / "fixtures" / "schema1-run" / "config.toml"


@pytest.mark.parametrize(("text", "message"), [
    ("[train]\nlr = -0.001\n", "[train]: key 'lr' = -0.001 must be > 0"),
    ("[train]\nlr = nan\n", "[train]: key 'lr' = nan must be a finite number"),
    ("[eval]\nmedian_window = 0\n", "[eval]: key 'median_window' = 0 must be >= 1"),
    ("[features]\nn_mels = 0\n", "[features]: key 'n_mels' = 0 must be >= 1"),
    ("[features]\nsample_rate = 0\n", "[features]: key 'sample_rate' = 0 must be >= 1"),
    ("[train]\nseed = -1\n", "[train]: key 'seed' = -1 must be >= 0"),
    ("[eval]\nthreshold = 1.5\n", "[eval]: key 'threshold' = 1.5 must be > 0 and < 1"),
    ("[train]\nema_factor = 1.5\n", "[train]: key 'ema_factor' = 1.5 must be >= 0 and <= 1"),
    ("[train]\nmixup_p = 2.0\n", "[train]: key 'mixup_p' = 2.0 must be >= 0 and <= 1"),
    ("[train]\nwarmup_epochs = -1\n", "[train]: key 'rampup_epochs' = -1 must be >= 0"),
    ("[train]\nprecision = \"fp16\"\n", "key 'precision' = 'fp16' is not one of fp32, bf16"),
    ("[meter]\ntracking_mode = \"all\"\n", "key 'tracking_mode' = 'all' is not one of machine"),
    ("[data]\nweak_split = 0\n", "[data]: key 'weak_split' = 0 must be > 0 and <= 1"),
    ("[eval]\ndtc = 1.2\n", "[eval]: key 'dtc' = 1.2 must be > 0 and <= 1"),
    ("[features]\nf_max = 9000.0\n", "[features]: f_max = 9000 is above the Nyquist frequency"),
    ("[features]\nwin_length = 4096\n", "[features]: win_length = 4096 exceeds n_fft = 2048"),
    ("[train]\nepochs = 1.5\n", "[train]: key 'epochs' = 1.5 has the wrong type (expected int)"),
    ("[stop]\npolicies = \"plateau\"\n", "key 'policies' = 'plateau' has the wrong type"),
])
def test_every_value_is_checked_when_the_recipe_is_read(tmp_path, text, message):
    recipe = tmp_path / "r.toml"
    recipe.write_text(text)
    with pytest.raises(ConfigError) as err:
        C.load_recipe(recipe)
    assert str(err.value).startswith(f"{recipe} ") and message in str(err.value)
    assert "\n" not in str(err.value)


def test_unreadable_recipes_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="is a directory, not a TOML file"):
        C.load_recipe(tmp_path)
    latin = tmp_path / "latin.toml"
    latin.write_bytes("[recipe]\nname = \"caf\xe9\"\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin.toml: recipe is not UTF-8 text"):
        C.load_recipe(latin)
    with pytest.raises(ConfigError, match=r"bad.toml: invalid TOML"):
        (tmp_path / "bad.toml").write_text("[train\n")
        C.load_recipe(tmp_path / "bad.toml")


def test_an_earlier_greenseds_config_still_reads():
    cfg = C.from_toml_text(FIXTURE_CONFIG.read_text(), str(FIXTURE_CONFIG))
    assert cfg.train.rampup_epochs == 1.0  # written as [train] warmup_epochs
    assert cfg.stop.plateau.patience == 5 and cfg.stop.marginal.window == 5
    assert cfg.stop.metric == "student_f1" and cfg.stop.policies == ("plateau",)
    again = C.from_toml_text(C.to_toml(cfg), "round trip")
    assert again == cfg


def test_sections_are_frozen_and_override_returns_a_new_config():
    cfg = C.RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 1.0  # type: ignore[misc]
    new = C.override(cfg, {"train": {"lr": 5e-4}, "stop": {"plateau": {"patience": 3}}}, "x")
    assert (cfg.train.lr, cfg.stop.plateau.patience) == (1e-3, 10)
    assert (new.train.lr, new.stop.plateau.patience, new.stop.plateau.min_delta) == (5e-4, 3,
                                                                                    0.0)
    assert C.diff(cfg, new) == ["train.lr: 0.001 -> 0.0005", "stop.plateau.patience: 10 -> 3"]


def test_unknown_keys_and_sections_suggest_the_right_name():
    with pytest.raises(ConfigError, match=r"x \[train\]: unknown key 'bach_size' \(did you mean "
                                          r"'batch_size'\?\)"):
        C.override(C.RunConfig(), {"train": {"bach_size": 8}}, "x")
    with pytest.raises(ConfigError, match=r"unknown section \[trian\] \(did you mean"):
        C.override(C.RunConfig(), {"trian": {}}, "x")
    with pytest.raises(ConfigError, match=r"\[stop\].plateau: unknown key 'patiense'"):
        C.override(C.RunConfig(), {"stop": {"plateau": {"patiense": 3}}}, "x")


def test_shipped_recipes_load_and_use_no_legacy_key():
    from greensed.recipes import recipe_path, shipped_recipes

    for name in shipped_recipes():
        raw = C.read_toml(recipe_path(name))
        tables = raw.get("overrides", raw)  # a grid recipe's cell keys are its overrides
        legacy = [(sec, key) for sec, values in tables.items() if isinstance(values, dict)
                  for key in values if (sec, key) in C.LEGACY]
        assert not legacy, (name, legacy)
        if "grid" not in raw:
            C.load_recipe(recipe_path(name))
