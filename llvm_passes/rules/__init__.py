"""The derivative rule table. Importing this package registers every rule module."""

from . import arithmetic, casts, math, memory, special  # noqa: F401  (registration)
from .registry import (
    RULES,
    Allocation,
    Context,
    Effects,
    Kept,
    Rule,
    alias,
    custom,
    effects,
    linear,
    lookup,
    no_derivative,
    rule_key,
    smooth,
)

__all__ = [
    "RULES",
    "Allocation",
    "Context",
    "Effects",
    "Kept",
    "Rule",
    "alias",
    "custom",
    "effects",
    "linear",
    "lookup",
    "no_derivative",
    "rule_key",
    "smooth",
]
