"""`x ** n` for a float `x` and an integer `n` as LLVM's `llvm.powi`.

Numba compiles it as a function with a loop (repeated squaring), which a derivative would
keep per call on the tape (a pair potential's `(s / r2) ** 3` in a double loop cost the
gradient 11× the primal). Its definition is replaced by the intrinsic, which has a rule,
which LLVM expands into the same multiplications for a constant `n`, and which leaves the
function small enough to be inlined. Numba's own fallback stays: `pow` beyond |n| > 2^16.
"""

from __future__ import annotations

import functools
import re

import llvmlite.binding as llvm
from numba.core.compiler_lock import global_compiler_lock
from numba.core.registry import cpu_target

from . import capture
from .names import demangle

_NAME = "numba.cpython.numbers.int_power_impl.<locals>.int_power"
_DEFINE = re.compile(
    r"^define [^@\n]*@(?P<name>_ZN\S+)\(ptr [^,]*%\S+, ptr [^,]*%\S+, "
    r"(?P<float>double|float) %\S+, i64 %\S+\)",
    re.M,
)
_BODY = """
define i32 @{name}(ptr noalias %retptr, ptr noalias %excinfo, {f} %x, i64 %n) {{
entry:
  %shifted = add i64 %n, 65536
  %small = icmp ule i64 %shifted, 131072
  br i1 %small, label %squares, label %general

squares:
  %n32 = trunc i64 %n to i32
  %p = call {f} @llvm.powi.{s}.i32({f} %x, i32 %n32)
  store {f} %p, ptr %retptr
  ret i32 0

general:
  %y = sitofp i64 %n to {f}
  %q = call {f} @llvm.pow.{s}({f} %x, {f} %y)
  store {f} %q, ptr %retptr
  ret i32 0
}}

declare {f} @llvm.powi.{s}.i32({f}, i32)
declare {f} @llvm.pow.{s}({f}, {f})
"""


def powers_as_intrinsics(texts: list[str]) -> list[str]:
    """`texts` with each module defining Numba's float `x ** n` replaced by one defining
    the same symbol through `llvm.powi`."""
    out = [_as_intrinsic(text) for text in texts]
    if out != texts:
        _define_runtime_powers()
    return out


def _as_intrinsic(text: str) -> str:
    match = _DEFINE.search(text)
    if match is None or demangle(match["name"]) != _NAME:
        return text
    f = match["float"]
    return _BODY.format(name=match["name"], f=f, s="f64" if f == "double" else "f32")


# compiler-rt's repeated squaring (Numba's too), for `double` and `float`
_RUNTIME = """
define {f} @"enzpy.{symbol}"({f} %x, i32 %n) {{
entry:
  %negative = icmp slt i32 %n, 0
  %wide = sext i32 %n to i64
  %minus = sub i64 0, %wide
  %m0 = select i1 %negative, i64 %minus, i64 %wide
  br label %loop

loop:
  %m = phi i64 [ %m0, %entry ], [ %m1, %square ]
  %r = phi {f} [ 1.0, %entry ], [ %r1, %square ]
  %a = phi {f} [ %x, %entry ], [ %a1, %square ]
  %done = icmp eq i64 %m, 0
  br i1 %done, label %exit, label %square

square:
  %bit = trunc i64 %m to i1
  %ra = fmul {f} %r, %a
  %r1 = select i1 %bit, {f} %ra, {f} %r
  %m1 = lshr i64 %m, 1
  %a1 = fmul {f} %a, %a
  br label %loop

exit:
  %inverse = fdiv {f} 1.0, %r
  %out = select i1 %negative, {f} %inverse, {f} %r
  ret {f} %out
}}
"""


@functools.cache
def _define_runtime_powers() -> None:
    """The runtime functions LLVM calls for `llvm.powi` with an exponent it does not know
    (compiler-rt's `__powidf2`, `__powisf2`), which Numba's JIT does not provide."""
    symbols = {"__powidf2": "double", "__powisf2": "float"}
    text = "".join(_RUNTIME.format(f=f, symbol=symbol) for symbol, f in symbols.items())
    with global_compiler_lock, capture.suspended():
        library = cpu_target.target_context.codegen().create_library("enzpy.powers")
        library.add_llvm_module(llvm.parse_assembly(text))
        library.finalize()
    for symbol in symbols:
        llvm.add_symbol(symbol, library.get_pointer_to_function(f"enzpy.{symbol}"))
