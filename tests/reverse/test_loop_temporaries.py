"""Arrays allocated at each iteration of a loop: the reverse sweep reads an iteration's
array in place (kept alive until it passes the allocation) when nothing writes that array
after the read, and keeps a copy where something does, such as a write into last
iteration's array through a name carried over (a phi). Both modes against finite
differences and the dot test; the tape and the kept copies measured to show which was
done."""

import re

import numpy as np
from harness import check_all, reverse_functions

import enzpy as ez


@ez.enzyme_jit
def projections(x, mu, q):
    """gmm's inner step as NumPy users write it: per component a centred copy of the data
    times a matrix (`np.dot` reads it in place), squared and summed."""
    s = 0.0
    for k in range(mu.shape[0]):
        qx = np.dot(x - mu[k], q[k])
        s += np.sum(np.exp(-0.5 * qx * qx))
    return s


@ez.enzyme_jit
def carried(x, w, steps):
    """`prev` is last iteration's `b` when `prev[i] += b[i]` writes it: the `np.dot(b, b)`
    of that iteration must not read `b` in place."""
    n = x.shape[0]
    prev = x.copy()
    s = 0.0
    for _ in range(steps):
        b = np.empty(n)
        for i in range(n):
            b[i] = np.sin(prev[i]) * w[i]
        s += np.dot(b, b)
        for i in range(n):
            prev[i] += b[i]
        prev = b
    return s + np.sum(prev * prev)


@ez.enzyme_jit
def squared_temporaries(x, steps):
    """Loads of a temporary allocated per iteration, loaded again by the reverse sweep."""
    s = 0.0
    for k in range(steps):
        t = np.sin(x * (k + 1.0))
        s += np.sum(t * t * x)
    return s


@ez.enzyme_jit
def alternating_temporaries(x, steps):
    """A temporary from one of two allocations (a phi of them), loaded again in place."""
    s = 0.0
    for k in range(steps):
        if k % 2 == 0:
            t = np.sin(x * (k + 1.0))
        else:
            t = np.cos(x * (k + 1.0))
        s += np.sum(t * t * x)
    return s


@ez.enzyme_jit
def alternating_carried(x, steps):
    """The same, and each iteration writes last iteration's array after its loads (through
    a name carried over): those loads must not be loaded again."""
    s = 0.0
    prev = np.zeros_like(x)
    for k in range(steps):
        if k % 2 == 0:
            t = np.sin(x * (k + 1.0))
        else:
            t = np.cos(x * (k + 1.0))
        prev[0] = 3.0 * prev[0]  # last iteration's t, once read
        s += np.sum(t * t * x)
        prev = t
    return s + prev[0]


def _inputs(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((12, 3))
    mu = rng.standard_normal((4, 3))
    q = rng.standard_normal((4, 3, 3)) * 0.5
    return x, mu, q


def test_a_temporary_read_in_place_by_a_blas_call():
    check_all(projections, _inputs(0), (0, 1, 2))


def test_a_write_into_the_previous_iteration_array_keeps_a_copy():
    rng = np.random.default_rng(1)
    check_all(carried, (rng.standard_normal(7), rng.standard_normal(7), 4), (0, 1))


def test_loads_of_a_per_iteration_temporary():
    check_all(squared_temporaries, (np.linspace(0.1, 1.3, 9), 5), (0,))


def _copies(f, args, active):
    """How many copies of memory the reverse derivative's forward sweep makes for its
    adjoints (`Augmented.copied`: a malloc and a memcpy each)."""
    annotated = [
        ez.Duplicated(a, np.zeros_like(a)) if k in active else ez.Const(a)
        for k, a in enumerate(args)
    ]
    report = ez.explain(f, ez.Active, *annotated, mode=ez.Reverse, print_=False)
    return report.count("call ptr @malloc(")


def test_which_temporaries_are_copied():
    """`np.dot` reads `x - mu[k]` in place; in `carried` the product `np.dot(b, b)` keeps a
    copy of `b`, which the next iteration changes."""
    assert _copies(projections, _inputs(0), (0, 2)) == 0
    rng = np.random.default_rng(1)
    assert _copies(carried, (rng.standard_normal(7), rng.standard_normal(7), 4), (0,)) > 0


def test_temporaries_from_two_allocations():
    """Each iteration's `t` comes from one of two allocations: read in place, nothing of it
    on the tape (8 bytes per element and step before); writing last iteration's array makes
    the reverse sweep keep what it read."""
    x = np.linspace(0.1, 1.3, 9)
    check_all(alternating_temporaries, (x, 5), (0,))
    check_all(alternating_carried, (x, 5), (0,))
    x = np.linspace(0.1, 1.3, 1000)
    ez.gradient(ez.Reverse, alternating_temporaries, x, 4)
    assert ez.last_tape_bytes() < 1000 * 4 * 2


def row_energies(x, w):
    """Temporaries of array expressions, each read by the next."""
    y = x * w
    sq = y * y
    return np.sum(np.tanh(sq.sum(axis=1)))


def _allocations_of(module: str, attached: str) -> frozenset[str]:
    """The allocations (`enzpy.allocation.<i>`) whose shadows an access's `!alias.scope`
    list names, in a module's metadata."""
    names = dict(
        re.findall(r'^!(\d+) = distinct !\{!\d+, !\d+, !"(enzpy\.allocation\.\d+)"\}', module, re.M)
    )
    (listed,) = re.findall(rf"^!{attached} = !\{{(.*)\}}$", module, re.M)
    return frozenset(names[m] for m in re.findall(r"!(\d+)", listed) if m in names)


def test_the_shadows_of_distinct_allocations_are_apart(tmp_path):
    """The reverse sweep's accesses to the shadows of `y` and `sq` name different
    allocations (LLVM is told that they never overlap: the loop adding the shadow of `sq`
    into that of `y` vectorizes without checking them apart), and the gradient is right."""
    rng = np.random.default_rng(3)
    args = (rng.standard_normal((40, 7)), rng.standard_normal((40, 7)))
    (diffe,) = reverse_functions(row_energies, args, (0, 1), tmp_path).values()
    module = (tmp_path / "row_energies.ll").read_text()
    scopes = set(
        re.findall(r"^  (?:store|%\S+ = load) double [^\n]*!alias\.scope !(\d+)", diffe, re.M)
    )
    named = {_allocations_of(module, n) for n in scopes} - {frozenset()}
    assert len(named) >= 2 and all(len(a) == 1 for a in named)
    check_all(ez.enzyme_jit(row_energies), list(args), [0, 1])
