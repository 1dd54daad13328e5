"""The derivative checks run on every generated program, and how to reproduce one.

``check_program(source, args, active)`` compiles ``f`` from ``source`` with enzpy and checks:

- the Numba primal against the same source run as plain Python in float64 (a mismatch is a
  problem of the generator or of Numba, reported as ``PrimalMismatch``);
- forward mode (``ForwardWithPrimal``) against central finite differences of the whole map
  ``(x, y, a) -> (x_after, y_after, f(...))`` along a random tangent (``ForwardMismatch``),
  and its primal against the Numba primal;
- reverse mode by the dot-product test against forward mode (``DotTestFailure``), and the
  primal of ``ReverseWithPrimal`` against the Numba primal;
- enzpy raising anything is a failure (``Refused`` for ``ez.NoDerivativeError``, ``Crashed``
  otherwise).

Finite differences are taken on the plain-Python run of the source in float64, with every
branch decision, ``int(...)`` value and ``abs`` / ``min`` / ``max`` side recorded: when any
of them differs at one of the finite-difference points (``theta +- h u``, ``+- 2h u``,
``+- h/2 u``) from the unperturbed run, the example is invalid (``InvalidExample``, turned
into ``hypothesis.assume(False)`` by the test), never checked with a looser tolerance.

Every failure message ends with a script that reproduces it: save it as ``repro.py`` and
run ``PYTHONPATH=.:tests python repro.py`` from the repository root (``ENZPY_DUMP_IR=1`` in
front prints the derivative's IR).  With ``ENZPY_PROP_LOG=<file>`` set, that script is
written to ``<file>`` before each program runs, so a program that kills the interpreter can
be recovered from it.
"""

from __future__ import annotations

import ast
import math
import os

import harness
import numpy as np
from harness import annotate_forward, annotate_reverse, clone_args, is_float_array

import enzpy as ez

FD_EPS = 1e-4  # relative step of the finite differences (see harness.fd_jvp)
OUT_OF_RANGE = 1e6  # an example whose values leave [-1e6, 1e6] is invalid


class InvalidExample(Exception):
    """The example cannot judge enzpy (finite differences cross a kink, values out of range,
    float32 takes another path than the float64 reference)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class ProgramFailure(AssertionError):
    """A generated program whose derivative is wrong, or that enzpy or Numba fails on."""


class PrimalMismatch(ProgramFailure):
    pass


class ForwardMismatch(ProgramFailure):
    pass


class DotTestFailure(ProgramFailure):
    pass


class Refused(ProgramFailure):
    pass


class Crashed(ProgramFailure):
    pass


# --------------------------------------------------------------------------- the reference


class _Tracer(ast.NodeTransformer):
    """Plain-Python variant of a program: no decorators, every branch / loop test wrapped
    in ``_T(...)``, ``abs`` / ``min`` / ``max`` / ``int`` replaced by recording versions."""

    def visit_FunctionDef(self, node):
        node.decorator_list = []
        self.generic_visit(node)
        return node

    def _test(self, node):
        self.generic_visit(node)
        node.test = ast.Call(ast.Name("_T", ast.Load()), [node.test], [])
        return node

    visit_If = visit_While = visit_IfExp = _test

    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id in ("abs", "min", "max", "int"):
            node.func = ast.Name("_" + node.func.id, ast.Load())
        return node


def trace_source(source: str) -> str:
    """The recording plain-Python variant of ``source`` (see ``_Tracer``)."""
    tree = _Tracer().visit(ast.parse(source))
    return ast.unparse(ast.fix_missing_locations(tree))


def _recording_namespace(trace: list) -> dict:
    def _T(c):
        trace.append(bool(c))
        return c

    def _abs(v):
        trace.append(("abs", bool(v >= 0)))
        return abs(v)

    def _min(p, q):
        trace.append(("min", bool(p <= q)))
        return min(p, q)

    def _max(p, q):
        trace.append(("max", bool(p >= q)))
        return max(p, q)

    def _int(v):
        r = int(v)
        trace.append(("int", r))
        return r

    return {"_T": _T, "_abs": _abs, "_min": _min, "_max": _max, "_int": _int}


class Reference:
    """The whole map of the program run as plain Python in float64 (float32 inputs upcast),
    returning the flattened outputs and the decisions taken; an array passed twice is one
    input and one output."""

    def __init__(self, source: str, same: Aliases):
        self.trace: list = []
        ns = _recording_namespace(self.trace)
        exec(compile(trace_source(source), "<program, plain Python>", "exec"), ns)
        f = ns["f"]

        def whole(*canon):
            return f(*same.expand(canon))

        self.wm = harness.WholeMap(whole, same.canon, same.active, upcast=True)

    def __call__(self, theta: np.ndarray) -> tuple[np.ndarray, tuple]:
        self.trace.clear()
        try:
            with np.errstate(all="ignore"):
                out = self.wm(theta)
        except (OverflowError, FloatingPointError) as e:
            raise InvalidExample("out of range", repr(e)) from e
        return out, tuple(self.trace)


def fd_along(ref: Reference, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Central differences of ``ref`` along ``u`` (one Richardson step), at steps ``h`` and
    ``2h``; raises ``InvalidExample`` if a decision changes at any point used."""
    theta0 = ref.wm.theta0
    out0, trace0 = ref(theta0)
    h = FD_EPS * (1.0 + float(np.max(np.abs(theta0)))) / float(np.max(np.abs(u)))
    diff = {}
    for k in (0.5, 1.0, 2.0):
        plus, trace_p = ref(theta0 + k * h * u)
        minus, trace_m = ref(theta0 - k * h * u)
        if trace_p != trace0 or trace_m != trace0:
            raise InvalidExample("kink", f"a decision changes within {k} * h = {k * h:.2e}")
        diff[k] = (plus - minus) / (2.0 * k * h)
    fine = (4.0 * diff[0.5] - diff[1.0]) / 3.0
    coarse = (4.0 * diff[1.0] - diff[2.0]) / 3.0
    return fine, coarse


# --------------------------------------------------------------------------- reproducing


def _arg_repr(a) -> str:
    if isinstance(a, np.ndarray):
        text = f"np.array({[float(v) for v in a]!r}, dtype=np.{a.dtype})"
        step = a.strides[0] // a.itemsize if a.ndim == 1 else 1
        return text if step == 1 else f"np.repeat({text}, {step})[::{step}]"
    if isinstance(a, np.floating):
        return f"np.{type(a).__name__}({float(a)!r})"
    return repr(a)


def repro(source: str, args: tuple, active: tuple, seed: int = 0) -> str:
    """A script that runs ``check_program`` on this program and these inputs."""
    same = Aliases(args, ())
    shared = sorted({j for i, j in enumerate(same.first) if j != i})  # arrays passed twice
    lines = "".join(f"a{j} = {_arg_repr(args[j])}\n" for j in shared)
    items = [
        f"a{same.first[i]}" if same.first[i] in shared else _arg_repr(a) for i, a in enumerate(args)
    ]
    return (
        "# Reproduce: save as repro.py and run from the repository root:\n"
        "#   PYTHONPATH=.:tests python repro.py       (ENZPY_DUMP_IR=1 prints the IR)\n"
        "import numpy as np\n\n"
        "from property.checks import check_program\n\n"
        f'SOURCE = """\n{source}"""\n'
        f"{lines}ARGS = ({', '.join(items)},)\n"
        f"check_program(SOURCE, ARGS, active={tuple(active)!r}, seed={seed})\n"
        'print("all checks pass")\n'
    )


class Aliases:
    """The arguments with an array passed twice (the same object) counted once: ``canon``
    holds each distinct argument, ``active`` the indices of the active ones in ``canon``."""

    def __init__(self, args: tuple, active: tuple):
        self.args = tuple(args)
        self.first = [
            next(j for j in range(i + 1) if args[j] is a) if isinstance(a, np.ndarray) else i
            for i, a in enumerate(args)
        ]
        self.keep = [i for i, j in enumerate(self.first) if i == j]
        self.canon = tuple(args[i] for i in self.keep)
        self.full_active = tuple(active)
        for i in active:
            if self.first[i] not in active:
                raise ValueError(f"argument {i} is active but its alias {self.first[i]} is not")
        self.active = tuple(self.keep.index(i) for i in active if self.first[i] == i)

    def expand(self, values) -> list:
        """Values of ``canon`` -> values of every argument (aliases share the value)."""
        return [values[self.keep.index(j)] for j in self.first]

    def expand_dict(self, values: dict) -> dict:
        """{canon index: value} -> {argument index: value} over the active arguments."""
        out = {}
        for i in self.full_active:
            k = self.keep.index(self.first[i])
            if k in values:
                out[i] = values[k]
        return out


# --------------------------------------------------------------------------- the checks


def compile_program(source: str):
    """``f`` of ``source``, an ``ez.enzyme_jit`` dispatcher (helpers compiled by Numba)."""
    ns: dict = {}
    exec(compile(source, "<program>", "exec"), ns)
    return ns["f"]


def _outputs(args, z) -> np.ndarray:
    parts = [np.asarray(a, np.float64).ravel() for a in args if is_float_array(a)]
    return np.concatenate(parts + [np.array([float(z)])])


def _close(actual, expected, rtol) -> bool:
    a, e = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    scale = float(np.max(np.abs(e))) if e.size else 0.0
    return bool(np.all(np.abs(a - e) <= rtol * (np.abs(e) + scale) + 1e-300))


def dot_test(f, same: Aliases, rtol: float, seed: int = 0) -> None:
    """``<v, J u> == <J^T v, u>`` as ``harness.dot_test`` (return seed 1.0), with an array
    passed twice given one shadow."""
    rng = np.random.default_rng(seed + 2)
    u = {k: harness.random_like(same.canon[k], rng) for k in same.active}
    v = {k: harness.random_like(same.canon[k], rng) for k in same.active if k not in _scalars(same)}
    fwd = {k: harness.clone(t) for k, t in u.items()}
    prim = same.expand(clone_args(same.canon))
    ann = annotate_forward(prim, same.full_active, same.expand_dict(fwd))
    z_dot = ez.autodiff(ez.Forward, f, *ann)
    rev = {k: harness.clone(t) for k, t in v.items()}
    prim = same.expand(clone_args(same.canon))
    ann = annotate_reverse(prim, same.full_active, same.expand_dict(rev))
    adj = ez.autodiff(ez.Reverse, f, ez.Active, *ann)

    def dot(a, b, absolute=False):
        p = np.asarray(a, np.float64) * np.asarray(b, np.float64)
        return float(np.sum(np.abs(p) if absolute else p))

    lhs = sum(dot(v[k], fwd[k]) for k in v) + float(z_dot)
    scale = sum(dot(v[k], fwd[k], True) for k in v) + abs(float(z_dot))
    rhs = rscale = 0.0
    for k in same.active:
        g = rev[k] if k in rev else adj[same.keep[k]]
        rhs += dot(g, u[k])
        rscale += dot(g, u[k], True)
    scale = max(scale, rscale, math.ulp(1.0))
    assert abs(lhs - rhs) <= rtol * scale, (
        f"dot test failed: <v, J u> = {lhs!r}, <J^T v, u> = {rhs!r}, "
        f"|diff| = {abs(lhs - rhs):.3e}, scale = {scale:.3e}"
    )


def _scalars(same: Aliases) -> set:
    return {k for k, a in enumerate(same.canon) if not is_float_array(a)}


def check_program(source: str, args: tuple, active: tuple, seed: int = 0) -> None:
    """Run every check on ``f`` of ``source`` at ``args``, ``active`` naming the indices of
    the active arguments (arrays ``Duplicated``, floats ``Duplicated`` forward and ``Active``
    reverse; an array passed twice is one array with one shadow).  Raises ``InvalidExample``
    or a ``ProgramFailure`` with a reproducing script."""
    args, active = tuple(args), tuple(active)
    script = repro(source, args, active, seed)
    log = os.environ.get("ENZPY_PROP_LOG")
    if log:
        with open(log, "w") as fh:
            fh.write(script)

    def fail(cls, mode: str, what: str):
        return cls(f"{mode}: {what}\n\n{script}")

    same = Aliases(args, active)
    tol = harness.default_tols(args, active)
    single = any(harness.is_float32(a) for a in args)

    # the reference and the Numba primal
    ref = Reference(source, same)
    out0, _ = ref(ref.wm.theta0)
    if not np.all(np.isfinite(out0)) or np.max(np.abs(out0)) > OUT_OF_RANGE:
        raise InvalidExample("out of range", f"outputs {out0}")
    # finite differences first: an invalid example costs no compilation
    rng = np.random.default_rng(seed)
    u = {k: harness.random_like(same.canon[k], rng) for k in same.active}
    fd, fd_coarse = fd_along(ref, ref.wm.pack(u))
    bound = tol["atol"] + tol["rtol"] * (np.abs(fd) + np.max(np.abs(fd)))
    if np.any(np.abs(fd - fd_coarse) > 0.1 * bound):
        raise InvalidExample("fd unstable", f"steps h and 2h give {fd} and {fd_coarse}")

    try:
        f = compile_program(source)
        prim = clone_args(same.canon)
        z = f(*same.expand(prim))
    except Exception as e:
        raise fail(Crashed, "primal", f"{type(e).__name__}: {e}") from e
    out_jit = _outputs(prim, z)
    if single:
        if not _close(out_jit, out0, 1e-3):
            raise InvalidExample("float32 path", "float32 and float64 runs differ")
    elif not _close(out_jit, out0, 1e-9):
        raise fail(
            PrimalMismatch, "primal", f"Numba {out_jit} != Python {out0} (not enzpy's doing)"
        )

    def check_primal(mode, z_ad, arrays):
        out_ad = _outputs(arrays, z_ad)
        if not _close(out_ad, out_jit, 1e-6 if single else 1e-12):
            raise fail(ProgramFailure, mode, f"primal {out_ad} != Numba primal {out_jit}")

    # forward mode against finite differences
    prim = clone_args(same.canon)
    shadows = {k: harness.clone(t) for k, t in u.items()}
    ann = annotate_forward(same.expand(prim), active, same.expand_dict(shadows))
    try:
        z_dot, z_ad = ez.autodiff(ez.ForwardWithPrimal, f, *ann)
    except ez.NoDerivativeError as e:
        raise fail(Refused, "forward", f"NoDerivativeError: {e}") from e
    except Exception as e:
        raise fail(Crashed, "forward", f"{type(e).__name__}: {e}") from e
    check_primal("forward", z_ad, prim)
    fd_arrays, fd_ret = ref.wm.split(fd)
    names = ["xyan"[i] for i in same.keep]
    try:
        for k in ref.wm.array_outputs:
            ad = shadows[k] if k in same.active else np.zeros(same.canon[k].shape)
            harness.assert_close(
                ad, fd_arrays[k], tol["rtol"], tol["atol"], f"tangent of {names[k]} after f"
            )
        harness.assert_close(float(z_dot), fd_ret, tol["rtol"], tol["atol"], "return tangent")
    except AssertionError as e:
        u_text = ", ".join(f"d{names[k]} = {u[k]!r}" for k in same.active)
        what = f"{e}\ntangent: {u_text}"
        raise fail(ForwardMismatch, "forward vs finite differences", what) from None

    # reverse mode: the dot-product test, and the primal
    try:
        dot_test(f, same, tol["dot_rtol"], seed=seed)
        prim = clone_args(same.canon)
        seeds = {k: harness.random_like(same.canon[k], rng) for k in same.active
                 if k not in _scalars(same)}  # fmt: skip
        ann = annotate_reverse(same.expand(prim), active, same.expand_dict(seeds))
        _, z_rev = ez.autodiff(ez.ReverseWithPrimal, f, ez.Active, *ann)
    except ez.NoDerivativeError as e:
        raise fail(Refused, "reverse", f"NoDerivativeError: {e}") from e
    except AssertionError as e:
        raise fail(DotTestFailure, "reverse (dot test against forward)", str(e)) from e
    except Exception as e:
        raise fail(Crashed, "reverse", f"{type(e).__name__}: {e}") from e
    check_primal("reverse", z_rev, prim)
