"""A tiny straight-line driver for the rule table, and JIT helpers (no tests in this module).

`tangent_module` and `adjoint_module` differentiate a one-block function instruction by
instruction through `llvm_passes.rules` alone (no synthesizer, no activity analysis): every
instruction with an active operand is handed to its rule. They exist so each rule's tangent
and adjoint can be checked against finite differences in isolation.

Generated functions store results through a pointer (no aggregate returns through ctypes):
- `tan_f(x..., dx_i for active i..., ptr out)`: out[0] = f(x), out[1] = tangent.
- `adj_f(x..., seed, ptr out)`: out[0] = f(x), out[1 + i] = seed · ∂f/∂x_i.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import llvmlite.binding as llvm

from llvm_passes.ir import I64, PTR, VOID, Argument, Local, Value, parse_module
from llvm_passes.ir.builder import Builder, Namer
from llvm_passes.rules import Context, lookup

_CTYPES = {"double": ctypes.c_double, "float": ctypes.c_float}
_ready = False


def _init() -> None:
    global _ready
    if _ready:
        return
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    try:  # Numba's C helpers (numba_erf, numba_ldexp...), as Numba itself registers them
        from numba import _helperlib

        for name, addr in _helperlib.c_helpers.items():
            llvm.add_symbol(f"numba_{name}", addr)
    except ImportError:
        pass
    _ready = True


class Jit:
    """An MCJIT engine holding one module; `fn(name, argtypes)` gives a ctypes callable."""

    def __init__(self, text: str) -> None:
        _init()
        mod = llvm.parse_assembly(text)
        mod.verify()
        tm = llvm.Target.from_default_triple().create_target_machine()
        self.engine = llvm.create_mcjit_compiler(mod, tm)
        self.engine.finalize_object()
        self.engine.run_static_constructors()

    def fn(self, name: str, argtypes: Sequence, restype=None):
        addr = self.engine.get_function_address(name)
        if not addr:
            raise KeyError(name)
        return ctypes.CFUNCTYPE(restype, *argtypes)(addr)


def call_with_out(cfn, ctype, args: Sequence[float], n_out: int) -> list[float]:
    """Call a generated `(..., ptr out)` function, returning out[0:n_out]."""
    out = (ctype * n_out)()
    cfn(*[ctype(a) for a in args], out)
    return list(out)


# ---- the straight-line driver ------------------------------------------------------------
def _key(v: Value) -> str | None:
    return v.name if isinstance(v, Local) else None


def _prepare(text: str, fn_name: str, new_name: str):
    mod = parse_module(text)
    fn = mod.get(fn_name)
    if fn is None or len(fn.blocks) != 1:
        raise ValueError(f"@{fn_name} must be defined with one block")
    block = fn.blocks[0]
    body, ret = block.instructions[:-1], block.instructions[-1]
    assert ret.opcode == "ret" and ret.operands, "the driver needs a value return"
    del mod.functions[fn_name]
    fn.name = new_name
    mod.functions[new_name] = fn
    namer = Namer(fn)
    b = Builder(mod, namer)
    b.position_before_terminator(block)
    return mod, fn, b, body, ret


def _rule(inst):
    rule = lookup(inst)
    if rule is None:
        raise KeyError(f"no rule for {inst.text()}")
    return rule


def _store_all(b: Builder, ty, out: Argument, values: Sequence[Value]) -> None:
    for k, v in enumerate(values):
        p = b.gep(ty, out, b.const(I64, k)) if k else out
        b.store(v, p)


def _finish(fn, ret, ty, out) -> None:
    fn.args.append(out)
    fn.ret_type = VOID
    ret.operands = []


def tangent_module(text: str, fn_name: str, active: Sequence[bool]) -> str:
    """Module text with `tan_<fn>`: the primal plus its tangent along the active arguments."""
    mod, fn, b, body, ret = _prepare(text, fn_name, f"tan_{fn_name}")
    ty = ret.operands[0].type
    tans: dict[str, Value] = {}
    for a, act in zip(list(fn.args), active, strict=True):
        if act:
            t = Argument(a.type, b.namer.fresh(f"{a.name}.tan"), "", len(fn.args))
            fn.args.append(t)
            tans[a.name] = t
    for inst in body:
        op_tans = [tans.get(_key(v)) if _key(v) else None for v in inst.operands]
        if all(t is None for t in op_tans):
            continue
        t = _rule(inst).tangent(Context(b, inst, inst.operands, tangents=op_tans))
        if t is not None:
            tans[inst.name] = t
    r = ret.operands[0]
    out = Argument(PTR, b.namer.fresh("out"), "", len(fn.args))
    _store_all(b, ty, out, [r, tans.get(_key(r)) or b.zero(ty)])
    _finish(fn, ret, ty, out)
    return mod.text()


def adjoint_module(text: str, fn_name: str) -> str:
    """Module text with `adj_<fn>`: the primal plus seed times the gradient."""
    mod, fn, b, body, ret = _prepare(text, fn_name, f"adj_{fn_name}")
    ty = ret.operands[0].type
    primal_args = list(fn.args)
    seed = Argument(ty, b.namer.fresh("seed"), "", len(fn.args))
    fn.args.append(seed)
    r = ret.operands[0]
    adjs: dict[str, Value] = {}
    if _key(r):
        adjs[r.name] = seed
    for inst in reversed(body):
        adj = adjs.get(inst.name)
        if adj is None:
            continue
        contribs = _rule(inst).adjoint(Context(b, inst, inst.operands, adj=adj))
        for v, c in zip(inst.operands, contribs, strict=True):
            k = _key(v)
            if c is None or k is None:
                continue
            adjs[k] = b.fadd(adjs[k], c, "adj") if k in adjs else c
    out = Argument(PTR, b.namer.fresh("out"), "", len(fn.args))
    grads = [adjs.get(a.name) or b.zero(a.type) for a in primal_args]
    _store_all(b, ty, out, [r, *grads])
    _finish(fn, ret, ty, out)
    return mod.text()


def forward_wrapper(fn_name: str, ty: str, n: int) -> str:
    """IR text of `call_fwd(x..., dx..., ptr out)` calling the engine's `fwddiffe_<fn>`
    (which returns `{T, T}`) and storing primal and tangent through `out`."""
    xs = [f"{ty} %x{k}" for k in range(n)] + [f"{ty} %d{k}" for k in range(n)]
    return (
        f"define void @call_fwd({', '.join(xs)}, ptr %out) {{\n"
        f"  %r = call {{{ty}, {ty}}} @fwddiffe_{fn_name}({', '.join(xs)})\n"
        f"  %p = extractvalue {{{ty}, {ty}}} %r, 0\n"
        f"  %t = extractvalue {{{ty}, {ty}}} %r, 1\n"
        f"  store {ty} %p, ptr %out\n"
        f"  %o1 = getelementptr {ty}, ptr %out, i64 1\n"
        f"  store {ty} %t, ptr %o1\n"
        f"  ret void\n}}\n"
    )


CTYPES = _CTYPES
