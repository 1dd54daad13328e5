"""parse -> print -> llvmlite parse + verify, and print(parse(print)) == print, for every
module Numba compiles for the corpus (its function-optimized IR and its callees'), stored in
``fixtures/`` by ``capture_fixtures.py``."""

from __future__ import annotations

import pathlib

import llvmlite.binding as llvm
import pytest

from llvm_passes.ir import parse_module

FIXTURES = sorted((pathlib.Path(__file__).resolve().parent / "fixtures").glob("*.ll"))


def test_the_fixtures_are_there():
    assert len(FIXTURES) >= 50, "run tests/ir/capture_fixtures.py"


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_captured_module_round_trips(path):
    printed = parse_module(path.read_text()).text()
    llvm.parse_assembly(printed).verify()
    assert parse_module(printed).text() == printed
