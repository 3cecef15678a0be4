"""Stopping policies: pure functions of the run history (no torch, no hardware).

See ``docs/policies.md``.
"""

from greensed.stopping.base import CONTINUE, Decision, History, Policy, best_record
from greensed.stopping.build import (
    POLICIES,
    POLICY_NAMES,
    build_policy,
    make_policy,
    parse_spec,
    stop_flags,
)
from greensed.stopping.policies import AllOf, AnyOf, Budget, Marginal, MaxEpochs, Plateau, Target

__all__ = [
    "CONTINUE",
    "POLICY_NAMES",
    "AllOf",
    "AnyOf",
    "Budget",
    "Decision",
    "History",
    "Marginal",
    "MaxEpochs",
    "Plateau",
    "Policy",
    "Target",
    "best_record",
    "POLICIES",
    "build_policy",
    "make_policy",
    "parse_spec",
    "stop_flags",
]
