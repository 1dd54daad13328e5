"""The engine's parallel call `enzpy.parallel_for(ptr @chunk, i64 n, args...)` on
hand-written IR (no Numba): the activity of the chunk's parameters follows the call's
operands, forward mode calls the chunk's forward derivative with the shadows appended,
reverse mode runs each chunk's augmented forward and reverse sweep on its own tape, adding
adjoints into memory other chunks may share atomically (split mode too), plainly into the
cells a chunk owns (`analysis.partition`)."""

from __future__ import annotations

import pytest

import llvm_passes
from llvm_passes.analysis.activity import activity
from llvm_passes.forward import has_rule
from llvm_passes.ir import parse_module
from llvm_passes.reverse.parallel import KEPT

CONST, DUP = llvm_passes.Activity.CONST, llvm_passes.Activity.DUP

SCALE = """
define i32 @chunk(i64 %c, ptr %x, ptr %y, double %a) {
entry:
  %px = getelementptr double, ptr %x, i64 %c
  %v = load double, ptr %px
  %w = fmul double %v, %a
  %py = getelementptr double, ptr %y, i64 %c
  store double %w, ptr %py
  ret i32 0
}

define i32 @f(ptr %x, ptr %y, double %a, i64 %n) {
entry:
  %s = call i32 (ptr, i64, ...) @enzpy.parallel_for(ptr @chunk, i64 %n, ptr %x, ptr %y, double %a)
  ret i32 %s
}

declare i32 @enzpy.parallel_for(ptr, i64, ...)
"""


def _parallel_call(fn):
    (call,) = [i for i in fn.instructions() if i.callee_name == "enzpy.parallel_for"]
    return call


def test_the_chunks_parameters_take_the_activity_of_the_operands():
    module = parse_module(SCALE)
    f = module.get("f")
    act = activity(module, f, (True, False, True, False), has_rule)
    summary = act.callees[_parallel_call(f)]
    assert summary.fn.name == "chunk"
    assert summary.pattern == (False, True, False, True)  # the chunk index carries none
    assert summary.needed_args == {2}  # active data stored into y
    assert act.needed_args == {1}


@pytest.mark.parametrize(
    "acts, shadows",
    [
        ((DUP, DUP, CONST, CONST), ["x.shadow", "y.shadow"]),
        ((CONST, DUP, DUP, CONST), ["y.shadow", "a.tan"]),
    ],
)
def test_forward_calls_the_chunks_derivative_with_the_shadows(acts, shadows):
    result = llvm_passes.forward(SCALE, "f", list(acts))
    call = _parallel_call(result.module.get(result.fn_name))
    chunk, n, *args = call.operands
    derived = result.module.get(chunk.name)
    assert derived is not None and not derived.is_declaration
    assert chunk.name.startswith("fwddiffe_chunk.")
    assert n.name == "n"
    assert [a.name for a in args] == ["x", "y", "a", *shadows]
    assert len(derived.args) == 4 + len(shadows)


def test_reverse_runs_each_chunk_on_its_own_tape():
    result = llvm_passes.reverse(SCALE, "f", [DUP, DUP, DUP, CONST])
    module = result.module
    launches = [
        (fn.name, call)
        for fn in module.functions.values()
        for call in fn.instructions()
        if call.callee_name == "enzpy.parallel_for"
    ]
    (aug,) = [c for name, c in launches if name.startswith("augmented_f.")]
    (rev,) = [c for name, c in launches if name.startswith("diffe_f.")]
    # forward sweep: the augmented chunk, the shadows of x and y (a's is its accumulator
    # in the reverse sweep: null here), the chunks' tapes last
    assert aug.operands[0].name == "augmented_chunk.cddd.shared.par"
    assert [o.ref for o in aug.operands[2:5]] == ["%x", "%y", "%a"]
    assert len(aug.operands) == 2 + 3 + 3 + 1
    assert rev.operands[0].name == "diffe_chunk.cddd.shared.par"
    assert len(rev.operands) == len(aug.operands)
    # each chunk's tape storage is left in its cell for the next call (the forward sweep
    # takes it), which the root's drop_tapes frees
    calls = {
        name: [i.callee_name for i in module.get(f"{name}_chunk.cddd.shared.par").instructions()]
        for name in ("augmented", "diffe")
    }
    assert "enzpy.tape.take" in calls["augmented"] and "enzpy.tape.keep" in calls["diffe"]
    drop = module.get(result.drop_name)
    dropped = [i for i in drop.instructions() if i.callee_name == "enzpy.tape.drop"]
    assert len(dropped) == 1 + KEPT + 1  # the entry's cell, then the chunks' cells
    # the chunk's load of x[c] and its float argument add their adjoints atomically
    chunk_rev = module.get("diffe_chunk.cddd.shared")
    added = [i.text() for i in chunk_rev.instructions() if i.opcode == "atomicrmw"]
    assert len(added) == 2 and all("fadd" in t and "monotonic" in t for t in added)


def test_split_mode_releases_each_chunks_tape():
    result = llvm_passes.reverse(SCALE, "f", [DUP, DUP, CONST, CONST], split=True)
    release = result.module.get(result.split_names[1])
    assert release is not None
    trampolines = {
        call.operands[0].name
        for fn in result.module.functions.values()
        for call in fn.instructions()
        if call.callee_name == "enzpy.parallel_for"
    }
    assert "release_chunk.cddc.shared.par" in trampolines


@pytest.mark.parametrize(
    "chunk, args",
    [("ptr %fp", "ptr %x, ptr %y, double %a"), ("ptr @chunk", "ptr %x, ptr %y")],
    ids=["computed", "too-few-arguments"],
)
def test_a_chunk_the_engine_cannot_see_is_refused(chunk, args):
    text = SCALE.replace(
        "ptr @chunk, i64 %n, ptr %x, ptr %y, double %a", f"{chunk}, i64 %n, {args}"
    )
    text = text.replace("define i32 @f(ptr %x,", "define i32 @f(ptr %fp, ptr %x,")
    with pytest.raises(llvm_passes.NoDerivativeError, match="parallel call of"):
        llvm_passes.forward(text, "f", [CONST, DUP, DUP, CONST, CONST])


# A chunk declaring its row [lo, hi] of a partition (`enzpy.partition`, every row starting
# at or above %first) and looping over it, as Numba's parallel loops do: x at `{x_index}`
# and `{z_index}` (computed by `{index}`), y (set up by the caller: `{y_setup}`) at i.
PARTITIONED = """
define i32 @chunk(i64 %c, ptr %sched, i64 %entries, ptr %x, i64 %step, ptr %y, i64 %first) {{
entry:
  %off = mul i64 %c, 16
  %row = getelementptr i8, ptr %sched, i64 %off
  call void @enzpy.partition(ptr %row, i64 %entries, i64 %first)
  %lo = load i64, ptr %row
  %hi.p = getelementptr i8, ptr %row, i64 8
  %hi = load i64, ptr %hi.p
  %xoff = mul i64 %c, %step
  %xb = getelementptr i8, ptr %x, i64 %xoff
  br label %loop
loop:
  %i = phi i64 [ %lo, %entry ], [ %next, %loop ]
  %s = phi double [ 0.0, %entry ], [ %s2, %loop ]
  %before = add i64 %i, -1
  {index}
  %px = getelementptr double, ptr %xb, i64 {x_index}
  %v = load double, ptr %px
  %pz = getelementptr double, ptr %xb, i64 {z_index}
  %z = load double, ptr %pz
  %py = getelementptr double, ptr %y, i64 %i
  %w = load double, ptr %py
  %t = fmul double %v, %w
  %tz = fmul double %t, %z
  %s2 = fadd double %s, %tz
  %next = add i64 %i, 1
  %done = icmp sgt i64 %next, %hi
  br i1 %done, label %exit, label %loop
exit:
  %out = getelementptr double, ptr %y, i64 %lo
  store double %s2, ptr %out
  ret i32 0
}}

define i32 @f(ptr %sched, ptr %x, ptr %y0, i64 %n) {{
entry:
  {y_setup}
%r = call i32 (ptr, i64, ...) {launch}ptr %sched, i64 {entries}, ptr %x, i64 {step}, ptr %y, i64 1)
  ret i32 %r
}}

declare i32 @enzpy.parallel_for(ptr, i64, ...)
declare void @enzpy.partition(ptr, i64, i64)
declare ptr @malloc(i64)
"""
_ARGUMENT = "%y = getelementptr double, ptr %y0, i64 0"
_ALLOCATED = "%y = call ptr @malloc(i64 512)"
# Numba's x[i - 1]: i - 1 + n where i - 1 < 0 (n: here %step)
_WRAPPED = "%neg = icmp sgt i64 %i, {k}\n  %wrap = select i1 %neg, i64 0, i64 %step"


def _unowned_loads(x_index="%i", z_index="%i", index="", y_memory=_ALLOCATED, **launch):
    """The loads of the partitioned chunk whose adjoints its reverse sweep adds atomically
    (`always`), or atomically where a test at run time fails (`border`)."""
    text = PARTITIONED.format(
        launch="@enzpy.parallel_for(ptr @chunk, i64 %n, ",
        x_index=x_index,
        z_index=z_index,
        index=index,
        y_setup=y_memory,
        **{"entries": "2", "step": "0", **launch},
    )
    result = llvm_passes.reverse(text, "f", [CONST, DUP, DUP, CONST])
    (chunk,) = [
        fn
        for name, fn in result.module.functions.items()
        if name.startswith("diffe_chunk.") and name.endswith(".shared")
    ]
    return {
        i.operands[0].name.split(".shadow")[0]: (
            "border" if i.block.name.startswith("cell.shared") else "always"
        )
        for i in chunk.instructions()
        if i.opcode == "atomicrmw"
    }


def test_a_chunk_owns_the_cells_only_it_loads():
    # x[i] and y[i], y allocated by the caller: no other chunk loads those cells; x[i - 1]
    # alone: only iteration i loads it
    assert _unowned_loads() == {}
    assert _unowned_loads(x_index="%before", z_index="%before") == {}


@pytest.mark.parametrize(
    "change, unowned",
    [
        ({"y_memory": _ARGUMENT}, {"px": "always", "pz": "always", "py": "always"}),
        ({"entries": "4"}, {"px": "always", "pz": "always", "py": "always"}),
        ({"step": "%n"}, {"px": "always", "pz": "always"}),
        # x[i - 1] and x[i]: cells at the row's border are its neighbour's too
        ({"x_index": "%before"}, {"px": "border", "pz": "border"}),
        # with a wraparound: a test of where the rows start too
        (
            {
                "x_index": "%wrapped",
                "index": _WRAPPED.format(k=0) + "\n  %wrapped = add i64 %before, %wrap",
            },
            {"px": "border", "pz": "border"},
        ),
        # a term not zero from some i on: always atomic
        (
            {
                "z_index": "%wrapped",
                "index": _WRAPPED.format(k=0).replace("sgt", "slt")
                + "\n  %wrapped = add i64 %i, %wrap",
            },
            {"px": "always", "pz": "always"},
        ),
    ],
    ids=[
        "arguments-may-overlap",
        "two-dimensional",
        "per-chunk-base",
        "neighbour",
        "wrapped",
        "unbounded-term",
    ],
)
def test_loads_other_chunks_may_make_add_atomically(change, unowned):
    assert _unowned_loads(**change) == unowned
