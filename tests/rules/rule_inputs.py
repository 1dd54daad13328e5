"""Test inputs for every float rule of `llvm_passes.rules`: a hand-written LLVM function
applying the operation, and sample points (no tests in this module).

A registered smooth / linear / zero rule without an entry here fails
`test_every_rule_has_inputs`: a new rule is tested by registering it and adding its line.

Templates are function bodies in which `{T}` is the float type, `{S}` the intrinsic suffix
(`f64`/`f32`) and `{F}` the C suffix (`""`/`"f"`); arguments are `%x`, `%y`, `%z` and the
body defines `%r`, which is returned. Each case runs in the precisions it lists; float
cases are compared with finite differences of the same template in double (or of `ref`).
Points keep a margin from kinks, poles and domain edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from enzpy.bridge.runtime import FATAL_ERROR, PYTHON_OBJECTS, SCHEDULER
from llvm_passes.rules.memory import INTEGER_ARITHMETIC, INTEGER_ONLY
from llvm_passes.rules.parallel import PARTITION

D, F = "double", "float"
_SUB = {D: {"T": D, "S": "f64", "F": ""}, F: {"T": F, "S": "f32", "F": "f"}}
_ARGS = ("x", "y", "z")


@dataclass(frozen=True)
class Case:
    body: str
    n: int  # number of float arguments
    points: tuple[tuple[float, ...], ...]
    precisions: tuple[str, ...] = (D, F)
    decls: str = ""
    ref: str | None = None  # body of the double reference, when not `body` itself
    rtol: dict[str, float] = field(default_factory=lambda: {D: 1e-6, F: 1e-4})

    def text(self, prec: str, reference: bool = False) -> str:
        """The module text of `@f` in precision `prec`."""
        body = self.ref if reference and self.ref is not None else self.body
        sub = _SUB[prec]
        params = ", ".join(f"{{T}} %{a}" for a in _ARGS[: self.n])
        src = (
            f"define {{T}} @f({params}) {{\nentry:\n"
            + "".join(f"  {line.strip()}\n" for line in body.strip().splitlines())
            + "  ret {T} %r\n}\n\n"
            + self.decls
        )
        return src.replace("{T}", sub["T"]).replace("{S}", sub["S"]).replace("{F}", sub["F"])


def _args(n: int) -> str:
    return ", ".join(f"{{T}} %{a}" for a in _ARGS[:n])


def _types(n: int) -> str:
    return ", ".join(["{T}"] * n)


def intrinsic(name: str, n: int, points) -> Case:
    return Case(
        f"%r = call {{T}} @llvm.{name}.{{S}}({_args(n)})",
        n,
        tuple(points),
        decls=f"declare {{T}} @llvm.{name}.{{S}}({_types(n)})\n",
    )


def libm(name: str, n: int, points) -> dict[str, Case]:
    """Entries for `name` (double) and `namef` (float), each checked in its own precision."""
    case = Case(
        f"%r = call {{T}} @{name}{{F}}({_args(n)})",
        n,
        tuple(points),
        decls=f"declare {{T}} @{name}{{F}}({_types(n)})\n",
    )
    return {name: _only(case, D), name + "f": _only(case, F)}


def helper(name: str, n: int, points) -> dict[str, Case]:
    """Numba's C helpers `numba_<name>` / `numba_<name>f`."""
    return libm(f"numba_{name}", n, points)


def _only(case: Case, prec: str) -> Case:
    return Case(case.body, case.n, case.points, (prec,), case.decls, case.ref, case.rtol)


def opcode(op: str, n: int, points) -> Case:
    return Case(f"%r = {op} {_args(n).replace('{T} %y', '%y')}", n, tuple(points))


def rounding_intrinsic(name: str) -> Case:
    """An integer-returning rounding intrinsic, converted back to float."""
    return Case(
        f"%i = call i64 @llvm.{name}.i64.{{S}}({{T}} %x)\n%r = sitofp i64 %i to {{T}}",
        1,
        _STEPS,
        decls=f"declare i64 @llvm.{name}.i64.{{S}}({{T}})\n",
    )


def rounding_libm(name: str) -> dict[str, Case]:
    case = Case(
        f"%i = call i64 @{name}{{F}}({{T}} %x)\n%r = sitofp i64 %i to {{T}}",
        1,
        _STEPS,
        decls=f"declare i64 @{name}{{F}}({{T}})\n",
    )
    return {name: _only(case, D), name + "f": _only(case, F)}


# ---- sample points -----------------------------------------------------------------------
_REAL = ((0.3,), (-1.7,), (2.4,))
_UNIT = ((0.3,), (-0.6,), (0.85,))  # inside (-1, 1)
_POS = ((0.3,), (1.7,), (12.5,))
_ABOVE1 = ((1.3,), (2.5,), (7.0,))
_PAIRS = ((0.7, 1.9), (-1.3, 0.45), (2.2, -0.8))
_POS_PAIRS = ((0.7, 1.9), (1.3, 0.45), (2.2, 3.1))
_STEPS = ((0.3,), (-1.7,), (2.6,))  # away from integers and half-integers
_PAIRS_NONINT = ((0.7, 1.9), (-5.3, 1.7), (7.9, -2.3))  # x/y away from integers
_GAMMA = ((0.3,), (-1.7,), (2.4,), (9.6,))  # away from the poles; reflection, loop, series

# ---- the table ---------------------------------------------------------------------------
INPUTS: dict[str, Case] = {
    # float arithmetic and casts
    "fadd": opcode("fadd", 2, _PAIRS),
    "fsub": opcode("fsub", 2, _PAIRS),
    "fmul": opcode("fmul", 2, _PAIRS),
    "fdiv": opcode("fdiv", 2, _PAIRS),
    "frem": opcode("frem", 2, _PAIRS_NONINT),
    "fneg": Case("%r = fneg {T} %x", 1, _REAL),
    "freeze": Case("%r = freeze {T} %x", 1, _REAL),
    # float -> double -> float: both casts, checked against the identity
    "fpext": Case(
        "%a = fpext float %x to double\n%r = fptrunc double %a to float",
        1,
        _REAL,
        (F,),
        ref="%r = fadd {T} %x, 0.0",
    ),
    "sitofp": Case("%i = fptosi {T} %x to i32\n%r = sitofp i32 %i to {T}", 1, _STEPS),
    "uitofp": Case("%i = fptoui {T} %x to i32\n%r = uitofp i32 %i to {T}", 1, _POS),
    # trigonometric
    "llvm.sin": intrinsic("sin", 1, _REAL),
    "llvm.cos": intrinsic("cos", 1, _REAL),
    "llvm.tan": intrinsic("tan", 1, _REAL),
    "llvm.asin": intrinsic("asin", 1, _UNIT),
    "llvm.acos": intrinsic("acos", 1, _UNIT),
    "llvm.atan": intrinsic("atan", 1, _REAL),
    "llvm.atan2": intrinsic("atan2", 2, _PAIRS),
    **libm("sin", 1, _REAL),
    **libm("cos", 1, _REAL),
    **libm("tan", 1, _REAL),
    **libm("asin", 1, _UNIT),
    **libm("acos", 1, _UNIT),
    **libm("atan", 1, _REAL),
    **libm("atan2", 2, _PAIRS),
    **libm("hypot", 2, _PAIRS),
    # hyperbolic
    "llvm.sinh": intrinsic("sinh", 1, _REAL),
    "llvm.cosh": intrinsic("cosh", 1, _REAL),
    "llvm.tanh": intrinsic("tanh", 1, _REAL),
    **libm("sinh", 1, _REAL),
    **libm("cosh", 1, _REAL),
    **libm("tanh", 1, _REAL),
    **libm("asinh", 1, _REAL),
    **libm("acosh", 1, _ABOVE1),
    **libm("atanh", 1, _UNIT),
    # exponentials and logarithms
    "llvm.exp": intrinsic("exp", 1, _REAL),
    "llvm.exp2": intrinsic("exp2", 1, _REAL),
    "llvm.exp10": intrinsic("exp10", 1, _REAL),
    "llvm.log": intrinsic("log", 1, _POS),
    "llvm.log2": intrinsic("log2", 1, _POS),
    "llvm.log10": intrinsic("log10", 1, _POS),
    **libm("exp", 1, _REAL),
    **libm("exp2", 1, _REAL),
    **libm("exp10", 1, _REAL),
    **libm("expm1", 1, _REAL),
    **libm("log", 1, _POS),
    **libm("log2", 1, _POS),
    **libm("log10", 1, _POS),
    **libm("log1p", 1, ((0.3,), (-0.6,), (12.5,))),
    # powers and roots
    "llvm.sqrt": intrinsic("sqrt", 1, _POS),
    "llvm.pow": intrinsic("pow", 2, _POS_PAIRS),
    **libm("sqrt", 1, _POS),
    **libm("cbrt", 1, ((0.3,), (-1.7,), (12.5,))),
    **libm("pow", 2, _POS_PAIRS),
    "llvm.powi": Case(
        "%a = call {T} @llvm.powi.{S}.i32({T} %x, i32 3)\n"
        "%b = call {T} @llvm.powi.{S}.i32({T} %y, i32 -2)\n%r = fadd {T} %a, %b",
        2,
        _PAIRS,
        decls="declare {T} @llvm.powi.{S}.i32({T}, i32)\n",
    ),
    "llvm.ldexp": Case(
        "%r = call {T} @llvm.ldexp.{S}.i32({T} %x, i32 3)",
        1,
        _REAL,
        decls="declare {T} @llvm.ldexp.{S}.i32({T}, i32)\n",
    ),
    # sign, magnitude, fused arithmetic, min/max, remainder
    "llvm.fabs": intrinsic("fabs", 1, _REAL),
    "llvm.copysign": intrinsic("copysign", 2, _PAIRS),
    "llvm.fma": intrinsic("fma", 3, ((0.7, 1.9, -0.4), (-1.3, 0.45, 2.0))),
    "llvm.fmuladd": intrinsic("fmuladd", 3, ((0.7, 1.9, -0.4), (-1.3, 0.45, 2.0))),
    **libm("fabs", 1, _REAL),
    **libm("copysign", 2, _PAIRS),
    **libm("fma", 3, ((0.7, 1.9, -0.4), (-1.3, 0.45, 2.0))),
    **libm("fmod", 2, _PAIRS_NONINT),
    **{
        f"llvm.{m}": intrinsic(m, 2, _PAIRS)
        for m in ("minnum", "maxnum", "minimum", "maximum", "minimumnum", "maximumnum")
    },
    **libm("fmin", 2, _PAIRS),
    **libm("fmax", 2, _PAIRS),
    # special functions
    **libm("erf", 1, _REAL),
    **libm("erfc", 1, _REAL),
    **libm("lgamma", 1, _GAMMA),
    **libm("tgamma", 1, _GAMMA),
    # Numba's C helpers
    **helper("erf", 1, _REAL),
    **helper("erfc", 1, _REAL),
    **helper("lgamma", 1, _GAMMA),
    **helper("gamma", 1, _GAMMA),
    # piecewise constant
    **{
        f"llvm.{m}": intrinsic(m, 1, _STEPS)
        for m in ("floor", "ceil", "trunc", "rint", "nearbyint", "round", "roundeven")
    },
    **{f"llvm.{m}": rounding_intrinsic(m) for m in ("lround", "llround", "lrint", "llrint")},
    **{
        k: c
        for m in ("floor", "ceil", "trunc", "rint", "nearbyint", "round", "roundeven")
        for k, c in libm(m, 1, _STEPS).items()
    },
    **{k: c for m in ("lround", "llround", "lrint", "llrint") for k, c in rounding_libm(m).items()},
}

_LDEXP = Case(
    "%r = call {T} @ldexp{F}({T} %x, i32 3)", 1, _REAL, decls="declare {T} @ldexp{F}({T}, i32)\n"
)
INPUTS.update({"ldexp": _only(_LDEXP, D), "ldexpf": _only(_LDEXP, F)})
_NUMBA_LDEXP = Case(
    "%r = call {T} @numba_ldexp{F}({T} %x, i32 3)",
    1,
    _REAL,
    decls="declare {T} @numba_ldexp{F}({T}, i32)\n",
)
INPUTS.update({"numba_ldexp": _only(_NUMBA_LDEXP, D), "numba_ldexpf": _only(_NUMBA_LDEXP, F)})
# one case exercises several keys
INPUTS["fptrunc"] = INPUTS["fpext"]
INPUTS["fptosi"] = INPUTS["sitofp"]
INPUTS["fptoui"] = INPUTS["uitofp"]

# Registered rules that are not float math (integer and bookkeeping intrinsics, Python
# object constructors): no float inputs to differentiate. Add a key here only with that
# justification.
NOT_FLOAT_MATH = frozenset(
    (
        *INTEGER_ARITHMETIC,
        *INTEGER_ONLY,
        *PYTHON_OBJECTS,
        *FATAL_ERROR,
        *SCHEDULER,
        PARTITION,  # a declaration, doing nothing
        "numba_attempt_nocopy_reshape",
    )
)
