"""Analyses of IR functions: control flow, dominators, activity. Each returns an immutable
result and takes what it needs explicitly."""

from .activity import Activity, ActivityResult, activity
from .cfg import CFG, cfg, dominators

__all__ = ["CFG", "Activity", "ActivityResult", "activity", "cfg", "dominators"]
