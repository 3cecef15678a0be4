"""From [stop] tables, flags and specs to checked policies; errors before training."""

from __future__ import annotations

import math

import pytest

from greensed import config as C
from greensed.config import StopConfig
from greensed.errors import ConfigError
from greensed.stopping import (
    AllOf,
    AnyOf,
    Budget,
    Plateau,
    build_policy,
    make_policy,
    parse_spec,
    stop_flags,
)
from greensed.stopping.base import watched_metrics


def stop(**table) -> StopConfig:
    """A [stop] table as a recipe would hold it, loaded and checked."""
    return C.override(C.RunConfig(), {"stop": table}, "recipe.toml").stop


def kinds(policy):
    return [p.name for p in policy.policies]


def test_default_is_only_the_cap():
    p = build_policy(StopConfig(), 200)
    assert isinstance(p, AnyOf) and kinds(p) == ["max-epochs"]
    assert not p.requires_energy


def test_builds_listed_policies_with_their_tables():
    cfg = stop(policies=["plateau", "budget", "target", "marginal"], warmup_epochs=2,
               plateau={"patience": 5, "min_delta": 0.001}, budget={"kwh": 0.5},
               target={"value": 0.6}, marginal={"min_f1_per_kwh": 0.1, "window": 4})
    p = build_policy(cfg, 50)
    assert kinds(p) == ["plateau", "budget", "target", "marginal", "max-epochs"]
    plateau, budget, target, marginal, cap = p.policies
    assert (plateau.patience, plateau.min_delta, plateau.warmup_epochs) == (5, 0.001, 2)
    assert budget.kwh == 0.5 and target.value == 0.6
    assert (marginal.min_f1_per_kwh, marginal.window, marginal.warmup_epochs) == (0.1, 4, 2)
    assert cap.n == 50 and p.requires_energy


def test_legacy_flat_keys_of_old_recipes_still_read():
    cfg = stop(policies=["plateau", "budget"], patience=5, min_delta=0.01, budget_kwh=0.5,
               marginal_window=3, target_f1=0.4, min_f1_per_kwh=0.2)
    assert (cfg.plateau.patience, cfg.plateau.min_delta, cfg.budget.kwh) == (5, 0.01, 0.5)
    assert (cfg.marginal.window, cfg.target.value, cfg.marginal.min_f1_per_kwh) == (3, 0.4, 0.2)


def test_combine_all():
    assert isinstance(build_policy(stop(policies=["plateau"], combine="all"), 10), AllOf)


@pytest.mark.parametrize(("table", "match"), [
    ({"plateau": {"patience": 0}},
     r"recipe.toml \[stop\].plateau: key 'patience' = 0 must be >= 1"),
    ({"plateau": {"min_delta": -0.1}}, r"key 'min_delta' = -0.1 must be >= 0"),
    ({"budget": {"kwh": -1.0}}, r"key 'kwh' = -1.0 must be > 0"),
    ({"marginal": {"window": 0}}, r"key 'window' = 0 must be >= 1"),
    ({"mode": "maximum"}, r"key 'mode' = 'maximum' is not one of max, min"),
    ({"combine": "either"}, r"key 'combine' = 'either' is not one of any, all"),
    ({"plateau": {"patiense": 3}}, r"unknown key 'patiense' \(did you mean 'patience'\?\)"),
    ({"budget": {"kwh": float("nan")}}, r"key 'kwh' = nan must be a finite number"),
])
def test_bad_values_fail_when_the_recipe_is_read(table, match):
    with pytest.raises(ConfigError, match=match):
        stop(**table)


@pytest.mark.parametrize(("names", "match"), [
    (["platau"], "did you mean 'plateau'"),
    (["budget"], "needs a budget"),
    (["target"], "needs a value"),
    (["marginal"], "needs a rate"),
])
def test_a_listed_policy_without_its_value_fails_before_training(names, match):
    with pytest.raises(ConfigError, match=match):
        build_policy(stop(policies=names), 200)


def test_policies_check_themselves_when_built():
    with pytest.raises(ConfigError, match="stop policy 'plateau': patience = 0 must be >= 1"):
        Plateau(patience=0)
    with pytest.raises(ConfigError, match="max epochs: n = 0 must be >= 1"):
        build_policy(StopConfig(), 0)
    assert Budget(kwh=1).kwh == 1.0 and Plateau().patience == 10  # the declared defaults


def test_flags_budget_alone_implies_budget():
    cfg = stop_flags(StopConfig(), budget_kwh=0.3)
    assert cfg.policies == ("budget",) and cfg.budget.kwh == 0.3
    assert kinds(build_policy(cfg, 200)) == ["budget", "max-epochs"]


def test_flags_target_marginal_and_window_imply_their_policies():
    cfg = stop_flags(stop(policies=["plateau"]), target_f1=0.5, min_f1_per_kwh=0.2, window=3)
    assert cfg.policies == ("plateau", "target", "marginal") and cfg.marginal.window == 3


def test_flags_stop_list_replaces_recipe_list():
    cfg = stop_flags(stop(policies=["budget"], budget={"kwh": 1.0}),
                     stop=["plateau", "marginal"], min_f1_per_kwh=0.1, patience=3)
    assert cfg.policies == ("plateau", "marginal") and cfg.plateau.patience == 3
    assert kinds(build_policy(cfg, 200)) == ["plateau", "marginal", "max-epochs"]


def test_flags_stop_comma_separated_and_deduplicated():
    cfg = stop_flags(StopConfig(), stop=["plateau,target", "plateau"], target_f1=0.4)
    assert cfg.policies == ("plateau", "target")


def test_flags_stop_max_epochs_means_only_the_cap():
    cfg = stop_flags(stop(policies=["plateau"]), stop=["max-epochs"])
    assert cfg.policies == () and kinds(build_policy(cfg, 200)) == ["max-epochs"]
    with pytest.raises(ConfigError, match="only the epoch cap; --budget-kwh contradicts it"):
        stop_flags(StopConfig(), stop=["max-epochs"], budget_kwh=1.0)
    with pytest.raises(ConfigError, match="only the epoch cap"):
        stop_flags(StopConfig(), stop=["max-epochs", "plateau"])


def test_flags_unknown_policy_suggests():
    with pytest.raises(ConfigError, match=r"--stop: unknown stop policy 'budgt'.*'budget'"):
        stop_flags(StopConfig(), stop=["budgt"])


def test_flags_shared_values_and_their_checks():
    cfg = stop_flags(StopConfig(), warmup=5, metric="student_f1", combine="all", mode="min",
                     min_delta=0.01)
    assert (cfg.warmup_epochs, cfg.metric, cfg.combine, cfg.mode) == (5, "student_f1", "all",
                                                                      "min")
    assert cfg.policies == ("plateau",) and cfg.plateau.min_delta == 0.01
    with pytest.raises(ConfigError, match="key 'combine' = 'some' is not one of any, all"):
        stop_flags(StopConfig(), combine="some")
    with pytest.raises(ConfigError, match="key 'patience' = 0 must be >= 1"):
        stop_flags(StopConfig(), patience=0)


def test_flags_none_change_nothing():
    cfg = stop(policies=["plateau"], plateau={"patience": 7})
    assert stop_flags(cfg) == cfg


def test_specs_set_dotted_bare_and_short_keys():
    cfg = parse_spec("plateau+budget:patience=4,kwh=0.3,budget.lookback=2,warmup=1")
    assert cfg.policies == ("plateau", "budget")
    assert (cfg.plateau.patience, cfg.budget.kwh, cfg.budget.lookback, cfg.warmup_epochs) == (
        4, 0.3, 2, 1)
    with pytest.raises(ConfigError, match=r"--policy 'budget:patience=3': unknown key"):
        parse_spec("budget:patience=3")  # not a parameter of the budget policy
    with pytest.raises(ConfigError, match="is not KEY=VALUE"):
        parse_spec("plateau:5")


def test_make_policy_combines_specs_any_of_with_the_cap():
    p = make_policy(["plateau:patience=2", "budget:kwh=0.5"], max_epochs=30)
    assert kinds(p) == ["plateau", "budget", "max-epochs"]
    assert p.policies[0].patience == 2 and p.policies[1].kwh == 0.5 and p.policies[2].n == 30
    only = make_policy("plateau+target:f1=0.5,combine=all", max_epochs=9)
    assert isinstance(only.policies[0], AllOf)


def test_default_names_the_recommended_policy_everywhere():
    from greensed.stopping.build import DEFAULT_SPEC

    expected = parse_spec(DEFAULT_SPEC)
    assert parse_spec("default") == expected
    assert stop_flags(StopConfig(), stop=["default"]) == expected
    assert build_policy(stop(policies=["default"]), 40) == build_policy(expected, 40)
    assert make_policy("default", max_epochs=40) == make_policy(DEFAULT_SPEC, max_epochs=40)
    # Another policy beside it, and a flag after it, still apply.
    both = stop_flags(StopConfig(), stop=["default"], budget_kwh=0.5)
    assert both.policies == (*expected.policies, "budget") and both.budget.kwh == 0.5
    from greensed.stopping.build import DEFAULT_WATCHES

    for metric in ("student_f1", "teacher_f1"):  # the default's own metric, whatever the recipe's
        assert parse_spec("default", StopConfig(metric=metric)).metric == DEFAULT_WATCHES


def test_default_watches_the_metric_it_was_chosen_on_in_every_entry_point():
    from greensed.runlog import EpochRecord
    from greensed.stopping.build import DEFAULT_SETTING, DEFAULT_SPEC, DEFAULT_WATCHES
    from greensed.study.replay import parse_policy_spec

    assert DEFAULT_SPEC == f"{DEFAULT_SETTING},metric={DEFAULT_WATCHES}"
    other = "student_f1" if DEFAULT_WATCHES == "teacher_f1" else "teacher_f1"
    recipe = StopConfig(metric=other, policies=("default",))  # a recipe's own metric
    watched = {
        "train": stop_flags(StopConfig(metric=other), stop=["default"]).metric,
        "recipe": build_policy(recipe, 40).policies[0].metric,
        "replay": parse_policy_spec("default", StopConfig(metric=other)).cfg.metric,
        "library": make_policy("default", max_epochs=40).policies[0].metric,
        # the Lightning callback builds with its monitor as the fill-in metric
        "lightning": make_policy("default", max_epochs=40, metric="val_f1").policies[0].metric,
    }
    assert set(watched.values()) == {DEFAULT_WATCHES}, watched
    # an explicit --metric flag still wins
    assert stop_flags(StopConfig(), stop=["default"], metric=other).metric == other
    # and the stop reason names the metric: flat on it, rising on the other
    flat = [EpochRecord(epoch=i, metrics={DEFAULT_WATCHES: 0.5 + 0.003 * math.sin(1.7 * i),
                                          other: 0.01 * i}) for i in range(1, 40)]
    policy = make_policy("default", max_epochs=60)
    d = next(d for n in range(1, 40) if (d := policy.decide(flat[:n])).stop)
    assert f" {DEFAULT_WATCHES} " in d.reason and other not in d.reason


def test_the_lightning_callback_watches_the_defaults_metric():
    from greensed.stopping.build import DEFAULT_WATCHES

    L = pytest.importorskip("greensed.lightning")
    cb = L.EnergyEarlyStopping(stop="default", monitor="val_f1", meter="none")
    assert watched_metrics(cb._policy(40)) == [DEFAULT_WATCHES]
    # no monitor needed: the default names its metric
    assert watched_metrics(L.EnergyEarlyStopping(stop="default", meter="none")._policy(40)) == [
        DEFAULT_WATCHES]
