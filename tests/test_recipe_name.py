"""What a recipe says of itself holds: its [recipe] name names its runs, and the
example model recipe is the quick recipe but for the model (issue 24, item 5)."""

from __future__ import annotations

import pytest
from helpers import cli

from greensed import config as C
from greensed.errors import ConfigError
from greensed.recipes import recipe_name, recipe_path, shipped_recipes


def test_the_small_crnn_example_is_the_quick_recipe_but_for_its_model():
    quick = C.flat(C.load_recipe(recipe_path("quick.toml")).to_dict())
    small = C.flat(C.load_recipe(recipe_path("examples/small-crnn.toml")).to_dict())
    differ = {k for k in quick.keys() | small.keys() if quick.get(k) != small.get(k)}
    assert differ and all(k.startswith("model.") for k in differ), differ


def test_a_recipe_is_named_by_its_recipe_name_else_its_stem(tmp_path):
    assert recipe_name(recipe_path("paper/bs16.toml")) == "paper-bs16"
    assert {recipe_name(recipe_path(r)) for r in shipped_recipes()} >= {"quick", "small-crnn"}
    plain = tmp_path / "plain.toml"
    plain.write_text("[train]\nepochs = 3\n")
    assert recipe_name(plain) == "plain"
    bad = tmp_path / "bad.toml"
    bad.write_text('[recipe]\nname = "a/b"\n')
    with pytest.raises(ConfigError, match=r"bad.toml \[recipe\]: name = 'a/b' must be a "
                                          "folder-safe name"):
        recipe_name(bad)


def test_train_records_the_recipe_name(tmp_path, monkeypatch, capsys):
    """The name reaches the run (the default directory, summary.json's recipe): checked
    where the CLI hands it to the loop, without training."""
    seen = {}

    def fake_train(cfg, run_dir, **kw):
        seen.update(run_dir=run_dir, **kw)
        raise ConfigError("stop here")

    recipe = tmp_path / "mine.toml"
    recipe.write_text('[recipe]\nname = "my-recipe"\n[train]\nepochs = 1\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("greensed.train.loop.train", fake_train)
    code, _, err = cli(monkeypatch, capsys, "train", "--recipe", recipe)
    assert code == 2 and err == "error: stop here\n"
    assert seen["recipe_name"] == "my-recipe"
    assert str(seen["run_dir"]).startswith("runs/my-recipe-bs")
