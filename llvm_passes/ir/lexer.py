"""Tokenizer for LLVM IR text: one instruction or header line into its tokens.

Owns only lexing. Knows nothing of instructions, types or analyses.
"""

from __future__ import annotations

import re

# every token's text, in the order of precedence: a comment, a local, a global, metadata, an
# attribute group, a c-string, a string, a number, a word, punctuation; any other character
# alone (refused)
_TOKEN = re.compile(
    r"""
    ;.*
  | %(?:"[^"]*"|[-a-zA-Z$._0-9]+)
  | @(?:"[^"]*"|[-a-zA-Z$._0-9]+)
  | !(?:[-a-zA-Z$._0-9]+|"[^"]*")?
  | \#[0-9]+
  | c"[^"]*"
  | "[^"]*"
  | -?0x[0-9A-Fa-f]+|-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|[su]0x[0-9A-Fa-f]+
  | [A-Za-z_$.][-A-Za-z_$.0-9]*:?
  | \.\.\.|[,()\[\]{}<>=*:|]
  | \S
    """,
    re.VERBOSE,
)
_SIGILS = {"%": "local", "@": "global", "!": "meta", "#": "attrgroup", '"': "string"}
_PUNCT = frozenset(",()[]{}<>=*:|")
_HEX_LITERAL = re.compile(r"[su]0x[0-9A-Fa-f]+")


def _kind(text: str) -> str:
    """The kind of a token's text (as matched by `_TOKEN`)."""
    c = text[0]
    kind = _SIGILS.get(c)
    if kind is not None:
        return kind if len(text) > 1 or c == "!" else "?"
    if c.isdigit() or c == "-" and len(text) > 1:
        return "number"
    if c in _PUNCT:
        return "punct"
    if c == "c" and text[1:2] == '"':
        return "cstring"
    if c.isalpha() or c in "_$.":
        return "number" if c in "su" and _HEX_LITERAL.fullmatch(text) else "word"
    return "?"


class Token:
    """One lexical token: its kind (local, global, word, number, punct, ...) and text."""

    __slots__ = ("kind", "text")

    def __init__(self, kind: str, text: str) -> None:
        self.kind, self.text = kind, text

    def __repr__(self) -> str:
        return f"Token({self.kind!r}, {self.text!r})"


_KNOWN: dict[str, tuple[Token, ...]] = {}  # lines seen (a module is parsed several times)
_KNOWN_MAX = 1 << 15


def tokenize(line: str) -> tuple[Token, ...]:
    """Split one line of IR into tokens, dropping whitespace and comments."""
    tokens = _KNOWN.get(line)
    if tokens is None:
        if len(_KNOWN) >= _KNOWN_MAX:
            _KNOWN.clear()
        tokens = _KNOWN[line] = tuple(_tokens(line))
    return tokens


def _tokens(line: str) -> list[Token]:
    tokens: list[Token] = []
    for text in _TOKEN.findall(line):
        if text[0] == ";":
            break
        kind = _kind(text)
        if kind == "?":
            raise ValueError(f"cannot tokenize IR at {text!r} in {line!r}")
        tokens.append(Token(kind, text))
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
