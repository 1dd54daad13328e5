"""Calls of compiled Numba functions from jitted code without linking their code.

Numba links the code of every function a jitted function calls into the caller, where LLVM
optimizes and compiles it again. A helper that generated code calls in every derivative call
(the memory checks, the shadow layouts), or a large one (a rule for `np.linalg.pinv`, whose
LAPACK wrappers each glue calling it would optimize again), is better called where its
machine code already is: `by_address(f)` is an intrinsic with `f`'s arguments that calls
`f`'s compiled symbol as an external function, resolved to its machine code by LLVM's symbol
table. The caller's IR still names the symbol, so differentiating the caller (nested
differentiation) finds its IR as it finds any Numba callee's, and a derivative kept on disk
links it in (`ADDRESSED` names the symbols others leave out). A caller must not be cached on
disk by Numba (the symbol is resolved in this process only): enzpy's generated code, its only
user, is not.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from typing import Any

import llvmlite.binding as llvm
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["by_address", "ADDRESSED"]

ADDRESSED: set[str] = set()  # the symbols called by address


@functools.cache
def by_address(dispatcher: Any, small: int = 0) -> Any:
    """An intrinsic calling the njit function `dispatcher`, compiled for the argument types
    it is called with, without linking it into the caller; exceptions propagate. A compiled
    function of at most `small` instructions (its callees' included) is linked as Numba
    links a call, where LLVM may inline it. (With `NUMBA_DISABLE_JIT=1`, or for a function
    with defaults or `*args`, which an intrinsic cannot take, the function itself: called as
    usual.)"""
    if not hasattr(dispatcher, "py_func"):
        return dispatcher
    parameters = inspect.signature(dispatcher.py_func).parameters.values()
    if any(p.kind is not p.POSITIONAL_OR_KEYWORD or p.default is not p.empty for p in parameters):
        return dispatcher
    name = dispatcher.py_func.__name__

    def typer(typingctx: Any, *args: types.Type) -> Any:
        sig = typingctx.resolve_function_type(types.Dispatcher(dispatcher), args, {})
        compiled = dispatcher.overloads[sig.args]

        def codegen(context: Any, builder: Any, signature: Any, values: Sequence[Any]) -> Any:
            symbol = compiled.fndesc.mangled_name
            if small and _at_most(compiled.library, small):
                context.add_linking_libs([compiled.library])
            else:
                llvm.add_symbol(symbol, compiled.library.get_pointer_to_function(symbol))
                ADDRESSED.add(symbol)
            fnty = context.call_conv.get_function_type(sig.return_type, sig.args)
            fn = cgutils.get_or_insert_function(builder.module, fnty, symbol)
            cast = [
                context.cast(builder, v, t, u)
                for v, t, u in zip(values, signature.args, sig.args, strict=True)
            ]
            status, out = context.call_conv.call_function(
                builder, fn, sig.return_type, sig.args, cast
            )
            with cgutils.if_unlikely(builder, status.is_error):
                context.call_conv.return_status_propagate(builder, status)
            return out

        return sig, codegen

    # an intrinsic of the function's own arity (intrinsics take no *args)
    params = ", ".join(p.name for p in parameters)
    ns: dict[str, Any] = {"_typer": typer}
    src = f"def {name}(typingctx, {params}):\n    return _typer(typingctx, {params})\n"
    exec(compile(src, f"<enzpy.bridge.by_address {name}>", "exec"), ns)  # noqa: S102
    return intrinsic(ns[name])


def _at_most(library: Any, limit: int) -> bool:
    """Whether `library`'s code has at most `limit` instructions (counted until it has more)."""
    n = 0
    for fn in library._final_module.functions:
        for block in fn.blocks:
            n += sum(1 for _ in block.instructions)
            if n > limit:
                return False
    return True
