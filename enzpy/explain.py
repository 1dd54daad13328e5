"""`explain`: the IR enzpy differentiated, why each value is active, and what it synthesized.

The report is built from the `Derivative` that `autodiff` would use for the same annotated
arguments (compiled on the first call, then taken from the cache), so it shows exactly the
code that runs. Nothing here runs native code.
"""

from __future__ import annotations

from typing import Any

from llvm_passes.analysis.activity import ActivityResult
from llvm_passes.ir import Function, Instruction, Module
from llvm_passes.ir.lexer import quote

from . import bridge
from .api import _width, derivative_signature, parse_arguments
from .derivatives import Derivative, derivative
from .jit import EnzymeJit
from .modes import Forward, Mode

COMMENT_COLUMN = 72  # annotations start here (or two spaces after a longer line)


def explain(f: EnzymeJit, *args: Any, mode: Mode = Forward, print_: bool = True) -> str:
    """Report how enzpy differentiates `f` for these annotated arguments.

    `args` are what `autodiff(mode, f, *args)` takes after `f` (optionally the return
    activity class, then one annotation or plain value per argument). The derivative is
    compiled exactly as `autodiff` would compile it (or taken from the same cache); it is
    not run, and no argument is read or written beyond its type.

    The report (returned, and printed when `print_` is true) has three parts:
    - the argument mapping: each LLVM argument of the Numba-compiled primal (Numba's ABI
      starts with `retptr` and `excinfo`, then flattens each array into meminfo, parent,
      nitems, itemsize, data, shape..., strides...), the Python argument it belongs to,
      its annotation and its activity;
    - the primal's function-optimized IR (and that of each Numba callee reached with
      active arguments), every instruction followed by `; active: <reason>` (it carries
      or moves a tangent / shadow, with the analysis' reason) or `; inactive`;
    - the synthesized derivative's IR (`fwddiffe_<f>` in forward mode, `diffe_<f>` with
      its `augmented_` / reverse helpers in reverse mode), before optimization.

    To see the IR of every derivative as it is built, set the environment variable
    `ENZPY_DUMP_IR`: `ENZPY_DUMP_IR=1` (or `stderr`) prints each synthesized module to
    stderr, `ENZPY_DUMP_IR=<directory>` writes it to `<directory>/<function>.ll`.

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x):
    ...     return (x * x).sum()
    >>> x = np.array([1.0, 2.0])
    >>> text = ez.explain(f, ez.Duplicated(x, np.zeros(2)), print_=False)
    >>> "define" in text and "fwddiffe_" in text
    True
    """
    ret_activity, annotated = parse_arguments(mode, f, args)
    argtypes, kinds, ret = derivative_signature(mode, f, ret_activity, annotated)
    deriv = derivative(mode, f, argtypes, kinds, ret, _width(annotated))
    report = _report(f, mode, annotated, deriv)
    if print_:
        print(report)
    return report


def _report(f: EnzymeJit, mode: Mode, annotated: list, deriv: Derivative) -> str:
    result = deriv.synthesis()
    act = result.activity
    name = f.py_func.__qualname__
    signature = ", ".join(str(t) for t in deriv.argtypes)
    lines = [
        f"; ==== enzpy.explain: {name}({signature}) in {mode!r}",
        f"; primal @{deriv.symbol}, derivative @{result.fn_name}",
        "",
        "; ---- arguments (Numba ABI: retptr, excinfo, then each argument flattened)",
        *_argument_lines(f, annotated, deriv, act),
        "",
        "; ---- primal IR (function-optimized), with the activity of every instruction",
    ]
    for summary in _summaries(act):
        lines += [_annotated(summary), ""]
    lines.append(f"; ---- derivative IR (as synthesized, before optimization): {result.fn_name}")
    lines += [fn.text() + "\n" for fn in _synthesized(result.module, act.fn, result.fn_name)]
    return "\n".join(lines).rstrip() + "\n"


# ---- the argument mapping ----------------------------------------------------------------
def _argument_lines(f: EnzymeJit, annotated: list, deriv: Derivative, act: Any) -> list[str]:
    params = act.fn.args
    owner: dict[int, str] = {0: f"return value ({deriv.restype})", 1: "exception info"}
    names = f.py_func.__code__.co_varnames[: len(annotated)]
    for k, group in enumerate(bridge.argument_layout(deriv.argtypes)):
        label = f"{type(annotated[k]).__name__}({deriv.argtypes[k]})"
        for leaf in group:
            role = leaf.role if leaf.dim is None else f"{leaf.role}[{leaf.dim}]"
            path = "".join(f"[{i}]" for i in leaf.path)
            owner[leaf.position] = f"{names[k]}{path}: {role:<12} {label}"
    rows = [(f"{a.type} {a.ref}", owner.get(a.index, "?"), _arg_verdict(act, a)) for a in params]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    return [f";   {r[0]:<{w0}}  {r[1]:<{w1}}  {r[2]}" for r in rows]


def _arg_verdict(act: ActivityResult, a: Any) -> str:
    if a in act.active:
        return f"active: {act.reasons.get(a, '')}"
    if a.index in act.needed_args:
        return "inactive (Const: active data written into it is dropped)"
    return "inactive"


# ---- annotated primal IR -----------------------------------------------------------------
def _summaries(root: ActivityResult) -> list[ActivityResult]:
    """The root's activity and that of every callee reached with active arguments."""
    seen: dict[tuple[str, tuple[bool, ...]], ActivityResult] = {}
    todo = [root]
    while todo:
        act = todo.pop(0)
        key = (act.fn.name, act.pattern)
        if key in seen:
            continue
        seen[key] = act
        todo += list(act.callees.values())
    return list(seen.values())


def _annotated(act: ActivityResult) -> str:
    fn = act.fn
    shadowed = "".join("d" if p else "c" for p in act.pattern)
    body: list[tuple[str, str]] = []
    for k, block in enumerate(fn.blocks):
        if k:
            body.append(("", ""))
        body.append((f"{quote('', block.name)}:", ""))
        for inst in block.instructions:
            body.append(("  " + inst.text(), _verdict(act, inst)))
    width = min(max((len(t) for t, _ in body), default=0), COMMENT_COLUMN)
    out = [
        f"; @{fn.name}, arguments with a shadow: {shadowed} (d = shadowed, c = const)",
        f"define {fn.signature(True)} {{",
    ]
    out += [f"{t:<{width}}  ; {v}" if v else t for t, v in body]
    out.append("}")
    return "\n".join(out)


def _verdict(act: ActivityResult, inst: Instruction) -> str:
    """'active: <reason>' when the instruction carries or moves a derivative, else
    'inactive'."""
    if inst in act.active:
        return f"active: {act.reasons.get(inst, '')}"
    ops = inst.operands
    if inst.opcode == "store":
        value, ptr = ops
        if ptr in act.active:
            return f"active: writes shadowed memory {ptr.ref} (its shadow gets the tangent)"
        if value in act.active:
            return f"inactive (the derivative of {value.ref} is dropped: {ptr.ref} has no shadow)"
        return "inactive"
    if inst.type.kind == "void" or inst.opcode in ("ret",):
        src = next((o for o in ops if o in act.active), None)
        if src is not None:
            return f"active: operand {src.ref} is active"
    return "inactive"


# ---- the derivative ----------------------------------------------------------------------
def _reachable(module: Module, name: str) -> list[str]:
    """Defined functions reached from `name` by direct calls (itself first)."""
    order: list[str] = []
    todo = [name]
    while todo:
        n = todo.pop(0)
        fn = module.get(n)
        if n in order or fn is None or fn.is_declaration:
            continue
        order.append(n)
        todo += [i.callee_name for i in fn.instructions() if i.callee_name]
    return order


def _synthesized(module: Module, primal: Function, entry: str) -> list[Function]:
    """The functions the engine made for `entry`: reached from it but not from the primal."""
    primal_side = set(_reachable(module, primal.name))
    return [module.functions[n] for n in _reachable(module, entry) if n not in primal_side]
