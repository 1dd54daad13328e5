"""The enzpy AD engine on LLVM IR. Knows nothing of Numba.

`forward(module_text, fn_name, activities)` synthesizes `fwddiffe_<fn>`; see
docs/architecture.md for the calling contract.
"""

from .analysis.activity import Activity
from .errors import EngineError, NoDerivativeError
from .forward import ForwardResult, forward
from .reverse import ReverseResult, reverse

__all__ = [
    "Activity",
    "EngineError",
    "ForwardResult",
    "NoDerivativeError",
    "ReverseResult",
    "forward",
    "reverse",
]
