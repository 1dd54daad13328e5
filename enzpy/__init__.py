"""enzpy: Enzyme-style automatic differentiation of Numba-compiled Python, on LLVM IR.

>>> import numpy as np, enzpy as ez
>>> @ez.enzyme_jit
... def f(x):
...     return (x * x).sum()
>>> ez.autodiff(ez.Forward, f, ez.Duplicated(np.array([3.0]), np.array([1.0])))
6.0
"""

from . import linalg  # noqa: F401  (rules for np.linalg, np.sort, np.median)
from .annotations import (
    Active,
    BatchDuplicated,
    BatchDuplicatedNoNeed,
    Const,
    Duplicated,
    DuplicatedNoNeed,
)
from .api import autodiff, gradient, jvp, vjp
from .derivatives import last_tape_bytes, release_tapes
from .errors import (
    AnnotationError,
    DroppedDerivativeWarning,
    EnzpyError,
    NoDerivativeError,
    ShadowError,
)
from .explain import explain
from .higher import hessian, hvp
from .jacobian import greedy_coloring, jacobian
from .jit import EnzymeJit, enzyme_jit
from .modes import (
    Forward,
    ForwardWithPrimal,
    Mode,
    Reverse,
    ReverseSplitNoPrimal,
    ReverseSplitWithPrimal,
    ReverseWithPrimal,
)
from .rule_check import RuleCheck, check_rule
from .rules import (
    RuleError,
    augmented_rule,
    forward_rule,
    inactive,
    inactive_arg,
    reverse_rule,
)
from .split import Tape, autodiff_thunk

__all__ = [
    "Active",
    "AnnotationError",
    "BatchDuplicated",
    "BatchDuplicatedNoNeed",
    "Const",
    "DroppedDerivativeWarning",
    "Duplicated",
    "DuplicatedNoNeed",
    "EnzpyError",
    "EnzymeJit",
    "Forward",
    "ForwardWithPrimal",
    "Mode",
    "NoDerivativeError",
    "Reverse",
    "ReverseSplitNoPrimal",
    "ReverseSplitWithPrimal",
    "ReverseWithPrimal",
    "RuleCheck",
    "RuleError",
    "ShadowError",
    "Tape",
    "augmented_rule",
    "autodiff",
    "autodiff_thunk",
    "check_rule",
    "enzyme_jit",
    "explain",
    "greedy_coloring",
    "forward_rule",
    "gradient",
    "hessian",
    "hvp",
    "inactive",
    "inactive_arg",
    "jacobian",
    "jvp",
    "last_tape_bytes",
    "release_tapes",
    "reverse_rule",
    "vjp",
]
