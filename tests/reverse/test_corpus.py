"""Reverse mode on the whole corpus: v^T J against finite differences, and the dot-product
test <v, J u> == <J^T v, u> against forward mode."""

import pytest
from corpus import CASES
from harness import check_reverse, dot_test


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_reverse_vs_fd(case):
    check_reverse(case.fn, case.args(), case.active, seed=case.seed, **case.tols())


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_dot_product(case):
    dot_test(case.fn, case.args(), case.active, seed=case.seed)
