"""The memory descriptors jitted entries make on the stack hold what NumPy says of each array
(data address, item size, shape, strides), for views, layouts and tuples of arrays (a row
each, zero-padded to the most dimensions); the checks' plan is a constant."""

import numba
import numpy as np
import pytest

from enzpy.bridge.descriptors import constant_rows, describe, describe_rows


def expected(a: np.ndarray) -> list[int]:
    return [a.__array_interface__["data"][0], a.itemsize, *a.shape, *a.strides]


@numba.njit
def one(a):
    return describe(a).copy()  # (the descriptor lives in this frame: copied out)


@numba.njit
def rows(a, b, c):
    return describe_rows((a, b, c)).copy()


BASE = np.arange(60.0).reshape(5, 12)
ARRAYS = {
    "vector": np.linspace(0.0, 1.0, 7),
    "strided view": BASE[1:, ::3],
    "fortran": np.asfortranarray(BASE),
    "float32 3-d": np.zeros((2, 3, 4), np.float32),
    "empty": np.zeros((0, 3)),
}


@pytest.mark.parametrize("name", list(ARRAYS))
def test_one_array(name):
    a = ARRAYS[name]
    assert one(a).tolist() == expected(a)


def test_a_row_per_array_of_mixed_layouts():
    shadows = (np.zeros((4, 4)), BASE[:4, :8:2], np.asfortranarray(np.ones((4, 4))))
    assert rows(*shadows).tolist() == [expected(s) for s in shadows]


def test_rows_of_fewer_dimensions_are_zero_padded():
    arrays = (ARRAYS["vector"], ARRAYS["float32 3-d"], BASE)
    width = 2 + 2 * 3
    assert rows(*arrays).tolist() == [
        expected(a) + [0] * (width - len(expected(a))) for a in arrays
    ]


def test_constant_rows():
    plan = ((1, 2, 3), (4, 5, 6))
    constant = constant_rows(plan)
    out = numba.njit(lambda: constant().copy())()
    assert out.dtype == np.int64 and out.tolist() == [[1, 2, 3], [4, 5, 6]]
    assert constant_rows(plan) is constant_rows(((1, 2, 3), (4, 5, 6)))  # (one per plan)
