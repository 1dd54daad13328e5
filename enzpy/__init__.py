"""enzpy: Enzyme-style automatic differentiation of Numba-compiled Python, on LLVM IR.

>>> import numpy as np, enzpy as ez
>>> @ez.enzyme_jit
... def f(x):
...     return (x * x).sum()
>>> ez.autodiff(ez.Forward, f, ez.Duplicated(np.array([3.0]), np.array([1.0])))
6.0
"""

from .annotations import (
    Active,
    BatchDuplicated,
    BatchDuplicatedNoNeed,
    Const,
    Duplicated,
    DuplicatedNoNeed,
)
from .api import autodiff, gradient
from .derivatives import last_tape_bytes, release_tapes
from .errors import (
    AnnotationError,
    DroppedDerivativeWarning,
    EnzpyError,
    NoDerivativeError,
    ShadowError,
)
from .explain import explain
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
    "ShadowError",
    "Tape",
    "autodiff",
    "autodiff_thunk",
    "enzyme_jit",
    "explain",
    "gradient",
    "last_tape_bytes",
    "release_tapes",
]
