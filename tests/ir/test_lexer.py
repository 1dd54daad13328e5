"""The tokenizer: each kind of token LLVM's grammar has, comments dropped, stray characters
refused, and a line read again from the cache gives the same tokens."""

import pytest

from llvm_passes.ir.lexer import tokenize

CASES = [
    (
        "%x = fadd fast double %a, 1.5e-3",
        [
            ("local", "%x"),
            ("punct", "="),
            ("word", "fadd"),
            ("word", "fast"),
            ("word", "double"),
            ("local", "%a"),
            ("punct", ","),
            ("number", "1.5e-3"),
        ],
    ),
    (
        'call void @"odd name"(ptr %"a b") #3 ; a comment, with "quotes"',
        [
            ("word", "call"),
            ("word", "void"),
            ("global", '@"odd name"'),
            ("punct", "("),
            ("word", "ptr"),
            ("local", '%"a b"'),
            ("punct", ")"),
            ("attrgroup", "#3"),
        ],
    ),
    (
        '@s = constant [3 x i8] c"a;b"',
        [
            ("global", "@s"),
            ("punct", "="),
            ("word", "constant"),
            ("punct", "["),
            ("number", "3"),
            ("word", "x"),
            ("word", "i8"),
            ("punct", "]"),
            ("cstring", 'c"a;b"'),
        ],
    ),
    (
        "i64 -1, i64 -0x1F, i128 s0x7F",
        [
            ("word", "i64"),
            ("number", "-1"),
            ("punct", ","),
            ("word", "i64"),
            ("number", "-0x1F"),
            ("punct", ","),
            ("word", "i128"),
            ("number", "s0x7F"),
        ],
    ),
    (
        "declare void @f(...) !dbg !12",
        [
            ("word", "declare"),
            ("word", "void"),
            ("global", "@f"),
            ("punct", "("),
            ("word", "..."),
            ("punct", ")"),
            ("meta", "!dbg"),
            ("meta", "!12"),
        ],
    ),
    ("L1:", [("word", "L1:")]),
    ("   ", []),
]


@pytest.mark.parametrize(("line", "expected"), CASES)
def test_kinds_and_texts(line, expected):
    for _ in range(2):  # read, then from the cache
        assert [(t.kind, t.text) for t in tokenize(line)] == expected


@pytest.mark.parametrize("line", ["%x = add i64 %a, `", "call @", "store i64 %", "i64 - 1"])
def test_stray_characters_are_refused(line):
    with pytest.raises(ValueError, match="cannot tokenize"):
        tokenize(line)
