"""The Numba bridge: IR capture, argument ABI, and linking of derivative code."""

from . import capture as capture  # installs the IR capture hook
from . import runtime as runtime  # Numba's runtime in the rule table
from .abi import Activity, LLVMArg, argument_layout, llvm_activities, shadowed_args
from .capture import compiled_function, function_ir, modules_for
from .link import DerivativeDriver, make_driver, make_drivers

__all__ = [
    "Activity",
    "DerivativeDriver",
    "LLVMArg",
    "argument_layout",
    "compiled_function",
    "function_ir",
    "llvm_activities",
    "make_driver",
    "make_drivers",
    "modules_for",
    "shadowed_args",
]
