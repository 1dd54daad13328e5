"""`jacobian`: whole Jacobians by batched forward sweeps or by batched reverse sweeps, dense
or compressed by a coloring of a known sparsity pattern.

The sweeps are one generated function (`_source`), compiled by Numba: from Python it runs
every sweep in one native call, and it is `jacobian`'s implementation inside jitted code.
It computes the Jacobian compressed by a coloring of the seeded lines (inputs in forward
mode, outputs in reverse mode; a dense Jacobian is the coloring where each line has its
own color): one lane per color, `width` lanes per sweep.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

from .annotations import Active, Annotation, BatchDuplicated
from .api import _differentiable, _shape_key, autodiff
from .bridge.by_address import by_address
from .bridge.link import GLUE_OPTIONS, njit_glue
from .errors import AnnotationError
from .gradients import Value, const_copy, copy_source
from .inside import _arg, _mode_and_function
from .inside import _differentiable as _differentiable_types
from .jit import EnzymeJit, enzyme_jit
from .modes import Forward, Mode, Reverse
from .signatures import check_mode
from .source import Source, tuple_source

DEFAULT_CHUNK = 8  # lanes per sweep (see bench: width 8 is where it pays most)


def jacobian(
    mode: Mode,
    f: EnzymeJit,
    *args: Any,
    chunk: int | None = None,
    sparsity: Any = None,
    colors: Any = None,
) -> Any:
    """The Jacobian of `f`'s return (a float, a float array, or a tuple of them) with respect
    to each float and float-array argument (not those wrapped in `Const(...)`).

    `Forward` computes `chunk` columns per sweep (batch mode, default 8; the primal's work
    is done once per sweep), for tall Jacobians; `Reverse` `chunk` rows per sweep, for wide
    ones. All sweeps run in one compiled call. Runs on copies of the arguments (they are not
    mutated). Also callable inside jitted code (`jacobian(mode, f, *args)`, 8 lanes per
    sweep, dense).

    Returns one entry per argument of `f`, `None` where not differentiated: the Jacobian
    with respect to it, shaped `out.shape + arg.shape` (a tuple of those for a tuple
    return).

    With `sparsity` (a SciPy sparse matrix or boolean array with the structure of the
    Jacobian of the flattened return with respect to the flattened, only differentiated,
    argument) the Jacobian is returned as a `scipy.sparse.csr_matrix`, computed by one
    seed per color: `colors` gives a color per column (`Forward`) or row (`Reverse`) such
    that no row (column) has two nonzeros of one color; by default a greedy coloring.

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x, a):
    ...     return a * x * x
    >>> (jx, ja) = ez.jacobian(ez.Forward, f, np.array([1.0, 2.0]), 3.0)
    >>> jx.tolist(), ja.tolist()
    ([[6.0, 0.0], [0.0, 12.0]], [1.0, 4.0])
    """
    _check_mode(mode)
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise AnnotationError(f"chunk must be a positive integer, got {chunk!r}")
    shape = _call_shape(f, args)
    plain = [a.val if isinstance(a, Annotation) else a for a in args]
    if sparsity is not None or colors is not None:
        return _sparse(mode, shape, plain, sparsity, colors, chunk or DEFAULT_CHUNK)
    if mode.reverse:
        lines = _output_size(shape, plain)
    else:
        lines = sum(np.size(v) for v, d in zip(plain, shape.values, strict=True) if d.diff)
    width = min(chunk or DEFAULT_CHUNK, max(lines, 1))
    return shape.sweeps(mode.reverse, True, width)(*plain)


@dataclass(frozen=True)
class _Shape:
    """A call shape of `jacobian` from Python: the function, its arguments described
    (`gradients.Value`) and its return type; its compiled sweeps."""

    f: EnzymeJit
    values: tuple[Value, ...]
    restype: Any
    compiled: dict[tuple, Any] = field(default_factory=dict)

    def sweeps(self, reverse: bool, dense: bool, width: int) -> Any:
        """The sweeps (`_source`), compiled by Numba, taking the plain arguments (after
        `colors, p` unless `dense`)."""
        key = (reverse, dense, width)
        if key not in self.compiled:
            src = _source(reverse, dense, self.values, self.restype, width, self.f)
            params = "*args" if dense else "colors, p, *args"
            self.compiled[key] = njit_glue()(src.function(params, _autodiff=autodiff, f=self.f))
        return self.compiled[key]


_SHAPES: dict[tuple, _Shape] = {}


def clear_cache() -> None:
    """Forget the call shapes seen and their compiled sweeps."""
    _SHAPES.clear()


def _call_shape(f: EnzymeJit, args: tuple) -> _Shape:
    """The `_Shape` of a call, looked up by a key cheaper than Numba's types."""
    key = _shape_key(args, f)
    hit = _SHAPES.get(key) if key is not None else None
    if hit is None:
        values, plain = _differentiable(f, args)
        hit = _Shape(f, values, _return_type(f, tuple(map(numba.typeof, plain))))
        if key is not None:
            _SHAPES[key] = hit
    return hit


def _jacobian_impl(mode, f, *args):  # no annotations: Numba compares signatures
    """`jacobian` inside jitted code: dense, `DEFAULT_CHUNK` lanes per sweep."""
    m, fn = _mode_and_function(mode, f)
    _check_mode(m)
    argv = [_arg(k, ty, f"args[{k}]") for k, ty in enumerate(args)]
    restype = _return_type(fn, tuple(a.val for a in argv))
    src = _source(m.reverse, True, _differentiable_types(fn, argv), restype, DEFAULT_CHUNK, fn)
    return src.function("mode, f, *args", _autodiff=autodiff)


overload(jacobian, jit_options=GLUE_OPTIONS)(_jacobian_impl)


def _check_mode(mode: Any) -> None:
    check_mode(mode)
    if mode.split or mode.with_primal:
        raise AnnotationError(f"jacobian takes enzpy.Forward or enzpy.Reverse, got {mode!r}")


def _return_type(f: EnzymeJit, argtypes: tuple[types.Type, ...]) -> types.Type:
    """The Numba type of `f`'s return for arguments of these types."""
    f.dispatcher.compile(argtypes)
    return f.dispatcher.overloads[argtypes].signature.return_type


def _output_size(shape: _Shape, plain: Sequence[Any]) -> int:
    """The number of float elements of the return (it runs the function on copies where the
    return holds arrays)."""
    leaves = _leaves(shape.restype, shape.f)
    if not any(is_array for _, is_array in leaves):
        return len(leaves)
    out = shape.f(*map(_copy, plain))
    return sum(np.size(_at(out, path)) for path, _ in leaves)


def _copy(v: Any) -> Any:
    return v.copy() if isinstance(v, np.ndarray) else v


def _at(v: Any, path: tuple[int, ...]) -> Any:
    for i in path:
        v = v[i]
    return v


# ---- the return's float leaves ----------------------------------------------------------


Leaf = tuple[tuple[int, ...], bool]  # (path into the return, whether an array)


def _leaves(restype: types.Type, f: Any) -> tuple[Leaf, ...]:
    """The float parts of a return of type `restype`, in order (`AnnotationError` if none)."""
    found = _float_leaves(restype)
    if not found:
        name = getattr(getattr(f, "py_func", None), "__qualname__", f)
        raise AnnotationError(f"jacobian: {name} returns no float data ({restype})")
    return found


def _float_leaves(ty: Any, at: tuple[int, ...] = ()) -> tuple[Leaf, ...]:
    if isinstance(ty, types.Tuple | types.UniTuple):
        return tuple(leaf for i, t in enumerate(ty.types) for leaf in _float_leaves(t, (*at, i)))
    if isinstance(ty, types.Float):
        return ((at, False),)
    if isinstance(ty, types.Array) and isinstance(ty.dtype, types.Float):
        return ((at, True),)
    return ()


def _rebuilt(ty: Any, parts: dict[tuple[int, ...], str], at: tuple[int, ...] = ()) -> str:
    """The source of a value of the return's structure holding `parts` at its float leaves
    and None elsewhere."""
    if isinstance(ty, types.Tuple | types.UniTuple):
        return tuple_source([_rebuilt(t, parts, (*at, i)) for i, t in enumerate(ty.types)])
    return parts.get(at, "None")


def _index(path: tuple[int, ...]) -> str:
    return "".join(f"[{i}]" for i in path)


# ---- the sweeps ----------------------------------------------------------------------------


def _source(
    reverse: bool, dense: bool, values: Sequence[Value], restype: Any, width: int, f: Any
) -> Source:
    """The sweeps of `width` lanes computing the Jacobian compressed by `colors` (one per
    seeded line) into `p` columns (forward) or rows (reverse). `dense`: every line its own
    color, the result shaped as `jacobian` returns it; otherwise the compressed blocks
    (per float leaf of the return in forward mode, of the one differentiated argument in
    reverse mode).

    The Jacobian is written into one block per (differentiated argument k, float leaf j of
    the return), `J{k}_{j}`, each line into the block holding it, so that the result needs
    no copy (fresh memory is costly: every page is faulted in)."""
    leaves = _leaves(restype, f)
    diff = [k for k, v in enumerate(values) if v.diff]
    if not diff:
        raise AnnotationError("jacobian: no float or float-array argument to differentiate")
    src = Source({"np": np, **_HELPERS})
    src.add(f"out = f({', '.join(copy_source(v) for v in values)})")
    for j, (path, is_array) in enumerate(leaves):
        src.add(f"m{j} = out{_index(path)}.size" if is_array else f"m{j} = 1")
    for k in diff:
        src.add(f"n{k} = {values[k].src}.size" if values[k].array else f"n{k} = 1")
    # where each seeded line starts: inputs (forward) or return elements (reverse)
    sizes = {f"q{j}": f"m{j}" for j in range(len(leaves))} if reverse else {}
    sizes = sizes or {f"o{k}": f"n{k}" for k in diff}
    starts = list(sizes)
    src.add(f"{starts[0]} = 0")
    for prev, name in zip(starts, starts[1:], strict=False):
        src.add(f"{name} = {prev} + {sizes[prev]}")
    if dense:
        src.add(f"p = {' + '.join(sizes.values())}")
        src.add("colors = np.arange(p)")
    # the lines of each block: (block index, first line, count)
    groups = [(int(name[1:]), name, size) for name, size in sizes.items()] if dense else []
    groups = groups or [(diff[0] if not reverse else 0, "0", "p")]
    sweeps = _Sweeps(src, values, diff, leaves, groups, width, f)
    blocks = sweeps.reverse() if reverse else sweeps.forward()
    if not dense:
        src.add(f"return {tuple_source(blocks)}")
        return src
    result = []
    for k, v in enumerate(values):
        if not v.diff:
            result.append("None")
            continue
        parts = {}
        for j, (path, is_array) in enumerate(leaves):
            shape = [f"out{_index(path)}.shape"] * is_array + [f"{v.src}.shape"] * v.array
            parts[path] = f"J{k}_{j}.reshape({' + '.join(shape) or '()'})"
        result.append(_rebuilt(restype, parts))
    src.add(f"return {tuple_source(result)}")
    return src


# Small compiled helpers, called by address from the sweeps (`by_address`): what they do by
# loops would cost Numba seconds to compile as array expressions in every sweeps function.


@numba.njit(cache=True)
def _seed(like: Any, colors: Any, first: int, color: int) -> Any:  # pragma: no cover
    """A seed shaped and typed like `like`: 1 where the lines of `colors` from `first` on
    have `color`, 0 elsewhere."""
    flat = np.zeros(like.size, like.dtype)
    for i in range(flat.size):
        if colors[first + i] == color:
            flat[i] = 1.0
    return flat.reshape(like.shape)


@numba.njit(cache=True)
def _put_column(block: Any, c: int, values: Any) -> None:  # pragma: no cover
    """`block[:, c] = values.ravel()`."""
    for i, v in enumerate(values.flat):
        block[i, c] = v


@numba.njit(cache=True)
def _put_row(block: Any, r: int, values: Any) -> None:  # pragma: no cover
    """`block[r] = values.ravel()`."""
    for i, v in enumerate(values.flat):
        block[r, i] = v


_HELPERS = {
    name: by_address(f)
    for name, f in (("_seed", _seed), ("_put_column", _put_column), ("_put_row", _put_row))
}


Group = tuple[int, str, str]  # a block's lines: (its index, first line, count)


@dataclass
class _Sweeps:
    """The loop over sweeps of `width` lanes, added to `src` (see `_source`): the
    differentiated arguments `diff` of `values`, the float `leaves` of `f`'s return, and the
    `groups` of lines each block holds."""

    src: Source
    values: Sequence[Value]
    diff: list[int]
    leaves: tuple[Leaf, ...]
    groups: list[Group]
    width: int
    f: Any

    def forward(self) -> list[str]:
        """Blocks J{k}_{j} (return elements of leaf j × lines of group k): column c the
        tangent of the return along the inputs of color c. Returns the last group's."""
        src, leaves = self.src, self.leaves
        batch = src.name("BatchDuplicated", BatchDuplicated)
        for k, _, count in self.groups:
            for j in range(len(leaves)):
                src.add(f"J{k}_{j} = np.empty((m{j}, {count}))")
        src.add(f"for start in range(0, p, {self.width}):")
        anns = []
        for k, v in enumerate(self.values):
            if not v.diff:
                anns.append(const_copy(src, v))
                continue
            lanes = []
            for lane in range(self.width):
                if v.array:
                    lanes.append(f"_seed({v.src}, colors, o{k}, start + {lane})")
                else:
                    cast = src.name("cast", v.cast)
                    lanes.append(f"{cast}(1.0 if colors[o{k}] == start + {lane} else 0.0)")
            anns.append(f"{batch}({copy_source(v)}, {tuple_source(lanes)})")
        src.add(f"t = _autodiff({src.name('Forward', Forward)}, f, {', '.join(anns)})", 2)

        def put(lane: int, k: int, c: str) -> list[str]:
            return [
                f"_put_column(J{k}_{j}, {c}, t[{lane}]{_index(path)})"
                if is_array
                else f"J{k}_{j}[0, {c}] = t[{lane}]{_index(path)}"
                for j, (path, is_array) in enumerate(leaves)
            ]

        self._scatter(put)
        return [f"J{self.groups[-1][0]}_{j}" for j in range(len(leaves))]

    def reverse(self) -> list[str]:
        """Blocks J{k}_{j} (lines of group j × elements of argument k): row c the gradient
        of the sum of the return's elements of color c (the return written into arrays by
        `_by_reference` and seeded through their shadows). Returns the blocks."""
        src, values, diff = self.src, self.values, self.diff
        batch = src.name("BatchDuplicated", BatchDuplicated)
        for j, _, count in self.groups:
            for k in diff:
                src.add(f"J{k}_{j} = np.empty(({count}, n{k}))")
        src.add(f"for start in range(0, p, {self.width}):")
        anns = []
        for k, v in enumerate(values):
            if not v.diff:
                anns.append(const_copy(src, v))
            elif v.array:
                for lane in range(self.width):
                    src.add(f"d{k}_{lane} = np.zeros_like({v.src})", 2)
                shadows = tuple_source([f"d{k}_{lane}" for lane in range(self.width)])
                anns.append(f"{batch}({v.src}.copy(), {shadows})")
            else:
                anns.append(f"{src.name('Active', Active)}({v.src})")
        for j in range(len(self.leaves)):
            src.add(f"r{j} = np.empty(m{j})", 2)
            seeds = [f"_seed(r{j}, colors, q{j}, start + {lane})" for lane in range(self.width)]
            anns.append(f"{batch}(r{j}, {tuple_source(seeds)})")
        into = src.name("into", _by_reference(self.f, len(values), self.leaves))
        src.add(f"adj = _autodiff({src.name('Reverse', Reverse)}, {into}, {', '.join(anns)})", 2)

        def put(lane: int, j: int, r: str) -> list[str]:
            return [
                f"_put_row(J{k}_{j}, {r}, d{k}_{lane})"
                if values[k].array
                else f"J{k}_{j}[{r}, 0] = adj[{k}][{lane}]"
                for k in diff
            ]

        self._scatter(put)
        return [f"J{k}_{j}" for j, _, _ in self.groups for k in diff]

    def _scatter(self, put: Callable[[int, int, str], list[str]]) -> None:
        """Per lane, the statements `put(lane, block, line within the block)` writing its
        line into the block of the group holding it (none for a lane past the last line)."""
        for lane in range(self.width):
            for g, (block, first, count) in enumerate(self.groups):
                self.src.add(f"{'el' if g else ''}if start + {lane} < {first} + {count}:", 2)
                for statement in put(lane, block, f"start + {lane} - {first}"):
                    self.src.add(statement, 3)


_BY_REFERENCE: dict[tuple, EnzymeJit] = {}


def _by_reference(f: EnzymeJit, nargs: int, paths: tuple[Leaf, ...]) -> EnzymeJit:
    """`into(*args, *outs)`: calls `f` and writes its return's float leaves (at `paths`)
    into the flat arrays `outs`, so that reverse mode seeds them through their shadows."""
    key = (f, nargs, paths)
    if key not in _BY_REFERENCE:
        params = [f"a{i}" for i in range(nargs)]
        outs = [f"o{j}" for j in range(len(paths))]
        src = Source({"_f": f, "np": np})
        src.add(f"r = _f({', '.join(params)})")
        for o, (path, is_array) in zip(outs, paths, strict=True):
            leaf = f"r{_index(path)}"
            if is_array:  # (a loop: a slice assignment costs Numba seconds to compile)
                src.add(f"for i, v in enumerate(np.ravel({leaf})):")
                src.add(f"{o}[i] = v", 2)
            else:
                src.add(f"{o}[0] = {leaf}")
        _BY_REFERENCE[key] = enzyme_jit(src.function(", ".join(params + outs)))
    return _BY_REFERENCE[key]


# ---- sparse --------------------------------------------------------------------------------


def _sparse(
    mode: Mode, shape: _Shape, plain: list[Any], sparsity: Any, colors: Any, chunk: int
) -> Any:
    """The Jacobian as a CSR matrix from one lane per color (compressed seeding)."""
    import scipy.sparse as sp

    diff = [k for k, v in enumerate(shape.values) if v.diff]
    if len(diff) != 1 or sparsity is None:
        raise AnnotationError(
            "a sparse jacobian needs `sparsity` (the Jacobian's structure) and exactly one "
            "differentiated argument (pass the others as Const)"
        )
    (k,) = diff
    pattern = sp.coo_matrix(sparsity)
    m, n = pattern.shape
    if n != np.size(plain[k]):
        raise AnnotationError(
            f"sparsity has {n} columns; argument {k} has {np.size(plain[k])} elements"
        )
    rows = _output_size(shape, plain) if mode.reverse else m
    if rows != m:
        raise AnnotationError(f"sparsity has {m} rows; the return has {rows}")
    along = pattern if not mode.reverse else pattern.T
    colors = greedy_coloring(along) if colors is None else np.asarray(colors, dtype=np.int64)
    seeded = along.shape[1]
    if colors.shape != (seeded,) or colors.min(initial=0) < 0:
        raise AnnotationError(f"colors must give one color (>= 0) to each of {seeded} lines")
    _check_coloring(along, colors)
    ncolors = int(colors.max(initial=-1)) + 1
    width = min(chunk, max(ncolors, 1))
    blocks = shape.sweeps(mode.reverse, False, width)(colors, ncolors, *plain)
    if mode.reverse:
        (compressed,) = blocks
        vals = compressed[colors[pattern.row], pattern.col]
    else:
        compressed = np.concatenate(blocks, axis=0)
        if compressed.shape[0] != m:
            raise AnnotationError(f"sparsity has {m} rows; the return has {compressed.shape[0]}")
        vals = compressed[pattern.row, colors[pattern.col]]
    return sp.csr_matrix((vals, (pattern.row, pattern.col)), shape=(m, n))


def greedy_coloring(pattern: Any) -> np.ndarray:
    """A coloring of the columns of a sparsity pattern (SciPy sparse matrix) such that no
    row has two nonzeros in columns of one color, assigned greedily in column order."""
    import scipy.sparse as sp

    csc, csr = sp.csc_matrix(pattern), sp.csr_matrix(pattern)
    colors = np.full(csc.shape[1], -1, dtype=np.int64)
    for j in range(csc.shape[1]):
        rows = csc.indices[csc.indptr[j] : csc.indptr[j + 1]]
        taken = {
            colors[i]
            for r in rows
            for i in csr.indices[csr.indptr[r] : csr.indptr[r + 1]]
            if colors[i] >= 0
        }
        colors[j] = next(c for c in range(len(taken) + 1) if c not in taken)
    return colors


def _check_coloring(pattern: Any, colors: np.ndarray) -> None:
    """`AnnotationError` when two columns of one color share a row of `pattern`."""
    import scipy.sparse as sp

    csr = sp.csr_matrix(pattern)
    for r in range(csr.shape[0]):
        cs = colors[csr.indices[csr.indptr[r] : csr.indptr[r + 1]]]
        if len(np.unique(cs)) != len(cs):
            raise AnnotationError(
                f"colors: two nonzeros of line {r} of the sparsity pattern have one color "
                "(their derivatives would be added together)"
            )
