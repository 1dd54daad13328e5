"""The derivative rule table. Importing this package registers every rule module."""

from . import arithmetic, casts, math, memory, special  # noqa: F401  (registration)
from .registry import (
    FUNCTIONS,
    RULES,
    Allocation,
    Context,
    Effects,
    FunctionRule,
    Kept,
    Rule,
    alias,
    custom,
    effects,
    function_rule,
    linear,
    lookup,
    no_derivative,
    rule_key,
    smooth,
)

__all__ = [
    "FUNCTIONS",
    "RULES",
    "Allocation",
    "Context",
    "Effects",
    "FunctionRule",
    "Kept",
    "Rule",
    "alias",
    "custom",
    "effects",
    "function_rule",
    "linear",
    "lookup",
    "no_derivative",
    "rule_key",
    "smooth",
]
