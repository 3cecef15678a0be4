"""Stopping policies: pure functions of the run history (no torch, no hardware).

See ``docs/policies.md``.
"""

from greensed.stopping.base import CONTINUE, Decision, History, Policy
from greensed.stopping.build import POLICY_NAMES, build_policy, parse_stop_cli
from greensed.stopping.forecast import Forecast, RunPrediction, predict_run
from greensed.stopping.policies import AllOf, AnyOf, Budget, Marginal, MaxEpochs, Plateau, Target

__all__ = [
    "CONTINUE",
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
    "build_policy",
    "parse_stop_cli",
    "predict_run",
]
