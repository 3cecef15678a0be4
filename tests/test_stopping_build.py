"""build_policy and parse_stop_cli: config -> checked policy, errors before training."""

from __future__ import annotations

import pytest

from greensed.config import StopConfig
from greensed.errors import ConfigError
from greensed.stopping import AllOf, AnyOf, build_policy, parse_stop_cli


def kinds(policy):
    return [p.name for p in policy.policies]


def test_default_is_only_the_cap():
    p = build_policy(StopConfig(), 200)
    assert isinstance(p, AnyOf) and kinds(p) == ["max-epochs"]
    assert not p.requires_energy


def test_builds_listed_policies_with_values():
    cfg = StopConfig(
        policies=["plateau", "budget", "target", "marginal"],
        patience=5,
        min_delta=0.001,
        budget_kwh=0.5,
        target_f1=0.6,
        min_f1_per_kwh=0.1,
        marginal_window=4,
        warmup_epochs=2,
    )
    p = build_policy(cfg, 50)
    assert kinds(p) == ["plateau", "budget", "target", "marginal", "max-epochs"]
    plateau, budget, target, marginal, cap = p.policies
    assert (plateau.patience, plateau.min_delta, plateau.warmup_epochs) == (5, 0.001, 2)
    assert budget.budget_kwh == 0.5 and target.value == 0.6
    assert (marginal.min_gain_per_kwh, marginal.window) == (0.1, 4)
    assert cap.n == 50 and p.requires_energy


def test_combine_all():
    p = build_policy(StopConfig(policies=["plateau"], combine="all"), 10)
    assert isinstance(p, AllOf)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (StopConfig(policies=["platau"]), "did you mean 'plateau'"),
        (StopConfig(policies=["budget"]), "needs a budget"),
        (StopConfig(policies=["budget"], budget_kwh=-1.0), "budget_kwh = -1.0"),
        (StopConfig(policies=["target"]), "needs a value"),
        (StopConfig(policies=["marginal"]), "needs a rate"),
        (StopConfig(policies=["marginal"], min_f1_per_kwh=0.1, marginal_window=0), "window"),
        (StopConfig(policies=["plateau"], patience=0), "patience = 0"),
        (StopConfig(policies=["plateau"], min_delta=-0.1), "min_delta"),
        (StopConfig(policies=["plateau"], mode="maximum"), "mode"),
        (StopConfig(combine="either"), "combine"),
    ],
)
def test_bad_config_is_a_config_error(cfg, match):
    with pytest.raises(ConfigError, match=match):
        build_policy(cfg, 200)


def test_bad_max_epochs():
    with pytest.raises(ConfigError, match="max epochs"):
        build_policy(StopConfig(), 0)


def test_cli_budget_alone_implies_budget():
    cfg = StopConfig()
    parse_stop_cli(cfg, budget_kwh=0.3)
    assert cfg.policies == ["budget"] and cfg.budget_kwh == 0.3
    assert kinds(build_policy(cfg, 200)) == ["budget", "max-epochs"]


def test_cli_target_and_marginal_imply_their_policies():
    cfg = StopConfig(policies=["plateau"])
    parse_stop_cli(cfg, target_f1=0.5, min_f1_per_kwh=0.2)
    assert cfg.policies == ["plateau", "target", "marginal"]


def test_cli_stop_list_replaces_recipe_list():
    cfg = StopConfig(policies=["budget"], budget_kwh=1.0)
    parse_stop_cli(cfg, stop=["plateau", "marginal"], min_f1_per_kwh=0.1, patience=3)
    assert cfg.policies == ["plateau", "marginal"] and cfg.patience == 3
    assert kinds(build_policy(cfg, 200)) == ["plateau", "marginal", "max-epochs"]


def test_cli_stop_comma_separated_and_deduplicated():
    cfg = StopConfig()
    parse_stop_cli(cfg, stop=["plateau,target", "plateau"], target_f1=0.4)
    assert cfg.policies == ["plateau", "target"]


def test_cli_stop_max_epochs_means_only_the_cap():
    cfg = StopConfig(policies=["plateau"])
    parse_stop_cli(cfg, stop=["max-epochs"])
    assert cfg.policies == []
    assert kinds(build_policy(cfg, 200)) == ["max-epochs"]
    with pytest.raises(ConfigError, match="only the epoch cap"):
        parse_stop_cli(StopConfig(), stop=["max-epochs"], budget_kwh=1.0)
    with pytest.raises(ConfigError, match="only the epoch cap"):
        parse_stop_cli(StopConfig(), stop=["max-epochs", "plateau"])


def test_cli_unknown_policy_suggests():
    with pytest.raises(ConfigError, match=r"--stop: unknown stop policy 'budgt'.*'budget'"):
        parse_stop_cli(StopConfig(), stop=["budgt"])


def test_cli_other_values():
    cfg = StopConfig()
    parse_stop_cli(cfg, warmup=5, metric="student_f1", combine="all", min_delta=0.01)
    assert (cfg.warmup_epochs, cfg.metric, cfg.combine) == (5, "student_f1", "all")
    assert cfg.policies == ["plateau"] and cfg.min_delta == 0.01
    with pytest.raises(ConfigError, match="--combine"):
        parse_stop_cli(StopConfig(), combine="some")


def test_cli_none_changes_nothing():
    cfg = StopConfig(policies=["plateau"], patience=7)
    parse_stop_cli(cfg)
    assert cfg == StopConfig(policies=["plateau"], patience=7)
