"""parse -> print -> llvmlite parse + verify, and print(parse(print)) == print, for every
function the corpus makes Numba compile (its function-optimized IR and its callees')."""

from __future__ import annotations

import llvmlite.binding as llvm
from corpus import CASES

from enzpy.bridge import capture
from llvm_passes.ir import parse_module


def test_every_captured_module_round_trips():
    for case in CASES:
        case.fn(*case.args())  # compile the primal (and its callees) for these types
    modules = set(capture._registry.values())
    assert len(modules) >= len(CASES)
    for text in modules:
        printed = parse_module(text).text()
        llvm.parse_assembly(printed).verify()
        assert parse_module(printed).text() == printed
