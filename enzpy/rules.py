"""User-defined derivatives: rules that replace the engine's derivative of a function.

```python
@ez.forward_rule(f)
def f_fwd(x, dx, a, da):      # each argument followed by its tangent: a zero array for a
    ...                       # Const array, 0.0 for a Const float, None for an integer;
    return y, dy              # writes the tangent of what f mutates into dx

@ez.augmented_rule(f)
def f_aug(x, a):              # the forward sweep of reverse mode: f's effects and result,
    ...                       # and whatever the reverse rule needs
    return y, saved

@ez.reverse_rule(f)
def f_rev(saved, dy, x, dx, a):   # dy: the cotangent of the result (an array for an array
    ...                           # result); each array argument followed by its shadow,
    return (da,)                  # += into it; returns the adjoints of the float arguments

ez.inactive(g)                # calls to g carry no derivative
ez.inactive_arg(f, "seed")    # f's argument `seed` never carries one
```

Rules are compiled by Numba like `f` and called natively wherever `f` is differentiated: called
from differentiated code, in loops, in every mode (split mode too), and when `f` itself is
differentiated. A function with only a forward rule (or only the two reverse-mode rules) is
derived by the engine in the other mode. The reverse rule sees the arguments as they are when
the reverse sweep runs: what it needs from before (values `f` or later code overwrite) goes in
`saved`. `check_rule` compares a rule with finite differences (and with the engine's own
derivative where it has one), for the user's tests.

Register rules before the first derivative that calls `f` is built: registering clears the
derivatives built from Python, not those already compiled into Numba code.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numba
from numba.core.dispatcher import Dispatcher

from . import memory
from .errors import EnzpyError
from .jit import EnzymeJit


class RuleError(EnzpyError, TypeError):
    """A derivative rule that does not fit its function or the call it is used for."""


@dataclass
class Rules:
    """What the user declared about one function."""

    py_func: Callable[..., Any]
    forward: Any = None  # Numba dispatchers of the rules
    augmented: Any = None
    reverse: Any = None
    inactive: bool = False
    inactive_args: frozenset[int] = field(default_factory=frozenset)

    @property
    def params(self) -> list[str]:
        return list(inspect.signature(self.py_func).parameters)

    def has(self, mode: str) -> bool:
        """Whether rules replace the engine's derivative in `mode` ('forward' / 'reverse')."""
        if mode == "forward":
            return self.forward is not None
        return self.augmented is not None or self.reverse is not None

    def pickled(self) -> tuple:
        """The declarations, without the function (see `travelling`)."""
        return (self.forward, self.augmented, self.reverse, self.inactive, self.inactive_args)


_RULES: dict[Any, Rules] = {}  # Numba dispatcher -> its rules


def rules_of(dispatcher: Any) -> Rules | None:
    """The rules declared for a Numba dispatcher, if any."""
    return _RULES.get(dispatcher)


def ruled() -> dict[Any, Rules]:
    """Every dispatcher with rules."""
    return _RULES


def dispatcher_of(f: Any) -> Any:
    if isinstance(f, EnzymeJit):
        return f.dispatcher
    if isinstance(f, Dispatcher):
        return f
    raise RuleError(f"rules are declared for @ez.enzyme_jit or @numba.njit functions, not {f!r}")


def _entry(f: Any) -> Rules:
    d = dispatcher_of(f)
    entry = _RULES.get(d)
    if entry is None:
        py_func = getattr(d, "py_func", d)  # (a plain function: NUMBA_DISABLE_JIT=1)
        params = inspect.signature(py_func).parameters.values()
        if any(p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params):
            raise RuleError(f"{py_func.__qualname__}: rules need positional parameters only")
        entry = _RULES[d] = Rules(py_func)
    return entry


def _compiled(rule: Any, cache: bool) -> Any:
    if isinstance(rule, EnzymeJit | Dispatcher):
        return dispatcher_of(rule)
    if not callable(rule):
        raise RuleError(f"a rule must be a function, not {rule!r}")
    return numba.njit(cache=cache)(rule)


def _check_arity(rule: Any, name: str, low: int, high: int, what: str) -> None:
    py = getattr(rule, "py_func", rule)
    try:
        params = inspect.signature(py).parameters.values()
    except (TypeError, ValueError):
        return
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return
    n = len(params)
    if not low <= n <= high:
        count = str(low) if low == high else f"{low} to {high}"
        raise RuleError(f"the {name} of {what} takes {count} parameters, not {n}")


def _declare(kind: str, f: Any, cache: bool) -> Callable[[Any], Any]:
    entry = _entry(f)
    n = len(entry.params)
    what = entry.py_func.__qualname__
    arity = {
        "forward": (2 * n, 2 * n),  # each argument, then its tangent
        "augmented": (n, n),
        "reverse": (n + 2, 2 * n + 2),  # saved, dy, arguments; arrays followed by shadows
    }[kind]

    def register(rule: Any) -> Any:
        _check_arity(rule, f"{kind} rule", *arity, what)
        compiled = _compiled(rule, cache)
        setattr(entry, kind, compiled)
        _forget()
        return compiled if cache else rule

    return register


def forward_rule(f: Any, *, cache: bool = False) -> Callable[[Any], Any]:
    """Decorator: the forward-mode derivative of `f` (see the module doc). `cache=True`: a
    rule given as a Python function is compiled with Numba's disk cache and returned
    compiled (declared for several functions, it compiles once)."""
    return _declare("forward", f, cache)


def augmented_rule(f: Any, *, cache: bool = False) -> Callable[[Any], Any]:
    """Decorator: the forward sweep of `f`'s reverse-mode derivative (see the module doc;
    `cache`: see `forward_rule`)."""
    return _declare("augmented", f, cache)


def reverse_rule(f: Any, *, cache: bool = False) -> Callable[[Any], Any]:
    """Decorator: the reverse sweep of `f`'s reverse-mode derivative (see the module doc;
    `cache`: see `forward_rule`)."""
    return _declare("reverse", f, cache)


@dataclass(frozen=True)
class Implementation:
    """A Numba library implementation that takes the rules of `f` (see `implements`)."""

    f: Any
    when: Callable[[tuple], bool] | None = None
    writes: frozenset[int] = frozenset()


_IMPLEMENTATIONS: dict[str, list[Implementation]] = {}


def implements(
    qualname: str,
    f: Any,
    when: Callable[[tuple], bool] | None = None,
    writes: frozenset[int] = frozenset(),
) -> None:
    """Calls of Numba's implementation of a library function, named by its qualified name
    in the compiled code (`numba.np.linalg.solve_impl.<locals>.solve_impl`), take the rules
    of `f`: a function taking the same arguments (omitted optional arguments aside) that
    calls the library function. `when(argtypes)`, if given, says for which Numba argument
    types (those the rules support; a name may take the rules of several functions, each
    for its argument types); `writes`, the positions of the arguments whose memory the
    function writes (none, as NumPy's functions: the engine need not read its body, which
    may call code it cannot see, to know that it leaves a `Const` argument unchanged)."""
    dispatcher_of(f)
    given = _IMPLEMENTATIONS.setdefault(qualname, [])
    given[:] = [i for i in given if i.f is not f] + [Implementation(f, when, writes)]
    _forget()


def implemented(qualname: str) -> bool:
    """Whether `implements` declared something for a qualified name."""
    return qualname in _IMPLEMENTATIONS


def implementation(qualname: str, argtypes: tuple) -> Implementation | None:
    """What `implements` declared for a qualified name and these argument types, if
    anything."""
    for given in _IMPLEMENTATIONS.get(qualname, ()):
        if given.when is None or given.when(argtypes):
            return given
    return None


def inactive(f: Any) -> Any:
    """Declare that calls to `f` carry no derivative (logging, random numbers, counters): its
    result is constant for the derivative, and it must not overwrite data that carries one
    (its code is not read). Returns `f`, so that it can decorate."""
    _entry(f).inactive = True
    _forget()
    return f


def inactive_arg(f: Any, *names: str) -> Any:
    """Declare that the arguments `names` of `f` never carry a derivative, whatever the
    caller passes (a seed, a tolerance, a table): as JAX's `nondiff_argnums`."""
    entry = _entry(f)
    unknown = [n for n in names if n not in entry.params]
    if unknown:
        raise RuleError(f"{entry.py_func.__qualname__} has no parameter {', '.join(unknown)}")
    entry.inactive_args |= {entry.params.index(n) for n in names}
    _forget()
    return f


def travelling(f: EnzymeJit) -> tuple:
    """The rules that travel with `f` pickled by value: its own and those of the `@njit`
    functions its code names, transitively (an `@enzyme_jit` one carries its own)."""
    own = _RULES.get(f.dispatcher)
    helpers = tuple((d, _RULES[d].pickled()) for d in _named_dispatchers(f.py_func) if d in _RULES)
    return (None if own is None else own.pickled()), helpers


def restore(f: EnzymeJit, travelled: tuple) -> None:
    """Declare the rules `travelling` gave, for `f` just unpickled and for its helpers (those
    this process declared already are kept)."""
    own, helpers = travelled
    if own is not None:
        _RULES[f.dispatcher] = Rules(f.py_func, *own)
    for d, pickled in helpers:
        _RULES.setdefault(d, Rules(d.py_func, *pickled))


def _named_dispatchers(fn: Any, seen: set | None = None) -> Iterator[Dispatcher]:
    """The Numba dispatchers that `fn`'s globals and closure hold under the names its code
    reads, and theirs, transitively."""
    seen = set() if seen is None else seen
    names: set[str] = set()
    codes = [fn.__code__]
    while codes:
        code = codes.pop()
        names |= set(code.co_names)
        codes += [c for c in code.co_consts if isinstance(c, type(code))]
    values = [fn.__globals__[n] for n in names if n in fn.__globals__]
    values += [cell.cell_contents for cell in fn.__closure__ or ()]
    for value in values:
        if isinstance(value, Dispatcher) and value not in seen:
            seen.add(value)
            yield value
            yield from _named_dispatchers(value.py_func, seen)


@contextmanager
def set_aside(f: Any) -> Iterator[None]:
    """Differentiate `f` with the engine inside this block, as if it had no rules."""
    d = dispatcher_of(f)
    entry = _RULES.pop(d, None)
    _forget()
    try:
        yield
    finally:
        if entry is not None:
            _RULES[d] = entry
        _forget()


def _forget() -> None:
    """Drop the derivatives built from Python: they may call what a new rule replaces."""
    from . import api, derivatives
    from .bridge import link
    from .jacobian import clear_cache as clear_jacobians

    derivatives.clear_cache()
    api.clear_cache()
    clear_jacobians()
    link.clear_cache()


# The memory checks that `ez.autodiff` runs in jitted code read shapes and addresses only:
# differentiating such code again (nested differentiation) needs no IR of theirs.
if isinstance(memory.failed_check, Dispatcher):  # (not with NUMBA_DISABLE_JIT=1)
    _entry(memory.failed_check).inactive = True
