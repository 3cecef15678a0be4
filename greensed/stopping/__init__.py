"""Stopping policies: pure functions of the run history (no torch, no hardware).

See ``docs/policies.md``.
"""

from greensed.stopping.base import CONTINUE, Decision, History, Policy, best_record, watchers
from greensed.stopping.build import (
    POLICIES,
    POLICY_NAMES,
    build_policy,
    describe,
    make_policy,
    parse_spec,
    stop_flags,
)
from greensed.stopping.forecast import Forecast, RunPrediction, predict_run
from greensed.stopping.policies import AllOf, AnyOf, Budget, Marginal, MaxEpochs, Plateau, Target

__all__ = [
    "CONTINUE",
    "POLICIES",
    "POLICY_NAMES",
    "AllOf",
    "AnyOf",
    "Budget",
    "Decision",
    "Forecast",
    "History",
    "Marginal",
    "MaxEpochs",
    "Plateau",
    "Policy",
    "RunPrediction",
    "Target",
    "best_record",
    "build_policy",
    "describe",
    "make_policy",
    "parse_spec",
    "predict_run",
    "stop_flags",
    "watchers",
]
