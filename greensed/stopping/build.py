"""From a StopConfig (recipe ``[stop]`` + flags, or a ``NAME:KEY=VALUE`` spec) to
one checked policy. The same specs serve ``greensed replay --policy``, the
library and the Lightning callback."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Sequence
from typing import Any

from greensed.errors import ConfigError
from greensed.fields import load, suggest
from greensed.stopping.base import Policy
from greensed.stopping.forecast import Forecast
from greensed.stopping.params import StopConfig, Watched
from greensed.stopping.policies import AllOf, AnyOf, Budget, Marginal, MaxEpochs, Plateau, Target

# Name -> policy class; each class's own parameters are the [stop.<name>] table.
POLICIES: dict[str, type] = {"plateau": Plateau, "budget": Budget, "target": Target,
                             "marginal": Marginal, "forecast": Forecast}
# The policy greensed recommends, chosen from the policy benchmark's held-out figures
# (docs/policies.md, "The default"): `--stop default`, `--policy default`,
# `[stop] policies = ["default"]`. Its parameters are these, whatever the recipe's
# tables say; to tune them, name the policy itself. It watches the metric its figures
# were obtained on, in every entry point (train, replay, the library, the Lightning
# callback); an explicit --metric flag still overrides it, a recipe's [stop] metric not.
DEFAULT_SETTING = "forecast:min_gain_per_kwh=0,min_prob=0.05,rel_gain=0.005,warmup=10"
DEFAULT_WATCHES = "teacher_f1"
DEFAULT_SPEC = f"{DEFAULT_SETTING},metric={DEFAULT_WATCHES}"
POLICY_NAMES = (*POLICIES, "max-epochs", "default")
# Short keys of the spec mini-syntax and of the flags, for a policy's parameters.
ALIASES = {"kwh": "budget.kwh", "budget_kwh": "budget.kwh", "budget": "budget.kwh",
           "f1": "target.value", "target": "target.value",
           "target_f1": "target.value", "rate": "marginal.min_f1_per_kwh",
           "min_f1_per_kwh": "marginal.min_f1_per_kwh", "marginal_window": "marginal.window",
           "warmup": "warmup_epochs"}


def policy_name(name: str, where: str) -> str:
    norm = name.strip().lower().replace("_", "-")
    if norm == "max-epoch":
        norm = "max-epochs"
    if norm not in POLICY_NAMES:
        close = difflib.get_close_matches(norm, POLICY_NAMES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"{where}: unknown stop policy {name!r}{hint}; choose from {', '.join(POLICY_NAMES)}")
    return norm


def _one(name: str, cfg: StopConfig, max_epochs: int) -> Policy:
    cls = POLICIES[name]
    shared = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(Watched)
              if issubclass(cls, Watched)}
    cap = {"max_epochs": max_epochs} if cls.takes_cap else {}
    return cls(**shared, **cap, **dataclasses.asdict(getattr(cfg, name)))


def build_policy(cfg: StopConfig, max_epochs: int) -> Policy:
    """The combined policy for a run, checked; ConfigError before any training.

    The max-epochs cap is always appended. Parameters of policies that are not
    listed (e.g. ``[stop.budget] kwh`` without ``budget``) are not used.
    """
    children = [*_listed(cfg, max_epochs), MaxEpochs(max_epochs)]
    return AnyOf(children) if cfg.combine == "any" else AllOf(children)


def describe(cfg: StopConfig) -> str:
    """A short label of the listed policies in the spec syntax, each with its key
    parameter and any other that is not its default (``plateau:patience=2 +
    budget:kwh=0.5``; ``&`` joins them for ``combine = "all"``)."""
    parts = []
    for name in cfg.policies:
        params = getattr(cfg, name, None)
        if params is None:
            parts.append(name)
            continue
        fs = dataclasses.fields(params)
        shown = [f"{f.name}={_g(getattr(params, f.name))}" for i, f in enumerate(fs)
                 if i == 0 or getattr(params, f.name) != f.default]
        parts.append(f"{name}:" + ",".join(shown))
    joiner = " + " if cfg.combine == "any" else " & "
    return joiner.join(parts) or "max-epochs"


def _g(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _listed(cfg: StopConfig, max_epochs: int) -> list[Policy]:
    cfg = expand_default(cfg, "[stop] policies")
    names = dict.fromkeys(policy_name(n, "[stop] policies") for n in cfg.policies)
    return [_one(n, cfg, max_epochs) for n in names if n != "max-epochs"]


def expand_default(cfg: StopConfig, where: str) -> StopConfig:
    """``cfg`` with "default" in its policies replaced by DEFAULT_SPEC's policies and
    parameters (its other policies kept)."""
    names = [policy_name(n, where) for n in cfg.policies]
    if "default" not in names:
        return cfg
    spec = parse_spec(DEFAULT_SPEC, cfg)
    rest = [n for n in names if n != "default" and n not in spec.policies]
    return dataclasses.replace(spec, policies=(*spec.policies, *rest))


def with_params(cfg: StopConfig, values: dict[str, Any], where: str,
                names: Sequence[str] = ()) -> StopConfig:
    """``cfg`` with parameters set by key: a [stop] key (``metric``), a dotted
    ``policy.key`` (``plateau.patience``), an alias (``kwh``), or a bare key of one of
    ``names``' policies (``patience`` for plateau)."""
    table: dict[str, Any] = {}
    shared = {f.name for f in dataclasses.fields(StopConfig)} - set(POLICIES)
    for raw, value in values.items():
        key = ALIASES.get(raw, raw)
        if "." not in key and key not in shared:
            own = {n: {f.name for f in dataclasses.fields(getattr(StopConfig, n))}
                   for n in (names or POLICIES) if n in POLICIES}
            owners = [n for n, keys in own.items() if key in keys]
            if len(owners) != 1:
                known = sorted(shared.union(*own.values()))
                raise ConfigError(f"{where}: unknown key '{raw}'{suggest(raw, known)}")
            key = f"{owners[0]}.{key}"
        policy, _, param = key.rpartition(".")
        if policy:
            if policy not in POLICIES:
                raise ConfigError(f"{where}: unknown stop policy in key '{raw}'")
            table.setdefault(policy, {})[param] = value
        else:
            table[key] = value
    return load(StopConfig, table, where, cfg)


def stop_flags(cfg: StopConfig, *, stop: list[str] | None = None, **values: Any) -> StopConfig:
    """The stopping flags of `greensed train` and `greensed replay` applied to ``cfg``
    (a value of None: flag not given).

    ``--stop`` (repeatable, or comma-separated) replaces the recipe's policy list;
    ``--stop max-epochs`` alone means only the epoch cap. A policy's own value flag
    enables it: ``--budget-kwh`` -> budget, ``--target-f1`` -> target,
    ``--min-f1-per-kwh``/``--window`` -> marginal, ``--patience``/``--min-delta`` ->
    plateau. Every value is checked here, naming the flag's key.
    """
    given = {k: v for k, v in values.items() if v is not None}
    names = list(cfg.policies)
    only_cap = False
    if stop:
        parts = [p for item in stop for p in item.split(",") if p.strip()]
        names = list(dict.fromkeys(policy_name(p, "--stop") for p in parts))
        only_cap = "max-epochs" in names
        if only_cap and len(names) > 1:
            others = ", ".join(n for n in names if n != "max-epochs")
            raise ConfigError(f"--stop max-epochs means only the epoch cap; drop it or drop "
                              f"{others}")
        names = [n for n in names if n != "max-epochs"]
        if "default" in names:  # its parameters first; the other flags then apply
            cfg = expand_default(dataclasses.replace(cfg, policies=tuple(names)), "--stop")
            names = list(cfg.policies)
    out = with_params(cfg, given, "command line [stop]", tuple(POLICIES))
    for key in given:
        owner = _owner(ALIASES.get(key, key))
        if owner is None:
            continue
        if only_cap:
            raise ConfigError(f"--stop max-epochs means only the epoch cap; --"
                              f"{key.replace('_', '-')} contradicts it")
        if owner not in names:
            names.append(owner)
    return dataclasses.replace(out, policies=tuple(names))


def _owner(key: str) -> str | None:
    """The policy whose own parameter ``key`` is (None: a shared [stop] key)."""
    if "." in key:
        return key.split(".", 1)[0]
    owners = [n for n in POLICIES if key in {f.name for f in
                                             dataclasses.fields(getattr(StopConfig, n))}]
    return owners[0] if len(owners) == 1 else None


def parse_spec(spec: str, base: StopConfig | None = None) -> StopConfig:
    """``"plateau:patience=5,min_delta=0.005"`` -> a StopConfig with that policy.

    Form: ``NAMES[:KEY=VALUE,...]``; NAMES is one policy or several joined by ``+``
    (combined with ``combine``, default any). Keys are [stop] keys, a policy's own
    keys (bare, dotted ``budget.kwh``, or the short forms kwh, f1, rate, window,
    warmup). ``base`` gives the defaults (e.g. ``--metric``).
    """
    names_part, _, params = spec.partition(":")
    names = [policy_name(n, f"--policy {spec!r}") for n in names_part.split("+") if n.strip()]
    if not names:
        raise ConfigError(f"--policy {spec!r}: no policy name (e.g. 'plateau:patience=5')")
    values: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in params.split(","))):
        key, eq, raw = item.partition("=")
        if not eq or not key.strip() or not raw.strip():
            raise ConfigError(f"--policy {spec!r}: {item!r} is not KEY=VALUE")
        values[key.strip()] = _value(raw.strip())
    cfg = dataclasses.replace(base or StopConfig(),
                              policies=tuple(n for n in names if n != "max-epochs"))
    cfg = expand_default(cfg, f"--policy {spec!r}")
    return with_params(cfg, values, f"--policy {spec!r}", cfg.policies)


def make_policy(specs: Sequence[str] | str, *, max_epochs: int,
                base: StopConfig | None = None, metric: str | None = None,
                mode: str | None = None) -> Policy:
    """The policy of one spec, or of several specs (any of them stops), plus the cap.

    ``metric`` and ``mode`` set what the policies that watch a metric watch (as
    ``base``'s ``[stop] metric``/``mode``; a spec's own ``metric=`` still wins).
    """
    given = {k: v for k, v in (("metric", metric), ("mode", mode)) if v is not None}
    if given:
        base = load(StopConfig, given, "stop policy", base or StopConfig())
    parts: list[Policy] = []
    for spec in [specs] if isinstance(specs, str) else specs:
        children = _listed(parse_spec(spec, base), max_epochs)
        if len(children) == 1:
            parts.append(children[0])
        elif children:
            cfg = parse_spec(spec, base)
            parts.append(AllOf(children) if cfg.combine == "all" else AnyOf(children))
    return AnyOf([*parts, MaxEpochs(max_epochs)])


def _value(raw: str) -> Any:
    for cast in (int, float):
        try:
            return cast(raw)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(raw.lower(), raw)
