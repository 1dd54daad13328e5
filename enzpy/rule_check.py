"""`check_rule`: a user's derivative rules against finite differences and the engine."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import rules
from .annotations import Active, Const, Duplicated
from .api import autodiff
from .errors import NoDerivativeError
from .modes import Forward, ReverseSplitNoPrimal
from .split import autodiff_thunk


@dataclass
class RuleCheck:
    """Relative errors `check_rule` found (None where not checked), and notes."""

    forward: float | None = None  # the forward rule's J·u against finite differences
    reverse: float | None = None  # <v, J·u> by finite differences against <Jᵀ·v, u>
    engine: float | None = None  # the forward rule's J·u against the engine's
    notes: list[str] = field(default_factory=list)


def _float_array(a: Any) -> bool:
    return isinstance(a, np.ndarray) and a.dtype.kind == "f"


def _float(a: Any) -> bool:
    return isinstance(a, float | np.floating)


def _copy(a: Any) -> Any:
    return a.copy() if isinstance(a, np.ndarray) else a


def _flat(parts: list[Any]) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(p, np.float64)) for p in parts] or [np.zeros(0)])


def _outputs(f: Any, args: Sequence[Any]) -> tuple[list[Any], Any]:
    """The whole map: the float arrays after the call, and the return."""
    work = [_copy(a) for a in args]
    z = f(*work)
    return [a for a in work if _float_array(a)], z


def _return_parts(z: Any) -> list[Any]:
    return [z] if _float(z) or _float_array(z) else []


def check_rule(
    f: Any, *args: Any, rtol: float = 1e-5, eps: float = 1e-6, seed: int = 0, engine: bool = True
) -> RuleCheck:
    """Check the rules declared for `f` at `args` (floats, arrays, integers): the forward
    rule's J·u against central finite differences of the whole map (float arrays after the
    call, then a float or float-array return) and against the engine's own derivative of
    `f` where the engine has one; the reverse rules by the dot test <v, J·u> = <Jᵀ·v, u>,
    for random u and v. Raises `AssertionError` naming what differs by more than `rtol`
    (relative to the largest entry); returns the errors found. `engine=False` skips the
    comparison with the engine (for a function it refuses, trying costs a compilation)."""
    declared = rules.rules_of(rules.dispatcher_of(f))
    if declared is None:
        raise rules.RuleError(f"{f!r} has no rules to check")
    rng = np.random.default_rng(seed)
    u = {
        k: rng.standard_normal(np.shape(a)).astype(a.dtype)
        if _float_array(a)
        else float(rng.standard_normal())
        for k, a in enumerate(args)
        if _float_array(a) or _float(a)
    }
    scale = max([1.0] + [float(np.max(np.abs(args[k]), initial=0.0)) for k in u])
    h = eps * scale

    def shifted(t: float) -> list[Any]:
        return [_copy(a) + t * u[k] if k in u else _copy(a) for k, a in enumerate(args)]

    (hi, zhi), (lo, zlo) = _outputs(f, shifted(h)), _outputs(f, shifted(-h))
    fd = (_flat(hi + _return_parts(zhi)) - _flat(lo + _return_parts(zlo))) / (2 * h)
    report = RuleCheck()

    def error(a: np.ndarray, b: np.ndarray) -> float:
        return float(
            np.max(np.abs(a - b), initial=0.0) / max(1.0, float(np.max(np.abs(b), initial=0.0)))
        )

    if declared.forward is not None:
        jvp = _forward(f, args, u)
        report.forward = error(jvp, fd)
    if declared.forward is not None and engine:
        with rules.set_aside(f):
            try:
                report.engine = error(jvp, _forward(f, args, u))
            except NoDerivativeError:
                report.notes.append("the engine has no derivative of f to compare with")
    if declared.has("reverse"):
        v = rng.standard_normal(fd.shape)
        vjpu = _reverse_dot(f, args, u, v)
        report.reverse = abs(float(v @ fd) - vjpu) / max(1.0, float(np.abs(v) @ np.abs(fd)))
    checks = (
        ("forward rule", report.forward),
        ("reverse rules", report.reverse),
        ("forward rule against the engine's derivative", report.engine),
    )
    failed = [f"{name}: relative error {e:.3g}" for name, e in checks if e is not None and e > rtol]
    if failed:
        raise AssertionError(f"rules of {declared.py_func.__qualname__}: " + "; ".join(failed))
    return report


def _forward(f: Any, args: Sequence[Any], u: dict[int, Any]) -> np.ndarray:
    """J·u by forward mode, laid out like the finite differences."""
    work = [_copy(a) for a in args]
    tangents = {k: _copy(t) for k, t in u.items()}
    ann = [Duplicated(a, tangents[k]) if k in u else Const(a) for k, a in enumerate(work)]
    dz = autodiff(Forward, f, *ann)
    arrays = [tangents[k] for k, a in enumerate(work) if _float_array(a)]
    return _flat(arrays + ([dz] if dz is not None and not isinstance(dz, tuple) else []))


def _reverse_dot(f: Any, args: Sequence[Any], u: dict[int, Any], v: np.ndarray) -> float:
    """<Jᵀ·v, u> by split reverse mode, `v` laid out like the finite differences."""
    work = [_copy(a) for a in args]
    shadows: dict[int, np.ndarray] = {}
    at = 0
    for k, a in enumerate(work):
        if _float_array(a):
            shadows[k] = v[at : at + a.size].reshape(a.shape).astype(a.dtype)
            at += a.size
    vret = v[at:]
    z = f(*[_copy(a) for a in args])
    ret = Active if _float(z) else Duplicated if _float_array(z) else Const
    ann = [
        Duplicated(a, shadows[k]) if k in shadows else Active(a) if k in u else Const(a)
        for k, a in enumerate(work)
    ]
    fwd, rev = autodiff_thunk(ReverseSplitNoPrimal, f, ret, *ann)
    tape, _, dret = fwd(*ann)
    if ret is Duplicated:
        dret += vret.reshape(np.shape(z)).astype(z.dtype)
    adjoints = rev(*ann, float(vret[0]), tape) if ret is Active else rev(*ann, tape)
    total = 0.0
    for k, t in u.items():
        g = shadows[k] if k in shadows else adjoints[k]
        total += float(np.sum(np.asarray(g, np.float64) * np.asarray(t, np.float64)))
    return total
