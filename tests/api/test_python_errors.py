"""Errors that speak Python: what enzpy cannot differentiate is named as the Python construct
the user wrote (np.sort, a list, np.linalg, nested autodiff), with advice that works and the
user's line of the call; and what needs no derivative (printing) is differentiated through."""

from __future__ import annotations

import inspect
import math
import warnings

import numba
import numpy as np
import pytest
from harness import check_forward, check_reverse, dot_test
from numba.core.errors import NumbaDebugInfoWarning

import enzpy as ez
from enzpy.bridge import compiled_function
from enzpy.bridge.names import demangle


def _line(f, text: str) -> int:
    """The source line of `f` holding `text`."""
    lines, first = inspect.getsourcelines(f.py_func)
    return first + next(k for k, line in enumerate(lines) if text in line)


def _raises(f, *args, mode=ez.Reverse):
    with pytest.raises(ez.NoDerivativeError) as info:
        ez.gradient(mode, f, *args)
    return str(info.value)


@ez.enzyme_jit
def printed(x):
    s = x * math.sin(x)
    print("s =", s)
    return s


def test_printing_needs_no_derivative(capsys):
    check_forward(printed, (0.7,), (0,))
    check_reverse(printed, (0.7,), (0,))
    assert "s = " in capsys.readouterr().out


@ez.enzyme_jit
def sorted_ends(x):
    y = x.copy()
    y.sort()  # in place (a rule)
    return y[0] * 2.0 + y[-1]


@ez.enzyme_jit
def sorted_rows(x):
    y = np.sort(x.reshape(2, 3))  # along the rows: Numba's code, differentiated
    return y[0, 0] * 2.0 + y[0, -1] + np.sum(y[1] * np.arange(3.0))


@ez.enzyme_jit
def sorted_rows_in_place(x):
    y = x.reshape(2, 3).copy()
    y.sort()
    return y[0, 0] * 2.0 + y[1, -1]


@ez.enzyme_jit
def median_of(x):
    return np.median(x) * x[0]


@ez.enzyme_jit
def partitioned(x):
    r = np.abs(x)
    return np.partition(r, 2)[2] * x[1]


@ez.enzyme_jit
def thirtieth_percentile(x):
    return np.percentile(x, 30.0)


@ez.enzyme_jit
def quantiles(x):
    y = x.copy()
    y[1] = np.nan
    q = np.quantile(np.exp(x), np.array([0.1, 0.5, 0.95]))
    return (q**2).sum() + np.nanpercentile(y, 60.0) * np.nanmedian(y)


@ez.enzyme_jit
def of_reshaped_arrays(x):  # the view's data pointer is known through the reshape's call
    m = x.reshape((2, x.size // 2))
    return np.percentile(m, 30.0) * x[0] + np.median(m.T) + np.quantile(x.ravel(), 0.7)


@ez.enzyme_jit
def partitioned_rows(m):
    return np.partition(m.T.copy(), 1)[0, 1] * m[0, 2] + np.nanpercentile(m.ravel(), 60.0)


@ez.enzyme_jit
def through_a_list(x):
    values = [x[0], x[1] * 2.0]
    return values[0] * values[1]


@pytest.mark.parametrize(
    "f, construct, advice, call",
    [
        (through_a_list, "a Python list", "NumPy array", "values = ["),
    ],
)
def test_constructs_are_named_with_a_way_out(f, construct, advice, call):
    message = _raises(f, np.array([3.0, 1.0, 2.0]))
    assert construct in message and advice in message
    assert f"test_python_errors.py:{_line(f, call)}" in message


def test_a_sort_in_place_differentiates():
    x = np.array([0.3, 2.5, -1.0, 4.0, 1.5, 0.7])
    check_forward(sorted_ends, (x,), (0,))
    check_reverse(sorted_ends, (x,), (0,))


@pytest.mark.parametrize("f", [sorted_rows, sorted_rows_in_place])
def test_sorts_of_rows_differentiate(f):
    """Numba sorts each row of an array of more dimensions into an array it was given and
    returns (a null parent beside the data: given a null shadow)."""
    x = np.array([0.3, 2.5, -1.0, 4.0, 1.5, 0.7])
    check_forward(f, (x,), (0,))
    check_reverse(f, (x,), (0,))
    dot_test(f, (x,), (0,))


@pytest.mark.parametrize(
    "f",
    [median_of, partitioned, thirtieth_percentile, quantiles, of_reshaped_arrays, partitioned_rows],
)
def test_selection_differentiates_through_numbas_code(f):
    x = np.array([0.3, 2.5, -1.0, 4.0, 1.5, 0.7])
    x = x.reshape(2, 3) if f is partitioned_rows else x
    check_forward(f, (x,), (0,))
    check_reverse(f, (x,), (0,))
    dot_test(f, (x,), (0,))


@ez.enzyme_jit
def loss_2d_deriv(a):
    return np.linalg.cond(a.reshape(2, 2)) * a[0]


def test_library_errors_name_the_users_line_without_debug_warnings():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        message = _raises(loss_2d_deriv, np.array([3.0, 1.0, 2.0, 5.0]))
    assert "np.linalg" in message and "loss_2d_deriv" in message
    assert f"test_python_errors.py:{_line(loss_2d_deriv, 'np.linalg.cond')}" in message
    assert not [w for w in seen if issubclass(w.category, NumbaDebugInfoWarning)]


@ez.enzyme_jit
def _det_of_minor(a):
    return a[0] * a[1]


@numba.njit
def café(x):  # a non-ASCII identifier
    return x


@pytest.mark.parametrize(
    "f, argtype",
    [
        (loss_2d_deriv.dispatcher, numba.float64[::1]),
        (_det_of_minor.dispatcher, numba.float64[::1]),
        (café, numba.float64),
    ],
)
def test_names_are_demangled_as_written(f, argtype):
    f.compile((argtype,))
    symbol, _, _ = compiled_function(f, (argtype,))
    assert demangle(symbol) == f"{f.py_func.__module__}.{f.py_func.__qualname__}"


def test_angle_brackets_are_decoded():
    assert demangle("_ZN5numba2np8arrayobj12impl_np_sort12_3clocals_3e12np_sort_implB2v2E") == (
        "numba.np.arrayobj.impl_np_sort.<locals>.np_sort_impl"
    )
