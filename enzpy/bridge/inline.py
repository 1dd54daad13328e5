"""Inline a primal's small Numba callees into it before differentiation.

A derivative of a callee must keep every input its reverse sweep needs (its caller may
overwrite them after the call), so a small function called inside a loop costs tape per
call. Inlined, its loads and values belong to the root, where the engine can recompute or
reload them. LLVM's own inliner does the work; Numba's function pipeline then simplifies
the result exactly as it did the primal, so the engine sees the IR it already knows; also
where Numba compiled for a debugger (every function `noinline`) or simplified nothing
(`NUMBA_OPT=0`). Runtime functions Numba declares without saying what they touch get the
declarations `runtime.DECLARATIONS` gives, and their callers are simplified again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import llvmlite.binding as llvm
from numba.core import config
from numba.core.registry import cpu_target

from llvm_passes import rules
from llvm_passes.analysis.loops import only_counted_loops
from llvm_passes.ir import Module, parse_module

from . import runtime

#: callees with at most this many instructions are inlined
MAX_INSTRUCTIONS = 400

# what inlining adds that the engine has no use for: scope declarations of the inlined
# noalias arguments, and lifetime markers of the inlined allocas (a reverse pass may keep
# such memory beyond them)
_HINTS_RE = re.compile(
    r"^\s*call void @llvm\.(experimental\.noalias\.scope\.decl|lifetime\.(start|end))\b.*\n",
    re.M,
)


def inline_small_callees(texts: list[str], root: str) -> Module:
    """The module of `texts` (the root's module, then its callees') with the root's small
    callees inlined into it."""
    texts = [_prepared(text) for text in texts]
    parsed, modules = Module(), [parse_module(text) for text in texts]
    for m in modules:
        parsed.merge(m)
    if len(texts) < 2:
        return parsed
    module = llvm.parse_assembly(texts[0])
    seen = _definitions(modules[0])
    for text, m in zip(texts[1:], modules[1:], strict=True):
        sub = llvm.parse_assembly(text)
        _shareable(sub, module, _definitions(m) & seen)
        module.link_in(sub)
        seen |= _definitions(m)
    defined = {fn.name: fn for fn in module.functions if not fn.is_declaration}
    memo: dict[str, bool] = {}
    chosen = [name for name in defined if name != root and _inlinable(name, defined, parsed, memo)]
    if not chosen:
        return parsed
    return parse_module(_inlined(module, root, chosen))


def inline_into_root(text: str, root: str, names: Iterable[str]) -> str:
    """`text` with the functions `names` inlined wherever they are called, the root then
    simplified by Numba's function pipeline."""
    return _inlined(llvm.parse_assembly(text), root, names)


def _inlined(module: llvm.ModuleRef, root: str, names: Iterable[str]) -> str:
    """`module` with `names` inlined wherever they are called, then every function that
    received code (the root too) simplified again: what an inlined callee returned through
    memory (a view, an allocated array) is a plain value again, for the analyses."""
    names = set(names)
    for name in names:
        module.get_function(name).add_function_attribute("alwaysinline")
    receivers = {root} | (_callers(module, names) - names)
    codegen = cpu_target.target_context.codegen()
    pb = codegen._pass_builder()
    mpm = llvm.create_new_module_pass_manager()
    mpm.add_always_inliner_pass()
    mpm.run(module, pb)
    _simplify(module, receivers)
    return _HINTS_RE.sub("", str(module))


def _simplify(module: llvm.ModuleRef, names: Iterable[str]) -> None:
    """Run Numba's function pipeline on the functions `names` of `module`, at Numba's
    default level whatever `NUMBA_OPT` says (the analyses read simplified IR)."""
    codegen = cpu_target.target_context.codegen()
    fpm, fpb = codegen._function_pass_manager(opt=3)
    for name in sorted(names):
        fpm.run(module.get_function(name), fpb)


def _callers(module: llvm.ModuleRef, names: Iterable[str]) -> set[str]:
    """The functions `module` defines that call one of `names` (read in their text: one
    call into LLVM per function)."""
    names = list(names)
    if not names:
        return set()
    called = re.compile("|".join(rf'@"?{re.escape(name)}"?\(' for name in names))
    return {fn.name for fn in module.functions if not fn.is_declaration and called.search(str(fn))}


def _prepared(text: str) -> str:
    """`text` with what `runtime.DECLARATIONS` tells of the functions it declares, the
    functions calling those simplified again (with `NUMBA_OPT=0`: every function)."""
    told = []
    for name, declaration in runtime.DECLARATIONS.items():
        text, n = re.subn(rf"^declare [^@\n]*@{name}\(.*$", declaration, text, flags=re.M)
        if n:
            told.append(name)
    unsimplified = config.OPT == 0  # type: ignore[attr-defined]
    if not told and not unsimplified:
        return text
    module = llvm.parse_assembly(text)
    defined = {fn.name for fn in module.functions if not fn.is_declaration}
    _simplify(module, defined if unsimplified else _callers(module, told))
    return str(module)


def inline_always(text: str) -> str:
    """`text` with its `alwaysinline` functions inlined (the helpers a synthesized
    derivative calls, such as its shadow allocations)."""
    module = llvm.parse_assembly(text)
    codegen = cpu_target.target_context.codegen()
    mpm = llvm.create_new_module_pass_manager()
    mpm.add_always_inliner_pass()
    mpm.run(module, codegen._pass_builder())
    return str(module)


def _for_debugger(fn: llvm.ValueRef) -> bool:
    """Whether `fn` was compiled with Numba's full debug information, which marks every
    function `noinline` (for stepping in a debugger), not because inlining is wrong."""
    define = next(line for line in str(fn).splitlines() if line.startswith("define"))
    return "!dbg" in define


def _definitions(module: Module) -> set[str]:
    """The names of the functions and global variables `module` defines (or may: a
    global's text is not looked into; `_shareable` asks LLVM)."""
    functions = {name for name, fn in module.functions.items() if not fn.is_declaration}
    return functions | set(module.globals)


def _shareable(sub: llvm.ModuleRef, module: llvm.ModuleRef, both: set[str]) -> None:
    """Make the definitions of `sub` that `module` defines too (Numba's helpers, such as
    the unwrapping of exception arguments, are defined in every module that raises)
    linkonce_odr on both sides, so that linking keeps one; `both`: the names that may be
    such."""
    for name in both:
        for get in ("get_function", "get_global_variable"):
            try:
                one, other = getattr(sub, get)(name), getattr(module, get)(name)
            except NameError:
                continue
            if not one.is_declaration and not other.is_declaration:
                one.linkage = other.linkage = "linkonce_odr"


def _inlinable(
    name: str,
    defined: dict[str, llvm.ValueRef],
    parsed: Module,
    memo: dict[str, bool],
) -> bool:
    """Small functions calling only intrinsics, the runtime, functions with a rule (math,
    BLAS) and other such functions (library implementations calling what has no rule, such
    as LAPACK, stay whole, so errors can name them), whose loops are all counted ones: inlined,
    another loop would cost the caller's tape an id per iteration even where nothing in it
    is differentiated. `memo` holds the answers so far."""
    if name not in defined:
        return name.startswith(("llvm.", "NRT_")) or name in rules.RULES
    if name in memo:
        return memo[name]
    if name in rules.RULES or name in rules.FUNCTIONS:  # (users' rules): called as declared
        return False
    memo[name] = False  # recursion is never inlined
    fn = defined[name]
    attrs = " ".join(str(a) for a in fn.attributes)
    if "optnone" in attrs or "noinline" in attrs and not _for_debugger(fn):
        return False
    instructions = [ins for block in fn.blocks for ins in block.instructions]
    memo[name] = (
        len(instructions) <= MAX_INSTRUCTIONS
        and all(
            _inlinable(list(ins.operands)[-1].name, defined, parsed, memo)
            for ins in instructions
            if ins.opcode == "call"
        )
        and only_counted_loops(parsed.functions[name])
    )
    return memo[name]
