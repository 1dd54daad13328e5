"""Second derivatives from nested differentiation: `hvp` and `hessian`.

Both are reverse mode over forward mode: the gradient of the directional derivative
`∇f(x)·v`, which a function calling `ez.autodiff(ez.Forward, f, ...)` computes and the
engine differentiates again (the inner forward derivative is linked as IR). One `hvp` costs
one reverse pass of one forward pass; no Hessian is formed. Both also work inside jitted
code (same arguments and results).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from numba.core import types
from numba.extending import overload

from .annotations import Annotation, Const, Duplicated
from .api import autodiff
from .bridge.link import GLUE_OPTIONS
from .errors import AnnotationError
from .jacobian import _put_column
from .jit import EnzymeJit, enzyme_jit, from_dispatcher
from .modes import Forward, Reverse
from .source import Source


@functools.cache
def _directional(f: EnzymeJit, nrest: int) -> EnzymeJit:
    """`g(x, v, *rest) = ∇ₓf(x, *rest)·v`, by forward mode inside a jitted function."""
    rest = "".join(f", r{k}" for k in range(nrest))
    consts = "".join(f", _Const(r{k})" for k in range(nrest))
    source = (
        f"def directional(x, v{rest}):\n"
        f"    return _autodiff(_Forward, _f, _Duplicated(x, v.copy()){consts})\n"
    )
    env: dict[str, Any] = {"_autodiff": autodiff, "_Forward": Forward, "_f": f}
    env.update(_Duplicated=Duplicated, _Const=Const)
    exec(source, env)  # noqa: S102 (our source)
    return enzyme_jit(env["directional"])


def _check(f: Any, x: Any) -> None:
    if not isinstance(f, EnzymeJit):
        raise AnnotationError(f"{f!r} is not an @ez.enzyme_jit function")
    if not isinstance(x, np.ndarray) or x.dtype.kind != "f":
        raise AnnotationError(
            "x must be a float array (the point where the Hessian is taken), got "
            f"{type(x).__name__}: hvp(f, x, v, *rest) and hessian(f, x, *rest) take x and v "
            "as arrays"
        )


def _held(rest: tuple) -> tuple:
    """The other arguments' values (given plainly or as `Const`)."""
    for k, r in enumerate(rest):
        if isinstance(r, Annotation) and not isinstance(r, Const):
            raise AnnotationError(
                f"argument {k + 1} after x is {type(r).__name__}: the Hessian is taken with "
                "respect to x alone, the other arguments are held constant; pass them as "
                "values (or ez.Const)"
            )
    return tuple(r.val if isinstance(r, Const) else r for r in rest)


def hvp(f: Any, x: np.ndarray, v: np.ndarray, *rest: Any) -> np.ndarray:
    """H·v, the Hessian of the float function `f(x, *rest)` with respect to the float array
    `x`, times `v` (an array like `x`); the other arguments are held constant (given as
    values or as `Const`).

    Examples
    --------
    >>> import numpy as np, enzpy as ez
    >>> @ez.enzyme_jit
    ... def f(x):
    ...     return (x ** 3).sum()
    >>> ez.hvp(f, np.array([1.0, 2.0]), np.array([1.0, 1.0])).tolist()
    [6.0, 12.0]
    """
    _check(f, x)
    rest = _held(rest)
    v = np.asarray(v, dtype=x.dtype)
    if v.shape != x.shape:
        raise AnnotationError(f"v has shape {v.shape}, x has shape {x.shape}")
    out = np.zeros_like(x)
    args = (Duplicated(x.copy(), out), Const(v), *(Const(r) for r in rest))
    autodiff(Reverse, _directional(f, len(rest)), *args)
    return out


def hessian(f: Any, x: np.ndarray, *rest: Any) -> np.ndarray:
    """The Hessian of the float function `f(x, *rest)` with respect to the float array `x`,
    as an array of shape `x.shape + x.shape`: one `hvp` per entry of `x`."""
    _check(f, x)
    h = np.empty((x.size, x.size), dtype=x.dtype)
    for k in range(x.size):
        e = np.zeros(x.size, dtype=x.dtype)
        e[k] = 1.0
        h[:, k] = hvp(f, x, e.reshape(x.shape), *rest).ravel()
    return h.reshape(x.shape + x.shape)


# ---- inside jitted code ------------------------------------------------------------------
def _in_numba(f: Any, x: Any, nrest: int) -> EnzymeJit:
    """The directional derivative to differentiate, from Numba types (checked as in Python)."""
    fn = from_dispatcher(f.dispatcher) if isinstance(f, types.Dispatcher) else None
    if fn is None:
        raise AnnotationError(f"{f} is not an @ez.enzyme_jit function")
    if not isinstance(x, types.Array) or not isinstance(x.dtype, types.Float):
        raise AnnotationError("x must be a float array (the point where the Hessian is taken)")
    return _directional(fn, nrest)


def _source(params: str, body: list[str], nrest: int, g: EnzymeJit) -> Any:
    """`def impl(<params>): <body>`, `{consts}` in the body standing for
    `Const` annotations of the `nrest` extra arguments, `_g` for the directional derivative."""
    consts = "".join(f", _Const(rest[{k}])" for k in range(nrest))
    src = Source({"_g": g, "np": np, "_autodiff": autodiff, "_Reverse": Reverse})
    src.names.update(_Duplicated=Duplicated, _Const=Const, _put_column=_put_column)
    for line in body:
        src.add(line.replace("{consts}", consts))
    return src.function(params)


_ONE_HVP = [  # out = H v
    "out = np.zeros_like(x)",
    "_autodiff(_Reverse, _g, _Duplicated(x.copy(), out), _Const(v){consts})",
]


@overload(hvp, jit_options=GLUE_OPTIONS)
def _hvp_overload(f, x, v, *rest):
    body = [*_ONE_HVP, "return out"]
    return _source("f, x, v, *rest", body, len(rest), _in_numba(f, x, len(rest)))


@overload(hessian, jit_options=GLUE_OPTIONS)
def _hessian_overload(f, x, *rest):
    body = [
        "h = np.empty((x.size, x.size), x.dtype)",
        "for k in range(x.size):",
        "    e = np.zeros(x.size, x.dtype)",
        "    e[k] = 1.0",
        "    v = e.reshape(x.shape)",
        *("    " + line for line in _ONE_HVP),
        "    _put_column(h, k, out)",
        "return h.reshape(x.shape + x.shape)",
    ]
    return _source("f, x, *rest", body, len(rest), _in_numba(f, x, len(rest)))
