"""Tokenizer for LLVM IR text: one instruction or header line into a list of tokens.

Owns only lexing. Knows nothing of instructions, types or analyses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<comment>;.*)
  | (?P<local>%(?:"[^"]*"|[-a-zA-Z$._0-9]+))
  | (?P<global>@(?:"[^"]*"|[-a-zA-Z$._0-9]+))
  | (?P<meta>!(?:[-a-zA-Z$._0-9]+|"[^"]*")?)
  | (?P<attrgroup>\#[0-9]+)
  | (?P<cstring>c"[^"]*")
  | (?P<string>"[^"]*")
  | (?P<number>-?0x[0-9A-Fa-f]+|-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|[su]0x[0-9A-Fa-f]+)
  | (?P<word>[A-Za-z_$.][-A-Za-z_$.0-9]*:?)
  | (?P<punct>\.\.\.|[,()\[\]{}<>=*:|])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Token:
    """One lexical token: its kind (local, global, word, number, punct, ...) and text."""

    kind: str
    text: str


def tokenize(line: str) -> list[Token]:
    """Split one line of IR into tokens, dropping whitespace and comments."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(line):
        m = _TOKEN.match(line, pos)
        if m is None:
            raise ValueError(f"cannot tokenize IR at {line[pos : pos + 40]!r} in {line!r}")
        kind = m.lastgroup
        assert kind is not None
        pos = m.end()
        if kind in ("ws", "comment"):
            continue
        tokens.append(Token(kind, m.group()))
    return tokens


_PLAIN_NAME = re.compile(r"^[-a-zA-Z$._][-a-zA-Z$._0-9]*$")


def unquote(ref: str) -> str:
    """Strip the sigil and quotes of a %local or @global reference."""
    body = ref[1:]
    if body.startswith('"'):
        return body[1:-1]
    return body


def quote(sigil: str, name: str) -> str:
    """Print a name with its sigil, quoting it when LLVM requires."""
    if _PLAIN_NAME.match(name) or name.isdigit():
        return sigil + name
    return f'{sigil}"{name}"'
