"""Reverse-mode synthesis: gradients with Enzyme's shadow-memory semantics.

For each (function, activity pattern) two functions are made:
- `augmented_<f>(args, shadows, tape)`: the primal, plus the shadow pointers, plus pushes
  onto the tape of every value the reverse sweep needs and of the control-flow path taken
  (`augmented.py`);
- `diffe_<f>(args, shadows, tape[, dret])`: the reverse sweep, popping the tape in reverse
  order, replaying the blocks backwards and adding adjoints (`+=`) into shadow memory
  (`sweep.py`).
What goes on the tape is decided first, by a pure planning step (`plan.py`); the exported
entry points own or take the tape (`entries.py`).

In reverse mode the shadow of a float scalar argument is a pointer to its adjoint
accumulator. A store's reverse reads the shadow into the stored value's adjoint and zeroes
it; a load's reverse adds the loaded value's adjoint into the shadow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from .. import rules
from ..analysis.activity import Activity, ActivityResult, activity
from ..analysis.calls import callees, recursive
from ..analysis.memtypes import MemoryFacts
from ..errors import NoDerivativeError, called_from
from ..forward import function_to_derive, has_rule
from ..ir import Function, Instruction, Module, Type, parse_module
from ..tape import ensure_runtime
from ..transforms.loops import (
    count_iterations,
    dedicated_preheaders,
    index_pointer_inductions,
    read_kept_values_before_loops,
    split_exit_edges,
    version_broadcast_loops,
)
from .augmented import Augmented
from .entries import Entries
from .parallel import Launch
from .plan import Plan, plan
from .sweep import Release, Reverse


@dataclass(frozen=True)
class ReverseResult:
    """The module holding the gradient entry point, its name, and the root's activity."""

    module: Module
    fn_name: str  # combined: diffe_<f>; split: augment_<f>
    activity: ActivityResult
    split_names: tuple[str, ...] = ()  # split: (reverse_<f>, release_<f>)
    # combined, with `distinct` arguments: the entry to call when their memory overlaps
    # (None when assuming it does not changed nothing)
    aliased_name: str | None = None
    # `i64 drop_tapes_<f>()` frees the storage (tapes, logs) the entries keep between
    # calls and returns how many bytes it held
    drop_name: str | None = None

    @property
    def module_text(self) -> str:
        """The module's text, of its definitions those the entry points reach."""
        names = (self.fn_name, *self.split_names, self.aliased_name, self.drop_name)
        return self.module.text(roots=[n for n in names if n is not None])


def reverse(
    module_text: str | Module,
    fn_name: str,
    activities: Sequence[Activity],
    tape_bytes: str | None = None,
    split: bool = False,
    unmodified: bool | frozenset[int] = False,
    distinct: frozenset[int] = frozenset(),
    pointee: Sequence[Type | None] | None = None,
    out_of_memory: str | None = None,
    reverse_failed: str | None = None,
    nestable: bool = False,
    width: int = 1,
    flush_denormals: bool = False,
) -> ReverseResult:
    """Synthesize the gradient of `fn_name` (contract: see module doc).

    Combined (default): `diffe_<f>(args, shadows)` owning its tape. Split: three entry points
    sharing a caller-owned, zero-initialized tape (`TAPE_TYPE`): `augment_<f>(args, shadows,
    tape)` runs the forward sweep, `reverse_<f>(args, shadows, tape)` the reverse sweep,
    `release_<f>(args, shadows, tape)` only frees what a forward sweep left on the tape (for
    a tape whose reverse sweep never runs); the last two keep the tape's storage for the
    next `augment_<f>`. `unmodified` (split mode): the caller leaves the memory the arguments
    address as the forward sweep left it until the reverse sweep (or release) runs, so that
    the reverse sweep may load it again, as in combined mode, instead of taking its values
    from the tape; a set: the positions of the parameters whose memory it leaves so (the
    reverse sweep takes what it needs of the others' memory from the tape).

    With `tape_bytes` (the name of an external int64 global), each forward sweep stores
    there the number of bytes it put on the tape. `distinct` (combined mode, and split mode
    `unmodified`): positions of pointer arguments assumed to address non-overlapping memory;
    in combined mode, when that assumption lets the reverse sweep load memory again, a
    second entry `diffe_<f>.aliased` does without it, for the caller to use when the memory
    does overlap (in split mode the caller calls another derivative). `pointee` as in
    `forward`.

    `out_of_memory`: IR text defining a function with the parameters and return type of
    `fn_name`, which says that memory ran out (for Numba: a `MemoryError`). When memory for
    the tape or for what a forward sweep allocates cannot be had, the entry points that run
    a forward sweep release what it allocated and return what that function returns; without
    it, the process aborts.

    `reverse_failed`: IR text defining a function with the parameters of `fn_name` and then
    an i64, returning `fn_name`'s return type: the status of a reverse sweep given the
    pointer a function rule's reverse reported when it failed (`tape.fail`, as an integer;
    0: nothing failed).
    With it, `diffe_<f>` returns that status when the reverse sweep failed, and
    `reverse_<f>` returns it always; without it, failures are not looked at.

    `nestable` (combined mode): a derivative for nested differentiation, whose IR is
    linked into a function that is differentiated again: `diffe_<f>` on the nestable tape
    runtime (see `tape.py`), without `distinct` assumptions, out-of-memory function or
    storage kept between calls.

    `width` (batch mode): every active argument takes `width` shadows in a row (and a float
    return `width` cotangents), and one sweep carries that many adjoints.

    `flush_denormals` (x86-64 only; not with `nestable`): the entries run the reverse sweep
    with subnormal floats flushed to zero (MXCSR's FTZ and DAZ bits, restored after): an
    adjoint below 2.2e-308 in magnitude is 0. Arithmetic on subnormals costs a hundred
    cycles or more per instruction on x86, and reverse sweeps meet them where a primal's
    `exp` underflowed (a softmax's or mixture's negligible weights). The forward sweep,
    hence the primal's results, keeps IEEE arithmetic."""
    module, fn, facts = function_to_derive(module_text, fn_name, activities, pointee)
    ensure_runtime(module, nestable)
    if nestable:
        distinct, out_of_memory, tape_bytes = frozenset(), None, None
    oom, failed = _hook(module, out_of_memory), _hook(module, reverse_failed)
    # a recursive function's own calls run the same derivative: no assumption of the root's
    # (memory nothing writes after the call, arrays apart) holds for them
    whole_call = (not split or bool(unmodified)) and not recursive(module, fn)
    changing = (  # parameters whose memory the caller may change before the reverse sweep
        frozenset(range(len(fn.args))) - unmodified
        if split and isinstance(unmodified, frozenset)
        else frozenset()
    )
    rewritten = rewrite_loops(module, fn)  # before any analysis
    synth = _Synthesizer(
        module,
        facts,
        root=fn.name,
        rewritten=rewritten,
        reload=fn.name if whole_call else None,
        distinct=distinct if whole_call else frozenset(),
        changing=changing,
        width=width,
        nestable=nestable,
    )
    pattern = tuple(a.active for a in activities)
    aug, rev = synth.derive(fn, pattern)
    entries = Entries(
        module, fn, pattern, tape_bytes, oom, width, failed, flush_denormals and not nestable
    )
    aliased = None
    names: tuple[str, ...]
    if split:
        names = (
            entries.augment(aug),
            entries.finish("reverse", rev),
            entries.finish("release", synth.release(fn, pattern)),
        )
    elif nestable:
        names = (entries.nested(aug, rev),)
    else:
        names = (entries.combined(aug, rev),)
        if synth.plans[(fn.name, pattern)].assumes_distinct:
            aliased = entries.combined(*synth.derive(fn, pattern, aliased=True), ".aliased")
    return ReverseResult(
        module,
        names[0],
        synth.results[(fn.name, pattern)],
        names[1:],
        aliased,
        entries.drop_tapes(),
    )


def _hook(module: Module, text: str | None) -> str | None:
    """The name of the function `text` defines, merged into `module` (None: no text)."""
    if text is None:
        return None
    hook = parse_module(text)
    module.merge(hook)
    return next(f.name for f in hook.functions.values() if not f.is_declaration)


Key = tuple[str, tuple[bool, ...]]


def _key(name: str, pattern: tuple[bool, ...], aliased: bool, shared: bool | Launch) -> Key | tuple:
    """The key of a derivation (see `_Synthesizer.derive`)."""
    return (
        name,
        pattern,
        *(("aliased",) if aliased else ()),
        *(("shared", shared) if shared else ()),
    )


def rewrite_loops(module: Module, root: Function) -> frozenset[str]:
    """The loop rewrites of `transforms/loops.py`, on `root` and every function it may call
    whose derivative the engine derives, before any of them is analysed: the activity
    analysis of a caller analyses its callees and keeps their summaries for their own
    derivatives, so a callee rewritten afterwards would be derived with a summary of the IR
    it had before (an address computed from a loop's counter missing from its active values:
    a store through it left unreversed). Returns the names of the functions rewritten."""
    todo: list[Function] = [root]
    seen: set[str] = set()
    while todo:
        fn = todo.pop()
        given = rules.FUNCTIONS.get(fn.name)
        if fn.name in seen or (given is not None and given.reverse is not None and fn is not root):
            continue
        seen.add(fn.name)
        dedicated_preheaders(fn)
        count_iterations(fn)
        read_kept_values_before_loops(fn)
        version_broadcast_loops(fn)
        split_exit_edges(fn)
        index_pointer_inductions(fn)
        todo.extend(callees(module, fn))
    return frozenset(seen)


def refuse_parallel_calls(
    module: Module,
    root: Function,
    why: str,
    hint: str = "Use combined reverse mode or forward mode, or differentiate a serial "
    "version of the function.",
) -> None:
    """Refuse, by name, a parallel call in `root` or a function it may call, for `why`."""
    todo, seen = [root], set()
    while todo:
        fn = todo.pop()
        if fn.name in seen:
            continue
        seen.add(fn.name)
        for inst in fn.instructions():
            if inst.opcode == "call" and inst.callee_name in rules.PARALLEL:
                raise NoDerivativeError(
                    f"a parallel call ({inst.callee_name}) {why}",
                    inst.text(),
                    fn.name,
                    "reverse",
                    inst.loc,
                    hint=hint,
                )
        todo.extend(callees(module, fn))


def parameters_read(fn: Function, n: int) -> frozenset[int]:
    """The positions among the first `n` parameters of `fn` that its body uses."""
    used = {id(o) for inst in fn.instructions() for o in inst.operands}
    return frozenset(a.index for a in fn.args[:n] if id(a) in used)


class _Synthesizer:
    """Derives augmented/reverse function pairs for (function, pattern) keys."""

    def __init__(
        self,
        module: Module,
        facts: MemoryFacts,
        root: str,
        rewritten: frozenset[str],
        reload: str | None,
        distinct: frozenset[int] = frozenset(),
        changing: frozenset[int] = frozenset(),
        width: int = 1,
        nestable: bool = False,
    ) -> None:
        self.module, self.facts, self.root = module, facts, root
        self.nestable = nestable  # on the nestable tape runtime (`tape.py`)
        self.rewritten = rewritten  # the functions whose loops are rewritten (`rewrite_loops`)
        self.width = width
        self.distinct = distinct  # the root's arguments whose memory does not overlap
        # combined mode (split mode with arguments unmodified): memory nothing writes may be
        # loaded again in the reverse sweep of the root function `reload` (otherwise, in
        # split mode the caller may change the arguments between the sweeps; a callee's
        # caller may change memory after the callee returns)
        self.reload = reload
        self.changing = changing  # the root's arguments whose memory it may not load again
        self.names: dict[Key | tuple, tuple[str, str]] = {}
        self.results: dict[Key | tuple, ActivityResult] = {}
        self.plans: dict[Key | tuple, Plan] = {}
        self.kept: dict[Key, dict] = {}  # what each memory call kept (for `release`)
        self.released: dict[Key, str] = {}
        self.cache: dict = {}
        self.reads: dict[Key | tuple, frozenset[int]] = {}  # primal arguments each reverse reads
        self.variants: dict[tuple, int] = {}  # (function, pattern): its shared derivations

    def derive(
        self,
        fn: Function,
        pattern: tuple[bool, ...],
        aliased: bool = False,
        shared: bool | Launch = False,
    ) -> tuple[str, str]:
        """The augmented forward and the reverse sweep of `fn` for `pattern`; `aliased`: for
        the root, without assuming its `distinct` arguments apart; `shared`: for a function
        running concurrently with other calls of it (a parallel call's chunk, and what it
        calls), whose reverse sweep adds adjoints into memory it does not own atomically;
        for a chunk, what its parallel call tells (`Launch`)."""
        key = _key(fn.name, pattern, aliased, shared)
        if key in self.names:
            return self.names[key]
        given = rules.FUNCTIONS.get(fn.name)
        if given is not None and given.reverse is not None and fn.name != self.root:
            if shared:
                raise NoDerivativeError(
                    f"a call to {fn.name}, whose reverse derivative is a given rule, inside a "
                    "parallel call's chunk",
                    f"define @{fn.name}",
                    fn.name,
                    "reverse",
                    hint="A rule's adjoint adds into shadows that other chunks may share "
                    "without atomics; call it outside the parallel loop.",
                    given=True,
                )
            aug, rev, self.released[key] = given.reverse(self.module, fn, pattern, self.width)
            self.names[key] = (aug, rev)
            return self.names[key]
        if shared:
            refuse_parallel_calls(
                self.module,
                fn,
                "inside a chunk of another parallel call (nested parallel loops) in reverse mode",
                hint="Make the inner loop serial (range instead of prange).",
            )
        bits = "".join("d" if p else "c" for p in pattern) + (".aliased" if aliased else "")
        if shared:  # (one chunk launched by calls telling different things: numbered)
            n = self.variants[fn.name, pattern] = self.variants.get((fn.name, pattern), 0) + 1
            bits += ".shared" + (str(n) if n > 1 else "")
        names = (f"augmented_{fn.name}.{bits}", f"diffe_{fn.name}.{bits}")
        self.names[key] = names
        assert fn.name in self.rewritten, f"@{fn.name} is derived with its loops as they were"
        act = activity(self.module, fn, pattern, has_rule, self.cache)
        self.results[key] = act
        root = self.reload == fn.name
        distinct = self.distinct if root and not aliased else frozenset()
        reads = self.callee_reads(act, shared)
        reload = root or isinstance(shared, Launch) and shared.reloadable(fn)
        owned = shared.owned_loads(fn) if isinstance(shared, Launch) else {}
        changing = self.changing if root else frozenset()
        p = plan(self.module, fn, act, reload, distinct, self.facts, reads, owned, changing)
        if self.nestable:  # (pushes only: the nestable runtime's chunks may leave a room's
            # chunk before the reverse sweep gives the room back)
            p = replace(p, loops={h: replace(lp, places=None) for h, lp in p.loops.items()})
        self.plans[key] = p
        kept = Augmented(self, fn, act, names[0], p, self.width, shared).run()
        self.kept[key] = kept
        Reverse(self, fn, act, names[1], p, kept, self.width, shared).run()
        self.reads[key] = parameters_read(self.module.functions[names[1]], len(fn.args))
        return names

    def callee_reads(self, act: ActivityResult, shared: bool | Launch):
        """For `plan`: the primal arguments the reverse sweep of a call's callee (a parallel
        call's chunk) reads (the callee derived first; None while it is being derived, or
        when rules give it)."""

        def reads(call: Instruction, launch: Launch | None) -> frozenset[int] | None:
            summary = act.callees[call]
            callee, pattern = summary.fn, summary.pattern
            concurrent = launch or bool(shared)
            with called_from(act.fn.name, call.loc):
                self.derive(callee, pattern, shared=concurrent)
            return self.reads.get(_key(callee.name, pattern, False, concurrent))

        return reads

    def release(
        self, fn: Function, pattern: tuple[bool, ...], shared: bool | Launch = False
    ) -> str:
        """`release_<f>.<bits>(args, shadows, tape)`: the reverse sweep reduced to popping the
        tape and freeing what the forward sweep allocated (shadows, kept copies); `shared`
        as in `derive`."""
        key = _key(fn.name, pattern, False, shared)
        if key not in self.released:
            self.derive(fn, pattern, shared=shared)
            name = self.released[key] = self.names[key][1].replace("diffe_", "release_", 1)
            Release(
                self,
                fn,
                self.results[key],
                name,
                self.plans[key],
                self.kept[key],
                self.width,
                shared,
            ).run()
            # its callers pass it only what the reverse sweep reads (`callee_reads`)
            read = parameters_read(self.module.functions[name], len(fn.args))
            assert read <= self.reads[key], f"{name} reads more than {self.names[key][1]}"
        return self.released[key]
