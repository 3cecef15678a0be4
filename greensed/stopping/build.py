"""From a StopConfig (recipe ``[stop]`` + CLI flags) to one checked policy."""

from __future__ import annotations

import difflib

from greensed.config import StopConfig
from greensed.errors import ConfigError
from greensed.stopping.base import Policy
from greensed.stopping.policies import AllOf, AnyOf, Budget, Marginal, MaxEpochs, Plateau, Target

POLICY_NAMES = ("plateau", "budget", "target", "marginal", "max-epochs")
COMBINE = ("any", "all")


def _check_name(name: str, where: str) -> str:
    norm = name.strip().lower().replace("_", "-")
    if norm == "max-epoch":
        norm = "max-epochs"
    if norm not in POLICY_NAMES:
        close = difflib.get_close_matches(norm, POLICY_NAMES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"{where}: unknown stop policy {name!r}{hint}; choose from {', '.join(POLICY_NAMES)}"
        )
    return norm


def build_policy(cfg: StopConfig, max_epochs: int) -> Policy:
    """The combined policy for a run, checked; ConfigError before any training.

    The max-epochs cap is always appended. Values set for policies that are not
    listed (e.g. ``budget_kwh`` without ``budget``) are not used.
    """
    if cfg.combine not in COMBINE:
        raise ConfigError(f"[stop] combine = {cfg.combine!r} must be 'any' or 'all'")
    names: list[str] = []
    for raw in cfg.policies:
        name = _check_name(raw, "[stop] policies")
        if name not in names:
            names.append(name)
    children: list[Policy] = []
    for name in names:
        if name == "plateau":
            children.append(
                Plateau(
                    metric=cfg.metric,
                    mode=cfg.mode,
                    patience=cfg.patience,
                    min_delta=cfg.min_delta,
                    warmup_epochs=cfg.warmup_epochs,
                )
            )
        elif name == "budget":
            if cfg.budget_kwh is None:
                raise ConfigError(
                    "stop policy 'budget' needs a budget: --budget-kwh X or [stop] budget_kwh"
                )
            children.append(Budget(cfg.budget_kwh))
        elif name == "target":
            if cfg.target_f1 is None:
                raise ConfigError(
                    "stop policy 'target' needs a value: --target-f1 X or [stop] target_f1"
                )
            children.append(Target(cfg.target_f1, metric=cfg.metric, mode=cfg.mode))
        elif name == "marginal":
            if cfg.min_f1_per_kwh is None:
                raise ConfigError(
                    "stop policy 'marginal' needs a rate: --min-f1-per-kwh X "
                    "or [stop] min_f1_per_kwh"
                )
            children.append(
                Marginal(
                    cfg.min_f1_per_kwh,
                    metric=cfg.metric,
                    mode=cfg.mode,
                    window=cfg.marginal_window,
                    warmup_epochs=cfg.warmup_epochs,
                )
            )
        # "max-epochs" adds nothing: the cap below is always there.
    children.append(MaxEpochs(max_epochs))
    policy: Policy = AllOf(children) if cfg.combine == "all" else AnyOf(children)
    policy.check_config()
    return policy


def parse_stop_cli(
    cfg: StopConfig,
    *,
    stop: list[str] | None = None,
    patience: int | None = None,
    min_delta: float | None = None,
    budget_kwh: float | None = None,
    target_f1: float | None = None,
    min_f1_per_kwh: float | None = None,
    warmup: int | None = None,
    metric: str | None = None,
    combine: str | None = None,
    mode: str | None = None,
    marginal_window: int | None = None,
) -> None:
    """Apply the stopping CLI flags onto ``cfg`` in place (None: flag not given).

    ``--stop`` (repeatable, or comma-separated) replaces the recipe's policy
    list; ``--stop max-epochs`` alone means only the epoch cap. A value flag
    enables its policy: ``--budget-kwh`` -> budget, ``--target-f1`` -> target,
    ``--min-f1-per-kwh`` -> marginal, ``--patience``/``--min-delta`` -> plateau.
    Values are checked later by :func:`build_policy`.
    """
    only_cap = False
    if stop:
        names: list[str] = []
        for item in stop:
            for part in item.split(","):
                if part.strip():
                    name = _check_name(part, "--stop")
                    if name not in names:
                        names.append(name)
        only_cap = "max-epochs" in names
        if only_cap and len(names) > 1:
            others = ", ".join(n for n in names if n != "max-epochs")
            raise ConfigError(
                f"--stop max-epochs means only the epoch cap; drop it or drop {others}"
            )
        cfg.policies = [n for n in names if n != "max-epochs"]

    implied: list[tuple[str, str, object]] = [
        ("plateau", "--patience", patience),
        ("plateau", "--min-delta", min_delta),
        ("budget", "--budget-kwh", budget_kwh),
        ("target", "--target-f1", target_f1),
        ("marginal", "--min-f1-per-kwh", min_f1_per_kwh),
    ]
    for policy, flag, value in implied:
        if value is None:
            continue
        if only_cap:
            raise ConfigError(f"--stop max-epochs means only the epoch cap; {flag} contradicts it")
        if policy not in cfg.policies:
            cfg.policies = [*cfg.policies, policy]

    if patience is not None:
        cfg.patience = patience
    if min_delta is not None:
        cfg.min_delta = float(min_delta)
    if budget_kwh is not None:
        cfg.budget_kwh = float(budget_kwh)
    if target_f1 is not None:
        cfg.target_f1 = float(target_f1)
    if min_f1_per_kwh is not None:
        cfg.min_f1_per_kwh = float(min_f1_per_kwh)
    if warmup is not None:
        cfg.warmup_epochs = warmup
    if metric is not None:
        cfg.metric = metric
    if combine is not None:
        if combine not in COMBINE:
            raise ConfigError(f"--combine {combine!r} must be 'any' or 'all'")
        cfg.combine = combine
    if mode is not None:
        if mode not in ("max", "min"):
            raise ConfigError(f"--mode {mode!r} must be 'max' or 'min'")
        cfg.mode = mode
    if marginal_window is not None:
        cfg.marginal_window = marginal_window
