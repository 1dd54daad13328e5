"""The memory checks every entrance runs in one compiled call (`memory.failed_check`) agree
with NumPy: two views of one buffer (slices with steps, reversed, transposed, reshaped)
share memory exactly when `np.shares_memory` says so, and a shadow passed for its own
primal, or one of another shape, is refused with its error."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import enzpy as ez
from enzpy import memory

BUFFER = np.arange(240.0)


@st.composite
def views(draw):
    """A view of `BUFFER`: a 1-d slice, maybe reshaped to 2-d, maybe transposed or
    reversed along an axis."""
    start = draw(st.integers(0, 60))
    step = draw(st.integers(1, 5))
    length = draw(st.integers(0, (BUFFER.size - start - 1) // step + 1))
    v = BUFFER[start : start + step * length : step]
    if length and draw(st.booleans()):
        rows = draw(st.sampled_from([d for d in range(1, 9) if length % d == 0]))
        v = v.reshape(rows, length // rows)
        if draw(st.booleans()):
            v = v.T
        if draw(st.booleans()):
            v = v[:, ::-1]
    elif draw(st.booleans()):
        v = v[::-1]
    return v


def _shares(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether `failed_check` finds the shadow `b` sharing memory with the primal `a`."""
    plan = memory.plan((memory.operand(a, 0), memory.operand(b, 1)))
    try:
        memory.run(plan, [a, np.zeros_like(b)], [(), (b,)])
    except ez.ShadowError as e:
        assert "shares memory with the primal of argument 0" in str(e)
        return True
    return False


@settings(max_examples=300, deadline=None)
@given(views(), views())
def test_shared_memory_as_numpy_says(a, b):
    assert _shares(a, b) == np.shares_memory(a, b)


def test_interleaved_views_share_nothing():
    """Address ranges that meet without a common element (the sorted element addresses
    are walked)."""
    even, odd = BUFFER[0::2], BUFFER[1::2]
    assert not _shares(even, odd)
    assert _shares(even, BUFFER[-2::-4]) and not _shares(even, BUFFER[::-4])


@pytest.mark.parametrize(
    ("shadow", "error"),
    [
        (lambda x: x, "shares memory with its primal"),
        (lambda x: np.zeros(x.size + 1), "shape differs"),
        (lambda x: np.zeros(x.size)[::-1], None),  # another layout: accepted
    ],
)
def test_a_shadow_is_checked_against_its_primal(shadow, error):
    x = np.linspace(0.0, 1.0, 6)
    dx = shadow(x)
    plan = memory.plan((memory.operand(x, 1),))
    if error is None:
        memory.run(plan, [x], [(dx,)])
    else:
        with pytest.raises(ez.ShadowError, match=error):
            memory.run(plan, [x], [(dx,)])
