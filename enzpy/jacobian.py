"""`jacobian`: whole Jacobians by batched forward sweeps or by reverse sweeps, dense or
compressed by a coloring of a known sparsity pattern."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from .annotations import Active, Annotation, BatchDuplicated, Const
from .api import _differentiable, autodiff
from .errors import AnnotationError
from .jit import EnzymeJit, enzyme_jit
from .modes import ForwardWithPrimal, Mode, Reverse
from .signatures import check_mode

DEFAULT_CHUNK = 8  # tangents per forward sweep (see bench: width 8 is where it pays most)


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
    is done once per sweep), for tall Jacobians; `Reverse` one row per sweep, for wide ones.
    Runs on copies of the arguments (they are not mutated).

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
    check_mode(mode)
    if mode.split or mode.with_primal:
        raise AnnotationError(f"jacobian takes enzpy.Forward or enzpy.Reverse, got {mode!r}")
    if chunk is not None and (not isinstance(chunk, int) or chunk < 1):
        raise AnnotationError(f"chunk must be a positive integer, got {chunk!r}")
    values, plain = _differentiable(f, args)
    diff = [v.diff for v in values]
    if not any(diff):
        raise AnnotationError("jacobian: no float or float-array argument to differentiate")
    if sparsity is not None or colors is not None:
        return _sparse(mode, f, plain, diff, sparsity, colors)
    sweep = _reverse_rows if mode.reverse else _forward_columns
    return sweep(f, plain, diff, chunk or DEFAULT_CHUNK)


# ---- seeds and outputs --------------------------------------------------------------------


def _copy(v: Any) -> Any:
    return v.copy() if isinstance(v, np.ndarray) else v


def _zero(v: Any) -> Any:
    return np.zeros_like(v) if isinstance(v, np.ndarray) else type(v)(0.0)


def _unit(v: Any, flat: np.ndarray) -> Any:
    """A tangent shaped like `v` holding `flat` (its elements, flattened)."""
    if isinstance(v, np.ndarray):
        return flat.reshape(v.shape).astype(v.dtype)
    return type(v)(flat[0])


def _leaves(out: Any) -> list[Any]:
    """The float parts of a return (None for the others), flattened in order."""
    if isinstance(out, tuple):
        return [leaf for o in out for leaf in _leaves(o)]
    floating = isinstance(out, float | np.floating) or (
        isinstance(out, np.ndarray) and out.dtype.kind == "f"
    )
    return [out if floating else None]


def _rebuild(out: Any, parts: Iterator[Any]) -> Any:
    """`out`'s structure with its leaves taken from `parts`."""
    if isinstance(out, tuple):
        return tuple(_rebuild(o, parts) for o in out)
    return next(parts)


def _size(v: Any) -> int:
    return v.size if isinstance(v, np.ndarray) else 1


def _shape(v: Any) -> tuple[int, ...]:
    return v.shape if isinstance(v, np.ndarray) else ()


def _checked_output(out: Any, name: str) -> list[Any]:
    leaves = _leaves(out)
    if all(leaf is None for leaf in leaves):
        raise AnnotationError(f"jacobian: {name} returns no float data ({type(out).__name__})")
    return leaves


# ---- dense ---------------------------------------------------------------------------------


def _forward_columns(f: EnzymeJit, plain: list[Any], diff: list[bool], chunk: int) -> tuple:
    """Columns `chunk` at a time: one batched forward sweep per chunk, seeds padded with
    zeros to `chunk` lanes (one compiled derivative for every sweep)."""
    width = min(chunk, sum(_size(v) for v, d in zip(plain, diff, strict=True) if d))
    out: Any = None
    leaves: list[Any] = []
    jac: list[Any] = []
    for k, (v, d) in enumerate(zip(plain, diff, strict=True)):
        if not d:
            jac.append(None)
            continue
        size = _size(v)
        blocks: list[Any] = []  # per output leaf: flat rows x flat columns
        for start in range(0, size, width):
            tangents, value = autodiff(
                ForwardWithPrimal, f, *_batch_seeds(plain, diff, k, start, width)
            )
            if out is None:
                out, leaves = value, _checked_output(value, f.py_func.__qualname__)
            if not blocks:
                blocks = [None if p is None else np.empty((_size(p), size)) for p in leaves]
            for lane, i in enumerate(range(start, min(start + width, size))):
                for block, t in zip(blocks, _leaves(tangents[lane]), strict=True):
                    if block is not None:
                        block[:, i] = np.ravel(t)
        jac.append(blocks)
    return tuple(
        None if b is None else _shaped(out, leaves, b, _shape(v))
        for b, v in zip(jac, plain, strict=True)
    )


def _batch_seeds(
    plain: list[Any], diff: list[bool], k: int, start: int, width: int
) -> list[Annotation]:
    """Annotations on copies seeding elements `start`, ... of argument `k` (a unit tangent
    per lane, zero lanes past its end) and zero tangents for the other arguments."""
    ann: list[Annotation] = []
    for j, (w, d) in enumerate(zip(plain, diff, strict=True)):
        if not d:
            ann.append(Const(_copy(w)))
            continue
        seeds = []
        for lane in range(width):
            flat = np.zeros(_size(w))
            if j == k and start + lane < flat.size:
                flat[start + lane] = 1.0
            seeds.append(_unit(w, flat))
        ann.append(BatchDuplicated(_copy(w), seeds))
    return ann


def _shaped(out: Any, leaves: list[Any], blocks: list[Any], arg_shape: tuple) -> Any:
    """The Jacobian blocks (flat rows × flat columns) shaped `leaf.shape + arg_shape`, in
    the return's structure."""
    parts = (
        None if b is None else b.reshape(_shape(leaf) + arg_shape)
        for leaf, b in zip(leaves, blocks, strict=True)
    )
    return _rebuild(out, parts)


def _reverse_rows(f: EnzymeJit, plain: list[Any], diff: list[bool], chunk: int) -> tuple:
    """Rows `chunk` at a time: one batched reverse sweep per chunk, each lane seeding one
    row (the return written into arrays by `_by_reference`, seeded through their shadows)."""
    out, leaves, m = _output(f, plain)
    rows = _pullbacks(f, plain, diff, out, m, lambda r: np.eye(1, m, r)[0], chunk)
    return tuple(
        None if g is None else _shaped(out, leaves, _split_rows(g, leaves), _shape(v))
        for g, v in zip(rows, plain, strict=True)
    )


def _output(f: EnzymeJit, plain: list[Any]) -> tuple[Any, list[Any], int]:
    """The return of `f` on copies of the arguments, its leaves, and its number of float
    elements."""
    out = f(*map(_copy, plain))
    leaves = _checked_output(out, f.py_func.__qualname__)
    return out, leaves, sum(_size(leaf) for leaf in leaves if leaf is not None)


def _pullbacks(
    f: EnzymeJit,
    plain: list[Any],
    diff: list[bool],
    out: Any,
    count: int,
    cotangent: Callable[[int], np.ndarray],
    chunk: int,
) -> list[Any]:
    """Per argument (None where not differentiated) the `count` × size array whose row i is
    cotangent(i)ᵀ·J, the cotangent given flat over the return's float elements: batched
    reverse sweeps of `chunk` lanes (padded with zero cotangents)."""
    leaves = _leaves(out)
    into = _by_reference(f, len(plain), _leaf_paths(out))
    width = min(chunk, count)
    rows = [np.empty((count, _size(v))) if d else None for v, d in zip(plain, diff, strict=True)]
    for start in range(0, count, width):
        lanes = range(start, min(start + width, count))
        seeds = [cotangent(i) for i in lanes] + [np.zeros(0)] * (width - len(lanes))
        ann: list[Annotation] = [
            (
                BatchDuplicated(v.copy(), [np.zeros_like(v) for _ in range(width)])
                if isinstance(v, np.ndarray)
                else Active(v)
            )
            if d
            else Const(_copy(v))
            for v, d in zip(plain, diff, strict=True)
        ]
        outs = []
        at = 0
        for leaf in (leaf for leaf in leaves if leaf is not None):
            n = _size(leaf)
            lane_seeds = [s[at : at + n].copy() if s.size else np.zeros(n) for s in seeds]
            outs.append(BatchDuplicated(np.empty(n), lane_seeds))
            at += n
        adjoints = autodiff(Reverse, into, *ann, *outs)
        for r, a, adj in zip(rows, ann, adjoints[: len(ann)], strict=True):
            if r is None:
                continue
            for lane, i in enumerate(lanes):
                r[i] = np.ravel(a.dvals[lane]) if isinstance(a, BatchDuplicated) else adj[lane]
    return rows


def _leaf_paths(out: Any, at: tuple[int, ...] = ()) -> tuple[tuple[tuple[int, ...], bool], ...]:
    """(path, whether an array) of each float leaf of a return, in order."""
    if isinstance(out, tuple):
        return tuple(p for i, o in enumerate(out) for p in _leaf_paths(o, (*at, i)))
    return () if _leaves(out)[0] is None else ((at, isinstance(out, np.ndarray)),)


_BY_REFERENCE: dict[tuple, EnzymeJit] = {}


def _by_reference(f: EnzymeJit, nargs: int, paths: tuple) -> EnzymeJit:
    """`into(*args, *outs)`: calls `f` and writes its return's float leaves (at `paths`)
    into the flat arrays `outs`, so that reverse mode seeds them through their shadows."""
    key = (f, nargs, paths)
    if key not in _BY_REFERENCE:
        params = [f"a{i}" for i in range(nargs)]
        outs = [f"o{j}" for j in range(len(paths))]
        lines = [f"def into({', '.join(params + outs)}):", f"    r = _f({', '.join(params)})"]
        for o, (path, is_array) in zip(outs, paths, strict=True):
            leaf = "r" + "".join(f"[{i}]" for i in path)
            lines.append(f"    {o}[:] = np.ravel({leaf})" if is_array else f"    {o}[0] = {leaf}")
        ns: dict[str, Any] = {"_f": f, "np": np}
        exec("\n".join(lines) + "\n", ns)
        _BY_REFERENCE[key] = enzyme_jit(ns["into"])
    return _BY_REFERENCE[key]


def _split_rows(g: np.ndarray, leaves: list[Any]) -> list[Any]:
    """The rows of `g` per output leaf (None for leaves without floats)."""
    parts: list[Any] = []
    at = 0
    for leaf in leaves:
        if leaf is None:
            parts.append(None)
            continue
        parts.append(g[at : at + _size(leaf)])
        at += _size(leaf)
    return parts


# ---- sparse --------------------------------------------------------------------------------


def _sparse(
    mode: Mode, f: EnzymeJit, plain: list[Any], diff: list[bool], sparsity: Any, colors: Any
) -> Any:
    """The Jacobian as a CSR matrix from one sweep per color (compressed seeding)."""
    import scipy.sparse as sp

    if sum(diff) != 1 or sparsity is None:
        raise AnnotationError(
            "a sparse jacobian needs `sparsity` (the Jacobian's structure) and exactly one "
            "differentiated argument (pass the others as Const)"
        )
    (k,) = [j for j, d in enumerate(diff) if d]
    pattern = sp.coo_matrix(sparsity)
    m, n = pattern.shape
    if n != _size(plain[k]):
        raise AnnotationError(
            f"sparsity has {n} columns; argument {k} has {_size(plain[k])} elements"
        )
    along = pattern if not mode.reverse else pattern.T
    colors = greedy_coloring(along) if colors is None else np.asarray(colors, dtype=np.int64)
    seeded = along.shape[1]
    if colors.shape != (seeded,) or colors.min(initial=0) < 0:
        raise AnnotationError(f"colors must give one color (>= 0) to each of {seeded} lines")
    _check_coloring(along, colors)
    ncolors = int(colors.max(initial=-1)) + 1
    if mode.reverse:
        compressed = _reverse_compressed(f, plain, diff, colors, ncolors, m)
        vals = compressed[colors[pattern.row], pattern.col]
    else:
        compressed = _forward_compressed(f, plain, k, colors, ncolors)
        if compressed.shape[0] != m:
            raise AnnotationError(f"sparsity has {m} rows; the return has {compressed.shape[0]}")
        vals = compressed[pattern.row, colors[pattern.col]]
    return sp.csr_matrix((vals, (pattern.row, pattern.col)), shape=(m, n))


def _forward_compressed(
    f: EnzymeJit, plain: list[Any], k: int, colors: np.ndarray, ncolors: int
) -> np.ndarray:
    """J·S: column c the tangent of the return for the sum of the columns of color c."""
    x = plain[k]
    seeds = [_unit(x, (colors == c).astype(float)) for c in range(ncolors)]
    width = min(DEFAULT_CHUNK, ncolors)
    cols: list[np.ndarray] = []
    for start in range(0, ncolors, width):
        lanes = seeds[start : start + width]
        lanes += [_zero(x)] * (width - len(lanes))
        ann = [
            BatchDuplicated(_copy(v), tuple(lanes)) if j == k else Const(_copy(v))
            for j, v in enumerate(plain)
        ]
        tangents = autodiff(ForwardWithPrimal, f, *ann)[0]
        for t in tangents[: min(width, ncolors - start)]:
            cols.append(np.concatenate([np.ravel(p) for p in _leaves(t) if p is not None]))
    return np.stack(cols, axis=1)


def _reverse_compressed(
    f: EnzymeJit, plain: list[Any], diff: list[bool], colors: np.ndarray, ncolors: int, m: int
) -> np.ndarray:
    """Sᵀ·J: row c the gradient of the sum of the return's rows of color c."""
    out, _, rows = _output(f, plain)
    if rows != m:
        raise AnnotationError(f"sparsity has {m} rows; the return has {rows}")

    def cotangent(c: int) -> np.ndarray:
        return (colors == c).astype(np.float64)

    return _pullbacks(f, plain, diff, out, ncolors, cotangent, DEFAULT_CHUNK)[diff.index(True)]


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
