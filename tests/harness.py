"""Checking derivatives against the mathematics (no tests in this module).

The semantics being checked are Enzyme's, as fixed in DESIGN.md.

*The whole map.*  A possibly mutating function ``z = f(x, y, a, ...)`` is viewed as the map

    theta = (x, y, a, ...)  |->  (x_a, y_a, ..., z)

where ``theta`` is the concatenation of the *active* inputs (float arrays flattened in C
order, float scalars), ``x_a`` is the contents of float array argument ``x`` *after* ``f``
has run, and ``z`` is the return value flattened (a float, an array, or a tuple of
floats / arrays; integer parts of a return carry no derivative and are dropped).  J is the
Jacobian of that map.  ``f`` always runs on copies of the inputs (copies keep the memory
layout: C, F, or a strided view over fresh memory).

*Forward mode* computes ``J.u``.  With ``Duplicated(x, dx)`` the shadow ``dx`` holds the
tangent of ``x`` on entry and the tangent of ``x_a`` on exit; the call returns ``z_dot``,
whose structure mirrors the return (float -> float, array -> array, tuple -> tuple).
``ForwardWithPrimal`` returns ``(z_dot, z)``.  A float scalar is ``Duplicated(a, da)``;
``Const`` arguments (and plain ints) have zero tangent.

*Reverse mode* computes ``v^T.J`` with ``v = (x_bar_a, ..., z_bar)``.  ``x_bar_a`` is what
the caller puts in the shadow ``dx`` before the call, ``z_bar`` is the return seed (1.0 for
an ``Active`` float return, 0 for a ``Const`` return).  On exit ``dx`` holds ``(v^T J)_x``
and the call returns a tuple with the adjoint of every ``Active(a)`` argument and ``None``
elsewhere.  Combined reverse mode does not accept a Duplicated (array) return, so functions
returning arrays are checked in reverse mode with a ``Const`` return (``z_bar = 0``).

*Finite differences.*  ``fd_jvp`` evaluates the whole map with central differences along
the tangent direction, improved by one Richardson extrapolation step::

    D(h) = (F(theta + h u) - F(theta - h u)) / 2h,   JVP ~ (4 D(h/2) - D(h)) / 3

with ``h = eps * (1 + |theta|_inf) / |u|_inf`` and ``eps = 1e-4`` by default: truncation
error O(h^4), rounding error ~1e-16/h, i.e. ~1e-11 relative for smooth float64 functions.
(Corpus inputs keep a margin of at least ~1e-2 from kinks, branch switches and changes of
a loop trip count, so the step never crosses one.)

*float32.*  Finite differences are never taken in float32.  ``whole_map`` runs the
*Python* function (``f.py_func``) with every float32 array / scalar upcast to float64, so
the reference derivative is the float64 derivative of the same code.  The derivative from
the float32 native code is then compared with tolerances appropriate to float32
(rtol ~1e-3).  Corpus functions written for float32 must therefore be dtype-generic (use
``np.empty_like(x)``, ``x[0] * 0`` for accumulators) rather than hard-code float32.

*Tolerances.*  ``assert_close(actual, expected, rtol, atol)`` accepts
``|actual_i - expected_i| <= atol + rtol * (|expected_i| + max_j |expected_j|)``: FD noise
scales with the size of the whole output block, not of each entry.

*Dot-product test.*  With random ``u`` (tangents of the active inputs) and random ``v``
(cotangents of the active arrays after execution, plus the return seed), forward and
reverse mode must satisfy ``<v, J u> == <J^T v, u>`` to ~1e-10 relative: no step-size noise.
"""

from __future__ import annotations

import math
import os
import pathlib
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

import enzpy as ez

# --------------------------------------------------------------------------- classification


def is_float_array(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def is_float_scalar(a: Any) -> bool:
    if isinstance(a, bool | np.bool_):
        return False
    return isinstance(a, float | np.floating)


def is_plain_int(a: Any) -> bool:
    return isinstance(a, bool | int | np.integer | np.bool_)


def is_float32(a: Any) -> bool:
    return (is_float_array(a) and a.dtype == np.float32) or isinstance(a, np.float32)


def py_function(f):
    """The Python function behind a dispatcher (``f.py_func``), or ``f`` itself."""
    return getattr(f, "py_func", f)


# --------------------------------------------------------------------------- copies


def clone(a: Any) -> Any:
    """A deep copy of an argument that keeps its memory layout.

    C- and F-contiguous arrays stay so; other strided views are rebuilt with the same
    strides over fresh memory (so a jitted function sees the same Numba type, layout 'A').
    """
    if not isinstance(a, np.ndarray):
        return a
    if a.flags.c_contiguous:
        return a.copy(order="C")
    if a.flags.f_contiguous:
        return a.copy(order="F")
    item = a.itemsize
    if any(s % item for s in a.strides):
        raise ValueError("clone: strides must be multiples of the item size")
    lo = sum(min(0, (n - 1) * s) for n, s in zip(a.shape, a.strides, strict=True))
    hi = sum(max(0, (n - 1) * s) for n, s in zip(a.shape, a.strides, strict=True))
    buf = np.zeros((hi - lo) // item + 1, dtype=a.dtype)
    out = as_strided(buf[(-lo) // item :], shape=a.shape, strides=a.strides, writeable=True)
    out[...] = a
    return out


def clone_args(args) -> list:
    return [clone(a) for a in args]


def _upcast(a: Any) -> Any:
    """float32 -> float64 (arrays and scalars), a copy in every case."""
    if is_float_array(a) and a.dtype != np.float64:
        return a.astype(np.float64)
    if isinstance(a, np.floating) and not isinstance(a, np.float64):
        return np.float64(a)
    return clone(a)


def random_like(a: Any, rng: np.random.Generator) -> Any:
    """A random (standard normal) value of ``a``'s shape and dtype: a tangent or cotangent."""
    if is_float_array(a):
        out = np.empty_like(a)  # keeps C/F layout
        out[...] = rng.standard_normal(a.shape).astype(a.dtype)
        return out
    if is_float_scalar(a):
        v = float(rng.standard_normal())
        return type(a)(v) if isinstance(a, np.floating) else v
    raise TypeError(f"no tangent for {type(a).__name__}")


# --------------------------------------------------------------------------- return structure


def ret_spec(z: Any):
    """Structure of a return value: None, 'f', ('a', shape), ('t', [spec...]), or 'i'."""
    if z is None:
        return None
    if is_float_scalar(z):
        return "f"
    if isinstance(z, np.ndarray):
        return ("a", z.shape) if z.dtype.kind == "f" else "i"
    if isinstance(z, tuple):
        return ("t", [ret_spec(e) for e in z])
    if is_plain_int(z):
        return "i"
    raise TypeError(f"unsupported return type {type(z).__name__}")


def ret_flatten(z: Any) -> np.ndarray:
    spec = ret_spec(z)
    if spec is None or spec == "i":
        return np.zeros(0)
    if spec == "f":
        return np.array([float(z)])
    if spec[0] == "a":
        return np.asarray(z, dtype=np.float64).ravel()
    return np.concatenate([np.zeros(0)] + [ret_flatten(e) for e in z])


def ret_size(spec) -> int:
    if spec is None or spec == "i":
        return 0
    if spec == "f":
        return 1
    if spec[0] == "a":
        return int(np.prod(spec[1], dtype=np.int64))
    return sum(ret_size(s) for s in spec[1])


def ret_unflatten(vec: np.ndarray, spec):
    """Inverse of ret_flatten (integer parts come back as None)."""
    if spec is None or spec == "i":
        return None
    if spec == "f":
        return float(vec[0])
    if spec[0] == "a":
        return np.asarray(vec).reshape(spec[1])
    out, k = [], 0
    for s in spec[1]:
        n = ret_size(s)
        out.append(ret_unflatten(vec[k : k + n], s))
        k += n
    return tuple(out)


def ret_has_array(spec) -> bool:
    if isinstance(spec, tuple):
        return spec[0] == "a" or any(ret_has_array(s) for s in spec[1])
    return False


# --------------------------------------------------------------------------- the whole map


@dataclass
class WholeMap:
    """``theta -> (float array args after execution..., return)`` for a function ``f``.

    ``array_outputs`` lists every float array argument (active or not); ``__call__`` returns
    them flattened (C order) followed by the flattened return value.  ``f`` runs on copies of
    ``args`` (float32 upcast to float64 when ``upcast``) and the template is never modified.
    """

    f: Any
    args: tuple
    active_idx: tuple
    upcast: bool = True
    in_sizes: list = field(init=False)
    array_outputs: list = field(init=False)
    out_shapes: dict = field(init=False)
    spec: Any = field(init=False)

    def __post_init__(self):
        self.args = tuple(self.args)
        self.active_idx = tuple(self.active_idx)
        for i in self.active_idx:
            a = self.args[i]
            if not (is_float_array(a) or is_float_scalar(a)):
                raise TypeError(f"argument {i} ({type(a).__name__}) cannot be active")
        self.in_sizes = [np.size(self.args[i]) for i in self.active_idx]
        self.array_outputs = [i for i, a in enumerate(self.args) if is_float_array(a)]
        self.out_shapes = {i: self.args[i].shape for i in self.array_outputs}
        self.spec = ret_spec(self.run(self.args)[1])

    # inputs
    def pack(self, per_arg) -> np.ndarray:
        """Flatten values for the active arguments (a dict or a sequence aligned with
        active_idx) into one float64 vector."""
        vals = [per_arg[i] for i in self.active_idx] if isinstance(per_arg, dict) else per_arg
        parts = [np.asarray(v, dtype=np.float64).ravel() for v in vals]
        return np.concatenate([np.zeros(0)] + parts)

    def unpack(self, theta: np.ndarray) -> dict:
        out, k = {}, 0
        for i, n in zip(self.active_idx, self.in_sizes, strict=True):
            a = self.args[i]
            if is_float_array(a):
                out[i] = theta[k : k + n].reshape(a.shape)
            else:
                out[i] = float(theta[k])
            k += n
        return out

    @property
    def theta0(self) -> np.ndarray:
        return self.pack({i: self.args[i] for i in self.active_idx})

    def build_args(self, theta: np.ndarray | None = None) -> list:
        args = [(_upcast(a) if self.upcast else clone(a)) for a in self.args]
        if theta is not None:
            for i, val in self.unpack(theta).items():
                if isinstance(args[i], np.ndarray):
                    args[i][...] = val
                elif isinstance(args[i], np.floating):
                    args[i] = type(args[i])(val)
                else:
                    args[i] = float(val)
        return args

    def run(self, args) -> tuple[list, Any]:
        args = [(_upcast(a) if self.upcast else clone(a)) for a in args]
        z = self.f(*args)
        return args, z

    # outputs
    def __call__(self, theta: np.ndarray) -> np.ndarray:
        args = self.build_args(theta)
        z = self.f(*args)
        parts = [np.asarray(args[i], dtype=np.float64).ravel() for i in self.array_outputs]
        return np.concatenate([np.zeros(0)] + parts + [ret_flatten(z)])

    def split(self, vec: np.ndarray) -> tuple[dict, Any]:
        """Output vector -> ({array arg index: array}, structured return)."""
        out, k = {}, 0
        for i in self.array_outputs:
            n = int(np.prod(self.out_shapes[i], dtype=np.int64))
            out[i] = vec[k : k + n].reshape(self.out_shapes[i])
            k += n
        return out, ret_unflatten(vec[k:], self.spec)

    @property
    def n_out(self) -> int:
        return sum(int(np.prod(s, dtype=np.int64)) for s in self.out_shapes.values()) + ret_size(
            self.spec
        )


def whole_map(f, args, active_idx, upcast: bool = True) -> WholeMap:
    """The whole map of ``f`` (a Python function or a dispatcher; a dispatcher is replaced by
    its ``py_func`` so the reference is the Python semantics)."""
    return WholeMap(py_function(f), tuple(args), tuple(active_idx), upcast=upcast)


def _fd_direction(F, theta0, u, eps) -> np.ndarray:
    un = float(np.max(np.abs(u))) if u.size else 0.0
    if un == 0.0:
        return np.zeros_like(F(theta0))
    h = eps * (1.0 + float(np.max(np.abs(theta0)))) / un

    def d(hh):
        return (F(theta0 + hh * u) - F(theta0 - hh * u)) / (2.0 * hh)

    return (4.0 * d(h / 2.0) - d(h)) / 3.0


def fd_jvp(f, args, active_idx, tangents, eps: float = 1e-4, upcast: bool = True):
    """Central finite-difference (Richardson-extrapolated) J.u of the whole map.

    ``tangents`` is a dict {arg index: tangent} or a sequence aligned with ``active_idx``.
    Returns ``(arrays, ret)``: a dict {float array arg index: tangent of the array after
    execution} (inactive float arrays included, they should come out ~0) and the return
    tangent structured like the return (None for no/integer return).
    """
    wm = f if isinstance(f, WholeMap) else whole_map(f, args, active_idx, upcast)
    u = wm.pack(tangents)
    return wm.split(_fd_direction(wm, wm.theta0, u, eps))


def fd_jacobian(wm: WholeMap, eps: float = 1e-4) -> np.ndarray:
    """Full FD Jacobian (n_out x n_in), one column per active input coordinate."""
    theta0 = wm.theta0
    cols = []
    for j in range(theta0.size):
        e = np.zeros_like(theta0)
        e[j] = 1.0
        cols.append(_fd_direction(wm, theta0, e, eps))
    if not cols:
        return np.zeros((wm.n_out, 0))
    return np.stack(cols, axis=1)


# --------------------------------------------------------------------------- comparisons


def assert_close(actual, expected, rtol: float, atol: float, what: str = "") -> None:
    """``|a_i - e_i| <= atol + rtol * (|e_i| + max|e|)`` elementwise, with a useful message."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    if a.shape != e.shape:
        raise AssertionError(f"{what}: shape {a.shape} != expected {e.shape}")
    if a.size == 0:
        return
    if not np.all(np.isfinite(a)):
        raise AssertionError(f"{what}: non-finite values\nactual   = {a}\nexpected = {e}")
    scale = float(np.max(np.abs(e)))
    bound = atol + rtol * (np.abs(e) + scale)
    err = np.abs(a - e)
    if np.any(err > bound):
        k = int(np.argmax(err - bound))
        raise AssertionError(
            f"{what}: mismatch (rtol={rtol}, atol={atol}); "
            f"worst index {np.unravel_index(k, a.shape)}"
            f" actual={a.ravel()[k]!r} expected={e.ravel()[k]!r}\n"
            f"actual   = {a}\nexpected = {e}"
        )


def assert_structure(value, spec, what: str) -> None:
    """The returned tangent must mirror the return: float -> float, array -> array, ..."""
    if spec is None or spec == "i":
        assert value is None, f"{what}: expected None for a non-float return, got {value!r}"
        return
    if spec == "f":
        assert is_float_scalar(value), f"{what}: expected a float, got {type(value).__name__}"
        return
    if spec[0] == "a":
        assert isinstance(value, np.ndarray), f"{what}: expected an array, got {type(value)}"
        assert value.shape == tuple(spec[1]), f"{what}: shape {value.shape} != {spec[1]}"
        return
    assert isinstance(value, tuple), f"{what}: expected a tuple, got {type(value).__name__}"
    assert len(value) == len(spec[1]), f"{what}: tuple length {len(value)} != {len(spec[1])}"
    for k, (v, s) in enumerate(zip(value, spec[1], strict=True)):
        if s == "i":
            continue  # an integer part has no tangent; whatever is returned there is ignored
        assert_structure(v, s, f"{what}[{k}]")


def assert_primal_equal(actual, expected, rtol: float, what: str) -> None:
    spec = ret_spec(expected)
    if spec is None:
        assert actual is None, f"{what}: expected None, got {actual!r}"
        return
    if spec == "i":
        assert np.array_equal(np.asarray(actual), np.asarray(expected)), what
        return
    if isinstance(spec, tuple) and spec[0] == "t":
        assert isinstance(actual, tuple) and len(actual) == len(expected), what
        for k, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_primal_equal(a, e, rtol, f"{what}[{k}]")
        return
    assert_close(actual, expected, rtol=rtol, atol=rtol * 1e-3, what=what)


def default_tols(args, active_idx) -> dict:
    """rtol/atol for derivatives and the primal, by precision of the active inputs."""
    if any(is_float32(args[i]) for i in active_idx) or any(is_float32(a) for a in args):
        return {"rtol": 2e-3, "atol": 1e-4, "primal_rtol": 2e-5, "dot_rtol": 1e-4}
    return {"rtol": 1e-6, "atol": 1e-9, "primal_rtol": 1e-9, "dot_rtol": 1e-10}


# --------------------------------------------------------------------------- annotating


def annotate_forward(args, active_idx, tangents, noneed: bool = False) -> list:
    """Active float arrays / scalars -> Duplicated(primal, tangent); plain ints stay plain;
    everything else -> Const.  ``args`` and ``tangents`` are used as given (not copied)."""
    dup = ez.DuplicatedNoNeed if noneed else ez.Duplicated
    out = []
    for i, a in enumerate(args):
        if i in active_idx:
            out.append(dup(a, tangents[i]))
        elif is_plain_int(a):
            out.append(a)
        else:
            out.append(ez.Const(a))
    return out


def annotate_reverse(args, active_idx, seeds) -> list:
    """Active float arrays -> Duplicated(primal, seed); active float scalars -> Active(a);
    plain ints stay plain; everything else -> Const."""
    out = []
    for i, a in enumerate(args):
        if i in active_idx and is_float_array(a):
            out.append(ez.Duplicated(a, seeds[i]))
        elif i in active_idx:
            out.append(ez.Active(a))
        elif is_plain_int(a):
            out.append(a)
        else:
            out.append(ez.Const(a))
    return out


def _tangent_part(z_dot, spec) -> np.ndarray:
    """Flatten a returned tangent (None in integer slots) like ret_flatten flattens z."""
    if spec is None or spec == "i":
        return np.zeros(0)
    if spec == "f":
        return np.array([float(z_dot)])
    if spec[0] == "a":
        return np.asarray(z_dot, dtype=np.float64).ravel()
    return np.concatenate(
        [np.zeros(0)] + [_tangent_part(v, s) for v, s in zip(z_dot, spec[1], strict=True)]
    )


# --------------------------------------------------------------------------- forward check


def check_forward(
    f,
    args,
    active_idx,
    rtol: float | None = None,
    atol: float | None = None,
    primal_rtol: float | None = None,
    seed: int = 0,
    eps: float = 1e-4,
) -> None:
    """Forward mode (ForwardWithPrimal) against central finite differences of the whole map.

    Checks: the returned tangent (structure and values) against the FD of the return part;
    every shadow after the call against the FD of its array after execution; the returned
    primal and the primal arrays after the call against ``f.py_func`` run on copies; and that
    the FD of inactive float arrays is ~0 (otherwise the case itself is ill-posed).
    """
    active_idx = tuple(active_idx)
    tol = default_tols(args, active_idx)
    rtol = tol["rtol"] if rtol is None else rtol
    atol = tol["atol"] if atol is None else atol
    primal_rtol = tol["primal_rtol"] if primal_rtol is None else primal_rtol

    rng = np.random.default_rng(seed)
    tangents = {i: random_like(args[i], rng) for i in active_idx}

    # reference primal (Python semantics, original dtypes)
    ref_args = clone_args(args)
    z_ref = py_function(f)(*ref_args)

    # AD
    prim = clone_args(args)
    shadows = {i: clone(t) for i, t in tangents.items()}
    res = ez.autodiff(ez.ForwardWithPrimal, f, *annotate_forward(prim, active_idx, shadows))
    assert isinstance(res, tuple) and len(res) == 2, f"ForwardWithPrimal returned {res!r}"
    z_dot, z = res

    # primal
    assert_primal_equal(z, z_ref, primal_rtol, "primal return")
    for i, a in enumerate(prim):
        if is_float_array(a):
            assert_close(a, ref_args[i], primal_rtol, primal_rtol * 1e-3, f"primal arg {i} after")

    # finite differences (float64)
    wm = whole_map(f, args, active_idx)
    fd_arrays, fd_ret = fd_jvp(wm, None, None, tangents, eps=eps)

    spec = wm.spec
    assert_structure(z_dot, spec, "return tangent")
    assert_close(
        _tangent_part(z_dot, spec),
        ret_flatten(fd_ret) if spec else np.zeros(0),
        rtol,
        atol,
        "return tangent vs FD",
    )
    for i in wm.array_outputs:
        if i in active_idx:
            sh = shadows[i]
            assert sh.shape == args[i].shape and sh.dtype == args[i].dtype
            assert_close(sh, fd_arrays[i], rtol, atol, f"shadow of arg {i} after vs FD")
        else:
            assert_close(
                np.zeros_like(fd_arrays[i]),
                fd_arrays[i],
                rtol,
                max(atol, 1e-7),
                f"case is ill-posed: inactive array arg {i} depends on active inputs",
            )


# --------------------------------------------------------------------------- reverse check


def reverse_return_activity(spec):
    """Active (seed 1.0) for a float return; Const (seed 0) for anything else (combined
    reverse mode rejects a Duplicated array return)."""
    return (ez.Active, 1.0) if spec == "f" else (ez.Const, 0.0)


def check_reverse(
    f,
    args,
    active_idx,
    rtol: float | None = None,
    atol: float | None = None,
    primal_rtol: float | None = None,
    seed: int = 0,
    eps: float = 1e-4,
) -> None:
    """Reverse mode against ``v^T J`` built from the full FD Jacobian of the whole map.

    ``v`` = random cotangents of the active arrays after execution (pre-seeded into the
    shadows) and the return seed (1.0 for a float return, 0 otherwise).
    """
    active_idx = tuple(active_idx)
    tol = default_tols(args, active_idx)
    rtol = tol["rtol"] if rtol is None else rtol
    atol = tol["atol"] if atol is None else atol
    primal_rtol = tol["primal_rtol"] if primal_rtol is None else primal_rtol

    wm = whole_map(f, args, active_idx)
    ret_act, zbar = reverse_return_activity(wm.spec)

    rng = np.random.default_rng(seed + 1)
    seeds = {i: random_like(args[i], rng) for i in active_idx if is_float_array(args[i])}

    ref_args = clone_args(args)
    py_function(f)(*ref_args)

    prim = clone_args(args)
    shadows = {i: clone(s) for i, s in seeds.items()}
    adj = ez.autodiff(ez.Reverse, f, ret_act, *annotate_reverse(prim, active_idx, shadows))
    assert isinstance(adj, tuple) and len(adj) == len(args), f"Reverse returned {adj!r}"

    # the primal's side effects happen
    for i, a in enumerate(prim):
        if is_float_array(a):
            assert_close(a, ref_args[i], primal_rtol, primal_rtol * 1e-3, f"primal arg {i} after")

    # v^T J from FD
    v_arrays = {i: seeds.get(i, np.zeros(args[i].shape)) for i in wm.array_outputs}
    v_ret = np.full(ret_size(wm.spec), zbar) if wm.spec == "f" else np.zeros(ret_size(wm.spec))
    v = np.concatenate(
        [np.zeros(0)]
        + [np.asarray(v_arrays[i], dtype=np.float64).ravel() for i in wm.array_outputs]
        + [v_ret]
    )
    vJ = wm.unpack(v @ fd_jacobian(wm, eps))

    for i in range(len(args)):
        if i in active_idx and is_float_array(args[i]):
            assert adj[i] is None, f"adjoint slot {i} of a Duplicated argument must be None"
            sh = shadows[i]
            assert sh.shape == args[i].shape and sh.dtype == args[i].dtype
            assert_close(sh, vJ[i], rtol, atol, f"shadow of arg {i} after reverse vs FD v^T J")
        elif i in active_idx:
            assert is_float_scalar(adj[i]), f"adjoint of Active arg {i}: {adj[i]!r}"
            assert_close(adj[i], vJ[i], rtol, atol, f"adjoint of Active arg {i} vs FD v^T J")
        else:
            assert adj[i] is None, f"adjoint slot {i} of an inactive argument must be None"


def dot_test(f, args, active_idx, rtol: float | None = None, seed: int = 0) -> tuple[float, float]:
    """``<v, J u>`` (forward mode) == ``<J^T v, u>`` (reverse mode); returns both sides."""
    active_idx = tuple(active_idx)
    rtol = default_tols(args, active_idx)["dot_rtol"] if rtol is None else rtol
    spec = whole_map(f, args, active_idx).spec
    ret_act, zbar = reverse_return_activity(spec)

    rng = np.random.default_rng(seed + 2)
    u = {i: random_like(args[i], rng) for i in active_idx}
    v = {i: random_like(args[i], rng) for i in active_idx if is_float_array(args[i])}

    # forward: J u
    prim = clone_args(args)
    fwd_sh = {i: clone(t) for i, t in u.items()}
    z_dot = ez.autodiff(ez.Forward, f, *annotate_forward(prim, active_idx, fwd_sh))

    # reverse: J^T v
    prim2 = clone_args(args)
    rev_sh = {i: clone(s) for i, s in v.items()}
    adj = ez.autodiff(ez.Reverse, f, ret_act, *annotate_reverse(prim2, active_idx, rev_sh))

    def dot(a, b):
        return float(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)))

    def adot(a, b):
        return float(np.sum(np.abs(np.asarray(a, np.float64) * np.asarray(b, np.float64))))

    lhs = sum(dot(v[i], fwd_sh[i]) for i in v)
    scale = sum(adot(v[i], fwd_sh[i]) for i in v)
    if spec == "f":
        lhs += zbar * float(z_dot)
        scale += abs(zbar * float(z_dot))
    rhs, rscale = 0.0, 0.0
    for i in active_idx:
        g = rev_sh[i] if i in rev_sh else adj[i]
        rhs += dot(g, u[i])
        rscale += adot(g, u[i])
    scale = max(scale, rscale, math.ulp(1.0))
    assert abs(lhs - rhs) <= rtol * scale, (
        f"dot test failed: <v, J u> = {lhs!r}, <J^T v, u> = {rhs!r}, "
        f"|diff| = {abs(lhs - rhs):.3e}, scale = {scale:.3e}"
    )
    return lhs, rhs


def check_all(f, args, active_idx) -> None:
    """Forward and reverse mode against finite differences of the whole map, and the dot
    test between them."""
    check_forward(f, args, active_idx)
    check_reverse(f, args, active_idx)
    dot_test(f, args, active_idx)


def reverse_functions(f, args, active_idx, directory: pathlib.Path) -> dict[str, str]:
    """The reverse sweeps of `f` itself (`diffe_<f>.<activities>`, its twin `.aliased`
    included; not its callees' nor the entry points calling them) enzpy synthesizes for a
    fresh `ez.enzyme_jit(f)` at `args` (`active_idx` Duplicated or Active, the rest Const),
    by name, as `ENZPY_DUMP_IR=directory` writes them."""
    before = os.environ.get("ENZPY_DUMP_IR")
    os.environ["ENZPY_DUMP_IR"] = str(directory)
    try:
        anns = [
            ez.Const(a)
            if k not in active_idx
            else ez.Active(a)
            if is_float_scalar(a)
            else ez.Duplicated(a.copy(), np.zeros_like(a))
            for k, a in enumerate(args)
        ]
        ez.autodiff(ez.Reverse, ez.enzyme_jit(f), ez.Active, *anns)
    finally:
        if before is None:
            del os.environ["ENZPY_DUMP_IR"]
        else:
            os.environ["ENZPY_DUMP_IR"] = before
    text = (directory / f"{f.__qualname__}.ll").read_text()
    found = re.finditer(
        r"^define [^\n]*@(diffe_[^(]*\.[a-z]+(?:\.aliased)?)\(.*?^}", text, re.M | re.S
    )
    return {m.group(1): m.group(0) for m in found if f.__name__ in m.group(1)}


def check_one_array_twice(f, x0: np.ndarray, *rest) -> None:
    """Reverse mode of `f(x, x, *rest)`, one array passed as both first arguments (the twin
    derivative for arguments sharing memory), against central differences of
    x -> f(x, x, *rest)."""

    def same(x):
        x = x.copy()
        return f.py_func(x, x, *rest)

    h, fd = 1e-6, np.zeros(x0.size)
    for k in range(x0.size):
        e = np.zeros(x0.size)
        e[k] = h
        fd[k] = (same(x0 + e) - same(x0 - e)) / (2 * h)
    x, dx = x0.copy(), np.zeros_like(x0)
    ez.autodiff(ez.Reverse, f, ez.Active, ez.Duplicated(x, dx), ez.Duplicated(x, dx), *rest)
    np.testing.assert_allclose(dx, fd, rtol=1e-6, atol=1e-8)
