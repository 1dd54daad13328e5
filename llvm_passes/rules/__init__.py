"""The derivative rule table. Importing this package registers every rule module."""

from . import arithmetic, blas, casts, inactive, math, memory, special  # noqa: F401  (registration)
from .registry import RULES, WRITES, Rule, lookup, rule_key

__all__ = ["RULES", "WRITES", "Rule", "lookup", "rule_key"]
