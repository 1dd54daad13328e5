"""`ez.explain`: the primal IR with every instruction's activity, the argument mapping and
the synthesized derivative, for the derivative `autodiff` uses (same cache, nothing run)."""

import math
import re

import numba
import numpy as np
import pytest

import enzpy as ez
from enzpy import derivatives


@ez.enzyme_jit
def weighted_squares(x, c):
    s = 0.0
    for i in range(x.size):
        s += x[i] * x[i] * c[i]
    return s


@ez.enzyme_jit
def log_gamma_sum(x):
    s = 0.0
    for i in range(x.size):
        s += math.lgamma(x[i])
    return s


def _args():
    x = np.array([1.0, 2.0, 3.0])
    return x, np.zeros(3), np.array([0.5, 1.5, 2.5])


def _sections(report: str) -> dict[str, str]:
    parts = re.split(r"^; ---- ", report, flags=re.M)
    return {p.split(" ", 1)[0]: p for p in parts[1:]}


def _instruction_lines(primal: str, pattern: str) -> list[str]:
    return [ln for ln in primal.splitlines() if re.search(pattern, ln.split(";")[0])]


@pytest.fixture(scope="module")
def report():
    x, dx, c = _args()
    return ez.explain(weighted_squares, ez.Duplicated(x, dx), ez.Const(c), print_=False)


def test_every_primal_instruction_is_annotated(report):
    primal = _sections(report)["primal"]
    body = [ln for ln in primal.splitlines() if ln.startswith("  ")]
    assert body, primal
    for ln in body:
        assert re.search(r"; (active: \S.*|inactive.*)$", ln), ln


def test_active_loads_and_fmuls_are_named(report):
    primal = _sections(report)["primal"]
    loads = _instruction_lines(primal, r"= load double")
    assert len(loads) == 2, loads  # x[i] and c[i]
    active = [ln for ln in loads if "; active: loaded through active pointer" in ln]
    inactive = [ln for ln in loads if ln.endswith("; inactive")]
    assert len(active) == 1 and len(inactive) == 1, loads
    fmuls = _instruction_lines(primal, r"= fmul double")
    assert len(fmuls) == 2 and all("; active: operand %" in ln for ln in fmuls), fmuls
    # the active load is the one through the (shadowed) data pointer of x
    gep = re.search(r"ptr (%\S+), align", active[0].split(";")[0]).group(1)
    assert any(
        ln.strip().startswith(f"{gep} = getelementptr double, ptr %arg.x.4")
        for ln in primal.splitlines()
    ), primal


def test_integer_index_arithmetic_is_inactive(report):
    primal = _sections(report)["primal"]
    ints = _instruction_lines(primal, r"= (add|icmp|phi i64)")
    assert len(ints) >= 3, primal
    assert all(ln.endswith("; inactive") for ln in ints), ints
    branches = _instruction_lines(primal, r"^\s*br ")
    assert branches and all(ln.endswith("; inactive") for ln in branches)


def test_argument_mapping(report):
    args = _sections(report)["arguments"]
    rows = {m.group(1): ln for ln in args.splitlines() if (m := re.search(r"(%\S+)", ln))}
    assert "return value (float64)" in rows["%retptr"] and "active:" in rows["%retptr"]
    assert rows["%excinfo"].rstrip().endswith("inactive")
    for k, role in ((0, "meminfo"), (1, "parent"), (4, "data")):
        assert f"x: {role}" in rows[f"%arg.x.{k}"] and "active:" in rows[f"%arg.x.{k}"]
    assert "Duplicated(array(float64, 1d, C))" in rows["%arg.x.4"]
    assert "active: argument has a shadow" in rows["%arg.x.4"]
    assert "x: nitems" in rows["%arg.x.2"] and rows["%arg.x.2"].endswith("inactive")
    assert "x: shape[0]" in rows["%arg.x.5.0"]
    assert "c: data" in rows["%arg.c.4"] and "Const(array" in rows["%arg.c.4"]
    assert rows["%arg.c.4"].endswith("inactive")


def test_contains_the_derivative_autodiff_uses(report):
    x, dx, c = _args()
    argtypes = (numba.typeof(x), numba.typeof(c))
    deriv = derivatives.derivative(ez.Forward, weighted_squares, argtypes, ("dup", "const"), "dup")
    result = deriv.synthesis()
    fn = result.module.get(result.fn_name)
    assert result.fn_name.startswith("fwddiffe_")
    assert fn.text() in _sections(report)["derivative"]
    assert f"define i32 @{result.fn_name}(" in report
    # and autodiff reuses it: same cache entry, right answer
    n = len(derivatives._cache)
    dx[:] = [1.0, 0.0, 0.0]
    got = ez.autodiff(ez.Forward, weighted_squares, ez.Duplicated(x, dx), ez.Const(c))
    assert got == pytest.approx(2 * x[0] * c[0])
    assert len(derivatives._cache) == n


def test_prints_by_default_and_runs_nothing(capsys):
    x, dx, c = _args()
    dx[:] = 7.0
    text = ez.explain(weighted_squares, ez.Duplicated(x, dx), ez.Const(c))
    assert capsys.readouterr().out.strip() == text.strip()
    np.testing.assert_array_equal(dx, 7.0)  # no native code ran
    np.testing.assert_array_equal(x, _args()[0])


def test_reverse_mode():
    x, dx, c = _args()
    text = ez.explain(
        weighted_squares, ez.Duplicated(x, dx), ez.Const(c), mode=ez.Reverse, print_=False
    )
    derivative = _sections(text)["derivative"]
    assert re.search(r"^define i32 @diffe_", derivative, re.M)
    assert re.search(r"^define \S+ @augmented_", derivative, re.M)
    assert "in enzpy.Reverse" in text


def test_calls_with_a_helper_show_it_in_the_derivative():
    x = np.array([1.5, 2.5])
    text = ez.explain(log_gamma_sum, ez.Duplicated(x, np.zeros(2)), print_=False)
    calls = _instruction_lines(_sections(text)["primal"], r"call double @lgamma")
    assert calls and all("; active: argument %" in ln for ln in calls), calls
    assert "define internal double @enzpy.digamma.f64" in _sections(text)["derivative"]


def test_bad_annotations_raise_like_autodiff():
    x, dx, c = _args()
    with pytest.raises(ez.AnnotationError):
        ez.explain(weighted_squares, ez.Active(1.0), ez.Const(c), print_=False)
    with pytest.raises(ez.ShadowError):
        ez.explain(weighted_squares, ez.Duplicated(x, np.zeros(2)), ez.Const(c), print_=False)


def test_docstring_documents_the_dump_variable():
    assert "ENZPY_DUMP_IR" in ez.explain.__doc__
