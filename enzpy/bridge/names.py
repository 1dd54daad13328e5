"""Python names for what the engine reports in LLVM terms: Numba-mangled symbols, and the
runtime and library functions behind Python constructs (lists, np.sort, np.linalg...)."""

from __future__ import annotations

import re
from typing import Any

from numba.core import types
from numba.core.itanium_mangler import N2CODE

_ESCAPE = re.compile(r"(?:_[0-9a-f]{2})+")
_ANGLES = {0x3C: "<", 0x3E: ">"}  # the only ASCII escapes in a qualified name (<locals>)


def demangle(symbol: str) -> str:
    """The Python qualified name inside a Numba-mangled symbol (`_ZN8__main__1fB2v1...`
    -> `__main__.f`); other names are returned unchanged."""
    if not symbol.startswith("_ZN"):
        return symbol
    parts, i = [], 3
    while i < len(symbol) and symbol[i].isdigit():
        j = i
        while symbol[j].isdigit():
            j += 1
        n = int(symbol[i:j])
        parts.append(symbol[j : j + n])
        i = j + n
    return _ESCAPE.sub(_unescape, ".".join(parts) or symbol)


def argument_types(symbol: str) -> tuple[types.Type, ...] | None:
    """The Numba argument types mangled into a symbol, where they are scalars, arrays or
    omitted arguments (None otherwise)."""
    if not symbol.startswith("_ZN"):
        return None
    i = 3
    while i < len(symbol) and (symbol[i].isdigit() or symbol[i] == "B"):  # names, ABI tags
        i += symbol[i] == "B"
        i = _identifier(symbol, i)[1]
    if symbol[i : i + 1] != "E":
        return None
    out, i = [], i + 1
    while i < len(symbol):
        value, i = _mangled(symbol, i)
        if not isinstance(value, types.Type):
            return None
        out.append(value)
    return tuple(out)


_CODES = {code: t for t, code in N2CODE.items()}


def _identifier(symbol: str, i: int) -> tuple[str, int]:
    j = i
    while symbol[j].isdigit():
        j += 1
    n = int(symbol[i:j])
    return symbol[j : j + n], j + n


def _mangled(symbol: str, i: int) -> tuple[Any, int]:
    """One mangled type or value at `i`: a Numba type, an int, a string, or None."""
    if symbol[i].isdigit() or symbol[i] == "N":  # a name, or a dotted one: N<parts>E
        nested = symbol[i] == "N"
        i += nested
        parts: list[str] = []
        while not parts or nested and symbol[i] != "E":
            part, i = _identifier(symbol, i)
            parts.append(part)
        i += nested
        name = re.sub(r"_([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), ".".join(parts))
        params = []
        if symbol[i : i + 1] == "I":
            i += 1
            while symbol[i] != "E":
                value, i = _mangled(symbol, i)
                params.append(value)
            i += 1
        if name == "Array" and len(params) == 5:
            dtype, ndim, layout, mutable, aligned = params
            readonly, aligned = mutable == "readonly", aligned == "aligned"
            return types.Array(dtype, ndim, layout, readonly=readonly, aligned=aligned), i
        if name.startswith("omitted(default="):  # (the default itself is not needed)
            return types.Omitted(None), i
        return (name if not params else None), i
    if symbol.startswith("Li", i):
        j = symbol.index("E", i)
        return int(symbol[i + 2 : j]), j + 1
    for n in (2, 1):
        if symbol[i : i + n] in _CODES:
            return _CODES[symbol[i : i + n]], i + n
    return None, len(symbol)


def demangle_all(text: str) -> str:
    """`text` with every Numba-mangled symbol in it demangled."""
    return re.sub(r"_ZN\w+", lambda m: demangle(m.group()), text)


def _unescape(m: re.Match[str]) -> str:
    """Numba writes `_xx` for each byte of a character that is not [A-Za-z0-9_]: decode the
    angle brackets and whole UTF-8 characters; leave the rest (`loss_2d_deriv`) as written."""
    text = m.group()
    codes = [int(text[k + 1 : k + 3], 16) for k in range(0, len(text), 3)]
    out, k = [], 0
    while k < len(codes):
        c = codes[k]
        n = 2 if 0xC2 <= c <= 0xDF else 3 if 0xE0 <= c <= 0xEF else 4 if 0xF0 <= c <= 0xF4 else 0
        if c in _ANGLES:
            out.append(_ANGLES[c])
            k += 1
            continue
        if n and k + n <= len(codes) and all(0x80 <= b <= 0xBF for b in codes[k + 1 : k + n]):
            out.append(bytes(codes[k : k + n]).decode("utf-8"))
            k += n
            continue
        out.append(text[3 * k : 3 * k + 3])
        k += 1
    return "".join(out)


# (pattern in a symbol the engine names, the Python construct, what to do instead)
CONSTRUCTS = (
    (
        r"impl_np_sort|array_sort|quicksort|mergesort|heapsort",
        "a sort in a form without a derivative (np.sort and x.sort() of float arrays have one)",
        "use y = np.sort(x) or x.sort() on float arrays, or sort through a permutation: "
        "p = np.argsort(x); y = x[p] (the gather is differentiated)",
    ),
    (
        r"np_median|np_partition|np_percentile|np_quantile|_select\b|quickselect",
        "np.partition / np.percentile / np.quantile (Numba's selection) in this form",
        "sort through a permutation (p = np.argsort(x)) and index x[p]",
    ),
    (
        r"NRT_MemInfo_new_varsize|NRT_MemInfo_varsize|listobj|numba_list_",
        "a Python list",
        "keep floats that carry derivatives in a NumPy array (np.empty(n), then index it)",
    ),
    (
        r"numba_xx(?:getrf|getri|gesdd|gesv|gelsd|potrf|syevd|heevd|geev|geqrf|orgqr)|"
        r"numba_ez_|np\.linalg|numba\.np\.linalg",
        "np.linalg (LAPACK)",
        "enzpy has rules for solve, inv, det, slogdet, cholesky, eigh, eigvalsh, eig, eigvals, "
        "svd (square or thin), qr (tall), pinv, lstsq and norm only (and matrix_rank, which "
        "carries none); wrap the call in a "
        "function and give it rules (ez.forward_rule, ez.augmented_rule, ez.reverse_rule), "
        "or mark the matrix Const if no derivative is wanted through it",
    ),
)


def construct_hint(message: str) -> str:
    """A line naming the Python construct behind a runtime or library function `message`
    mentions, and what to do instead; '' when none is recognized."""
    for pattern, construct, advice in CONSTRUCTS:
        if re.search(pattern, message):
            return f"This is {construct}, which enzpy cannot differentiate yet: {advice}."
    return ""
