"""Random programs to differentiate: a small grammar drawn by Hypothesis.

A program is the source text of a module defining ``f(x, y, a, n)`` under
``@ez.enzyme_jit``, possibly after a few ``@numba.njit`` helpers:

- ``x``, ``y``: 1-D float arrays of one length ``m`` (1 to 6, or up to 24), both float64 or
  both float32 (sometimes ``y`` is ``x``, or ``x`` a strided view);
- ``a``: a float scalar (``np.float32`` with float32 arrays);
- ``n``: an int in ``[0, m]``.

``f`` returns a float and may overwrite ``x`` and ``y``.  Its body is built from the
constructs named in ``CONSTRUCTS`` (loops with data-dependent trip counts, branches, early
returns, local arrays, helper calls, integer index arithmetic, math functions).  Every index
is in range by construction (a loop variable below ``n`` or below ``m``, modular arithmetic,
``n - 1 - i``...), local arrays are fully written before they are read, values stay bounded
(accumulators enter expressions through ``tanh`` / ``sin``; ``exp`` of bounded values,
``sqrt`` of values >= 0.5, division by ``1 + e * e``), so the Python function and its Numba
compilation compute the same thing on any input the strategy draws.

``programs(exclude=...)`` leaves out the constructs named in ``exclude``.

Run ``python tests/property/programs.py [count]`` to print a few sample programs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from hypothesis import strategies as st

# Every construct the grammar can emit; ``exclude`` and ``Program.constructs`` use these names.
CONSTRUCTS = {
    # loops
    "for_n": "for i in range(n), n an int argument",
    "for_m": "for i in range(m), m = x.shape[0]",
    "for_nested": "an inner for over range(i), range(i + 1) or range(i, bound) of an outer i",
    "for_int": "for i in range(lim), lim = min(int(<float expression>), m)",
    "while_data": "while k < n and <data-dependent condition> (on x[k] unless loop_invariant_if)",
    "while_int": "while k < lim, lim = min(int(<float expression>), m)",
    "break": "if <condition>: break",
    "continue": "if <condition>: continue",
    "return_early": "if <condition>: return <expression> (in f and in helpers)",
    # branches
    "if_data": "if/else on a float comparison",
    "if_index": "if/else on the loop index (i % 2 == 0, i < n // 2, i == 0)",
    # memory
    "store_input": "x[...] = ... / y[...] = ... / x[...] += ... (overwrite an input, read later)",
    "store_local": "store into a local array",
    "local_zeros": "w = np.zeros(m)",
    "local_empty": "w = np.empty(m), filled by a loop",
    "local_empty_like": "w = np.empty_like(x), filled by a loop",
    "local_expr": "w = an array expression (np.sin(x) * y, x * a + np.tanh(y), ...)",
    "local_copy": "w = x.copy()",
    "local_in_loop": "an array expression allocated inside a loop body",
    # calls
    "helper_scalar": "a @numba.njit helper of two floats (with a branch, sometimes)",
    "helper_reduce": "a @numba.njit helper reducing an array in a loop",
    "helper_mutate": "a @numba.njit helper overwriting an array in a loop (arguments may alias)",
    # indices
    "idx_rev": "bound - 1 - i",
    "idx_mod": "(i * 3 + 1) % m, (i + 2) % m",
    "idx_half": "i // 2",
    "idx_data": "an index computed from data: int(2.5 + 2.0 * np.tanh(x[i])) % m",
    "neighbour": "a neighbour's element or a constant at the ends, decided by the loop index: "
    "(x[i - 1] if i > 0 else 0.5), (x[i + 1] if i + 1 < m else 0.5)",
    "slice_copy": "w[:] = x, x[1:] = x[:-1] (overlapping when the same array)",
    "slice_expr": "w[:] = np.tanh(v) * 0.5 (an array expression stored into a slice)",
    "slice_into_local": "a slice assignment (slice_copy, slice_expr) into a local array",
    "loop_invariant_if": "inside a loop or as a while loop's test, a condition that may not "
    "change from one iteration to the next (on a float argument, an accumulator, an outer "
    "loop's index)",
    # types and activity
    "float32": "float32 arrays and scalar",
    "active_scalar": "the float scalar a is active",
    "const_array": "an array argument is Const (never written)",
    "strided": "x is a strided view (every other element of an array)",
    "alias_xy": "y is x: one array passed as both arguments (both Duplicated, one shadow)",
    "large": "arrays of 7 to 24 elements instead of 1 to 6 (longer loops, larger tapes)",
    # math
    "sin": "np.sin",
    "cos": "np.cos",
    "tanh": "np.tanh",
    "exp": "np.exp(np.sin(e)), math.exp(-e * e)",
    "sqrt": "math.sqrt(1.0 + e * e), np.sqrt(0.5 + e ** 2)",
    "div": "e1 / (1.0 + e2 * e2)",
    "pow": "e ** 2, e ** 3",
    "log": "np.log(1.0 + e * e)",
    "atan": "np.arctan",
    "abs": "abs(e)",
    "minmax": "min(e1, e2), max(e1, e2)",
    "sum": "w.sum()",
}

CONSTANTS = ("0.5", "1.5", "(-0.7)", "2.0", "0.25")
THRESHOLDS = ("0.0", "0.3", "(-0.2)", "0.8")
MAX_SIZE = 6


@dataclass
class Scope:
    """What a statement or expression may use at its place in the program."""

    scalars: list  # float leaves (argument a; helper parameters p, q)
    accs: list  # float accumulators, read only through tanh / sin
    reads: list  # arrays that may be read
    writes: list  # arrays that may be written
    size: str  # name of the common array length
    loops: list = field(default_factory=list)  # (variable, bound): 0 <= variable < bound
    kind: str = "f"  # "f", or the kind of helper being written

    def inner(self, var: str, bound: str) -> Scope:
        return replace(self, loops=[*self.loops, (var, bound)])

    def copy(self) -> Scope:
        """A scope for a nested block: arrays it allocates are not visible after it."""
        return replace(self, reads=[*self.reads], writes=[*self.writes])


@dataclass(frozen=True)
class Program:
    """A generated program and the inputs it runs on."""

    source: str
    dtype: str  # "float64" or "float32"
    m: int
    n: int
    active: tuple  # indices of the active arguments among (x, y, a, n)
    seed: int  # seeds the input values
    constructs: frozenset
    strided: bool = False  # x is a view with a stride of two elements
    aliased: bool = False  # y is x (the same array passed twice)

    def args(self) -> tuple:
        """The inputs ``(x, y, a, n)``: values in [-1.2, 1.2], dtype ``self.dtype``."""
        rng = np.random.default_rng(self.seed)
        dt = np.dtype(self.dtype)
        x = rng.uniform(-1.2, 1.2, self.m).astype(dt)
        if self.strided:
            x = np.repeat(x, 2)[::2]
        y = rng.uniform(-1.2, 1.2, self.m).astype(dt)
        a = float(rng.uniform(-1.2, 1.2))
        if self.aliased:
            y = x
        return x, y, (np.float32(a) if dt == np.float32 else a), self.n

    def __repr__(self) -> str:
        return (
            f"Program(dtype={self.dtype!r}, m={self.m}, n={self.n}, active={self.active}, "
            f"seed={self.seed}, strided={self.strided}, aliased={self.aliased}, "
            f"source=\n{self.source})"
        )


class _Gen:
    """Draws one program; ``draw`` is Hypothesis' draw function of a composite strategy."""

    def __init__(self, draw, exclude):
        self.draw = draw
        self.exclude = frozenset(exclude)
        self.used: set = set()
        self.count = 0
        self.helpers: dict = {}  # kind -> (name, source lines)
        self.budget = 14  # statements left in f (helpers not counted)

    # -- choices
    def ok(self, construct: str) -> bool:
        return construct not in self.exclude

    def choose(self, options):
        """One of ``options`` (pairs (construct or None, value)), the first being the simplest
        (Hypothesis shrinks towards it); excluded constructs are never chosen."""
        opts = [(c, v) for c, v in options if c is None or self.ok(c)]
        c, v = self.draw(st.sampled_from(opts))
        if c is not None:
            self.used.add(c)
        return v

    def pick(self, values):
        return self.draw(st.sampled_from(list(values)))

    def flag(self) -> bool:
        return self.draw(st.booleans())

    def fresh(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    # -- expressions
    def index(self, sc: Scope, innermost: bool = False) -> str:
        """An index in ``[0, size)``; inside loops it depends on a loop variable (the
        innermost one if ``innermost``)."""
        if not sc.loops:
            data = "x[0]" if "x" in sc.reads else (sc.scalars or ["0.5"])[0]
            return self.choose(
                [
                    (None, "0"),
                    (None, f"{sc.size} - 1"),
                    (None, f"{sc.size} // 2"),
                    ("idx_data", f"int(2.5 + 2.0 * np.tanh({data})) % {sc.size}"),
                ]
            )
        var, bound = sc.loops[-1] if innermost else self.pick(reversed(sc.loops))
        if var != sc.loops[-1][0]:
            self.used.add("loop_invariant_if")  # conservatively: a condition may use it
        options = [
            (None, var),
            ("idx_rev", f"{bound} - 1 - {var}"),
            ("idx_mod", f"({var} * 3 + 1) % {sc.size}"),
            ("idx_mod", f"({var} + 2) % {sc.size}"),
            ("idx_half", f"{var} // 2"),
        ]
        if sc.reads:
            data = f"{sc.reads[0]}[{var}]"
            options.append(("idx_data", f"(int(2.5 + 2.0 * np.tanh({data})) + {var}) % {sc.size}"))
        return self.choose(options)

    def leaf(self, sc: Scope) -> str:
        options = [(None, "const")]
        if sc.reads:  # reads weigh most
            options = [(None, "read")] * 3 + options + [("sum", "sum")]
        if sc.scalars:
            options += [(None, "scalar")] * 2
        if sc.accs:
            options.append((None, "acc"))
        if sc.loops:
            options.append((None, "ivar"))
        if sc.loops and sc.reads:
            options.append(("neighbour", "neighbour"))
        kind = self.choose(options)
        if kind == "read":
            return f"{self.pick(sc.reads)}[{self.index(sc)}]"
        if kind == "neighbour":
            v, r, end = self.pick(v for v, _ in sc.loops), self.pick(sc.reads), self.pick(CONSTANTS)
            return self.choose(
                [
                    (None, f"({r}[{v} - 1] if {v} > 0 else {end})"),
                    (None, f"({r}[{v} + 1] if {v} + 1 < {sc.size} else {end})"),
                ]
            )
        if kind == "sum":
            return f"{self.pick(sc.reads)}.sum()"
        if kind == "scalar":
            return self.pick(sc.scalars)
        if kind == "acc":
            acc = self.pick(sc.accs)
            return self.choose([("tanh", f"np.tanh({acc})"), ("sin", f"np.sin({acc})")])
        if kind == "ivar":
            return f"(0.25 * {self.pick(v for v, _ in sc.loops)})"
        return self.pick(CONSTANTS)

    def expr(self, sc: Scope, depth: int = 2) -> str:
        if depth <= 0:
            return self.leaf(sc)
        options = [(None, "leaf"), (None, "unary"), (None, "binary")]
        if sc.kind == "f":
            options += [("helper_scalar", "hscalar"), ("helper_reduce", "hreduce")]
        kind = self.choose(options)
        if kind == "leaf":
            return self.leaf(sc)
        if kind == "hscalar":
            name = self.helper("scalar")
            return f"{name}({self.expr(sc, depth - 1)}, {self.expr(sc, depth - 1)})"
        if kind == "hreduce":
            name = self.helper("reduce")
            return f"{name}({self.pick(sc.reads)}, {self.pick(['n', 'm'])})"
        e = self.expr(sc, depth - 1)
        if kind == "unary":
            form = self.choose(
                [
                    ("sin", "np.sin({0})"),
                    ("cos", "np.cos({0})"),
                    ("tanh", "np.tanh({0})"),
                    ("exp", "np.exp(np.sin({0}))"),
                    ("exp", "math.exp(-{0} * {0})"),
                    ("sqrt", "math.sqrt(1.0 + {0} * {0})"),
                    ("sqrt", "np.sqrt(0.5 + {0} ** 2)"),
                    ("pow", "{0} ** 2"),
                    ("pow", "{0} ** 3"),
                    ("log", "np.log(1.0 + {0} * {0})"),
                    ("atan", "np.arctan({0})"),
                    ("abs", "abs({0})"),
                ]
            )
            out = form.format(e)
            return f"({out})" if form.startswith("{0}") else out
        e2 = self.expr(sc, depth - 1)
        form = self.choose(
            [
                (None, "({0} + {1})"),
                (None, "({0} - {1})"),
                (None, "({0} * {1})"),
                ("div", "({0} / (1.0 + {1} * {1}))"),
                ("minmax", "min({0}, {1})"),
                ("minmax", "max({0}, {1})"),
            ]
        )
        return form.format(e, e2)

    def data_value(self, sc: Scope, varying: bool, index: str | None = None) -> str:
        """An expression of the inputs: an array element or a float argument, maybe combined
        with another expression; if ``varying``, an element indexed by the innermost loop
        variable (or by ``index``)."""
        bases = [f"{r}[{{i}}]" for r in sc.reads]
        if not varying:
            bases += list(sc.scalars)
        base = self.pick(bases)
        if "{i}" in base:
            base = base.format(i=index or self.index(sc, innermost=varying))
        elif sc.loops:
            self.used.add("loop_invariant_if")
        form = self.choose(
            [
                (None, "{0}"),
                ("sin", "np.sin({0})"),
                ("tanh", "np.tanh({0})"),
                (None, "{0} * {1}"),
                (None, "{0} + {1}"),
            ]
        )
        return form.format(base, self.leaf(sc) if "{1}" in form else "")

    def condition(self, sc: Scope) -> str:
        """A branch condition.  Inside a loop, unless ``loop_invariant_if`` is allowed, it
        varies from one iteration of the innermost loop to the next."""
        varying = bool(sc.loops) and not self.ok("loop_invariant_if")
        options = [("if_data", "data")] if sc.reads or not varying else []
        if sc.accs and not varying:
            options.append(("if_data", "acc"))
        if sc.loops:
            options.append(("if_index", "index"))
        kind = self.choose(options)
        if kind == "data":
            op = self.pick([">", "<"])
            return f"{self.data_value(sc, varying)} {op} {self.pick(THRESHOLDS)}"
        if kind == "acc":
            if sc.loops:
                self.used.add("loop_invariant_if")
            return f"{self.pick(sc.accs)} > {self.pick(('1.0', '0.5', '(-0.5)', '2.0'))}"
        var, bound = sc.loops[-1] if varying else self.pick(reversed(sc.loops))
        if var != sc.loops[-1][0]:
            self.used.add("loop_invariant_if")
        return self.pick([f"{var} % 2 == 0", f"{var} < {bound} // 2", f"{var} == 0"])

    # -- statements
    def block(self, sc: Scope, most: int) -> list:
        sc = sc.copy()
        lines: list = []
        count = self.draw(st.integers(1, most))
        for _ in range(count):
            if self.budget <= 0 and lines:
                break
            self.budget -= 1
            lines += self.statement(sc)
        return lines

    def statement(self, sc: Scope) -> list:
        options = []
        if sc.accs:
            options.append((None, "acc"))
        if self.store_targets(sc):
            options.append((None, "store"))
        options.append((None, "if"))
        nesting = len(sc.loops) - (1 if sc.kind in ("reduce", "mutate") else 0)
        if nesting < 2 and sc.kind == "f":
            options += [(None, "loop")] * 3  # loops weigh most
        if sc.loops:
            options += [("break", "break"), ("continue", "continue")]
        if sc.kind in ("f", "reduce"):
            options.append(("return_early", "return"))
        if sc.kind == "f" and sc.writes:
            options.append(("helper_mutate", "call"))
        if sc.kind == "f" and sc.loops:
            options.append(("local_in_loop", "local"))
        if sc.kind == "f" and self.slice_targets(sc):
            options += [("slice_copy", "slice"), ("slice_expr", "slice_expr")]
        kind = self.choose(options)
        if kind == "acc":
            acc, e = self.pick(sc.accs), self.expr(sc)
            return [self.pick([f"{acc} += {e}", f"{acc} -= {e}", f"{acc} = 0.5 * {acc} + {e}"])]
        if kind == "store":
            return [self.store(sc)]
        if kind == "if":
            lines = [f"if {self.condition(sc)}:"] + _indent(self.block(sc, 2))
            if self.flag():
                lines += ["else:"] + _indent(self.block(sc, 2))
            return lines
        if kind == "loop":
            return self.loop(sc)
        if kind in ("break", "continue"):
            return [f"if {self.condition(sc)}:", f"    {kind}"]
        if kind == "return":
            return [f"if {self.condition(sc)}:", f"    return {self.final(sc)}"]
        if kind in ("slice", "slice_expr"):
            target, source = self.pick(self.slice_targets(sc)), self.pick(sc.reads)
            if target not in ("x", "y"):
                self.used.add("slice_into_local")
            if kind == "slice_expr":
                return [f"{target}[:] = np.tanh({source}) * 0.5"]
            forms = [f"{target}[:] = {source}", f"{target}[1:] = {source}[:-1]"]
            return [self.pick(forms + [f"{target}[:-1] = {source}[1:]"])]
        if kind == "call":
            name = self.helper("mutate")
            target = self.pick(sc.writes)
            source = self.pick([target] + [r for r in sc.reads if r != target])
            return [f"{name}({target}, {source}, {self.pick(['n', 'm'])})"]
        # a local array allocated in the loop body, usable by the rest of the block
        name = self.fresh("t")
        lines = [f"{name} = {self.array_expr(sc)}"]
        sc.reads.append(name)
        sc.writes.append(name)
        return lines

    def slice_targets(self, sc: Scope) -> list:
        if self.ok("slice_into_local"):
            return sc.writes
        return [w for w in sc.writes if w in ("x", "y")]

    def store_targets(self, sc: Scope) -> list:
        if sc.kind != "f" or self.ok("store_input"):
            return sc.writes
        return [w for w in sc.writes if w not in ("x", "y")]

    def store(self, sc: Scope) -> str:
        target = self.pick(self.store_targets(sc))
        if sc.kind == "f":
            self.used.add("store_input" if target in ("x", "y") else "store_local")
        e = self.expr(sc)
        rhs = self.choose(
            [
                ("tanh", f"np.tanh({e})"),
                ("sin", f"np.sin({e})"),
                ("cos", f"0.5 * np.cos({e})"),
                (None, f"0.5 * {e}"),
            ]
        )
        op = self.pick(["=", "+="])
        return f"{target}[{self.index(sc)}] {op} {rhs}"

    def limit(self, sc: Scope) -> tuple:
        """Lines defining ``lim = min(int(...), m)`` and the name ``lim``."""
        name = self.fresh("lim")
        e = self.expr(sc, 1)
        return [f"{name} = min(int(2.5 + 2.0 * np.tanh({e})), {sc.size})"], name

    def loop(self, sc: Scope) -> list:
        options = [("for_n", "n"), ("for_m", "m"), ("for_int", "int")]
        options += [("while_data", "while_data"), ("while_int", "while_int")]
        if sc.loops:
            options.append(("for_nested", "nested"))
        kind = self.choose(options)
        var = self.fresh("i")
        pre: list = []
        if kind in ("n", "m"):
            head, bound = f"for {var} in range({kind}):", kind
        elif kind == "int":
            pre, bound = self.limit(sc)
            head = f"for {var} in range({bound}):"
        elif kind == "nested":
            outer, bound = self.pick(reversed(sc.loops))
            rng = self.pick([outer, f"{outer} + 1", f"{outer}, {bound}"])
            head = f"for {var} in range({rng}):"
        else:
            counter = self.fresh("k")
            if kind == "while_int":
                pre, bound = self.limit(sc)
                cond = f"{counter} < {bound}"
            else:
                bound = "n"
                if self.choose([(None, False), ("loop_invariant_if", True)]):
                    data = self.condition(sc)  # the same at every iteration, maybe
                else:
                    op = self.pick([">", "<"])
                    value = self.data_value(sc, True, index=counter)
                    data = f"{value} {op} {self.pick(THRESHOLDS)}"
                cond = f"{counter} < n and {data}"
            pre += [f"{counter} = 0"]
            head = f"while {cond}:"
            pre_body = [f"{var} = {counter}", f"{counter} += 1"]
            body = self.block(sc.inner(var, bound), 3)
            return pre + [head] + _indent(pre_body + body)
        return pre + [head] + _indent(self.block(sc.inner(var, bound), 3))

    def final(self, sc: Scope) -> str:
        e = self.expr(sc)
        if not sc.accs:
            return e
        acc = self.pick(sc.accs)
        return self.pick([f"{acc} + {e}", f"{acc} * {e}", f"{e} - {acc}"])

    # -- local arrays and helpers
    def array_expr(self, sc: Scope) -> str:
        return self.pick(
            [
                "np.sin(x) * y",
                "x * a + np.tanh(y)",
                "np.exp(np.sin(y)) / (1.0 + x * x)",
                "np.cos(x) + a",
            ]
        )

    def local_array(self, sc: Scope) -> list:
        name = self.fresh("w")
        kind = self.choose(
            [
                ("local_expr", "expr"),
                ("local_zeros", "zeros"),
                ("local_empty", "empty"),
                ("local_empty_like", "empty_like"),
                ("local_copy", "copy"),
            ]
        )
        if kind == "expr":
            lines = [f"{name} = {self.array_expr(sc)}"]
        elif kind == "zeros":
            lines = [f"{name} = np.zeros(m)"]
        elif kind == "copy":
            lines = [f"{name} = {self.pick(['x', 'y'])}.copy()"]
        else:
            alloc = "np.empty(m)" if kind == "empty" else f"np.empty_like({self.pick(['x', 'y'])})"
            var = self.fresh("i")
            fill = self.expr(replace(sc, accs=[]).inner(var, "m"), 1)
            lines = [f"{name} = {alloc}", f"for {var} in range(m):", f"    {name}[{var}] = {fill}"]
        sc.reads.append(name)
        sc.writes.append(name)
        return lines

    def helper(self, kind: str) -> str:
        if kind in self.helpers:
            return self.helpers[kind][0]
        name = f"h_{kind}"
        self.helpers[kind] = (name, [])  # reserved first: a helper never calls a helper
        saved = self.budget
        self.budget = 4
        if kind == "scalar":
            sc = Scope(scalars=["p", "q"], accs=[], reads=[], writes=[], size="1", kind=kind)
            body = []
            if self.flag():
                body = [f"if {self.condition(sc)}:", f"    return {self.expr(sc)}"]
                self.used.add("if_data")
            lines = [f"def {name}(p, q):"] + _indent(body + [f"return {self.expr(sc)}"])
        elif kind == "reduce":
            sc = Scope(scalars=[], accs=["r"], reads=["v"], writes=[], size="mm", kind=kind)
            body = self.block(sc.inner("i", "k"), 3)
            lines = [f"def {name}(v, k):"] + _indent(
                ["mm = v.shape[0]", "r = 0.0", "for i in range(k):"]
                + _indent([f"r += {self.expr(sc.inner('i', 'k'))}"] + body)
                + ["return r"]
            )
        else:
            sc = Scope(scalars=[], accs=[], reads=["v", "u"], writes=["v"], size="mm", kind=kind)
            body = self.block(sc.inner("i", "k"), 3)
            lines = [f"def {name}(v, u, k):"] + _indent(
                ["mm = v.shape[0]", "for i in range(k):"]
                + _indent([self.store(sc.inner("i", "k"))] + body)
            )
        self.budget = saved
        self.helpers[kind] = (name, ["@numba.njit"] + lines)
        return name

    # -- the whole program
    def program(self) -> Program:
        dtype = self.choose([(None, "float64"), ("float32", "float32")])
        if self.ok("large") and self.flag():
            self.used.add("large")
            m = self.draw(st.integers(MAX_SIZE + 1, 4 * MAX_SIZE))  # tapes outgrow 4 KiB
        else:
            m = self.draw(st.integers(1, MAX_SIZE))
        n = self.draw(st.integers(0, m))
        aliased = self.ok("alias_xy") and self.flag()
        active_x = aliased or not (self.ok("const_array") and self.flag())
        active_y = aliased or not (self.ok("const_array") and self.flag())
        if aliased:
            self.used.add("alias_xy")
        active_a = self.ok("active_scalar") and self.flag()
        if not (active_x or active_y or active_a):
            active_x = True
        if not (active_x and active_y):
            self.used.add("const_array")
        if active_a:
            self.used.add("active_scalar")
        writes = [name for name, act in (("x", active_x), ("y", active_y)) if act]
        sc = Scope(scalars=["a"], accs=["s"], reads=["x", "y"], writes=writes, size="m")
        body = ["m = x.shape[0]", "s = 0.0"]
        if self.flag():
            sc.accs.append("t")
            body.append(f"t = {self.pick(['1.0', 'a', 'x[0]'])}")
        for _ in range(self.draw(st.integers(0, 2))):
            body += self.local_array(sc)
        body += self.block(sc, 5)
        body.append(f"return {self.final(sc)}")
        parts = ["import math", "", "import numba", "import numpy as np", "", "import enzpy as ez"]
        for kind in ("scalar", "reduce", "mutate"):
            if kind in self.helpers:
                self.used.add(f"helper_{kind}")
                parts += ["", ""] + self.helpers[kind][1]
        parts += ["", "", "@ez.enzyme_jit", "def f(x, y, a, n):"] + _indent(body)
        active = tuple(i for i, act in enumerate((active_x, active_y, active_a)) if act)
        seed = self.draw(st.integers(0, 2**32 - 1))
        if dtype == "float32":
            self.used.add("float32")
        strided = self.ok("strided") and self.flag()
        if strided:
            self.used.add("strided")
        source = "\n".join(parts) + "\n"
        constructs = frozenset(self.used)
        return Program(source, dtype, m, n, active, seed, constructs, strided, aliased)


def _indent(lines: list) -> list:
    return ["    " + line for line in lines]


@st.composite
def programs(draw, exclude=frozenset()) -> Program:
    """A random ``Program`` using none of the constructs in ``exclude``."""
    unknown = set(exclude) - set(CONSTRUCTS)
    if unknown:
        raise ValueError(f"unknown constructs: {sorted(unknown)}")
    return _Gen(draw, exclude).program()


if __name__ == "__main__":  # print sample programs
    import sys

    for _ in range(int(sys.argv[1]) if len(sys.argv) > 1 else 3):
        print(repr(programs().example()), end="\n\n")
