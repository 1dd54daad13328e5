"""Writes the LLVM modules Numba compiles for the test corpus to ``tests/ir/fixtures/``.

One ``.ll`` file per distinct function-optimized module, named after the corpus case whose
compilation produced it (``<case>.ll``, then ``<case>.2.ll``, ... for its callees'
modules). ``test_roundtrip.py`` parses these files, so it does not compile the corpus.
Run it again after a Numba or llvmlite upgrade, or when ``tests/corpus.py`` changes,
from the repository root::

    .venv/bin/python tests/ir/capture_fixtures.py
"""

from __future__ import annotations

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"


def capture() -> dict[str, str]:
    """File name -> module text, for every distinct module the corpus compiles."""
    sys.path.insert(0, str(HERE.parent))
    from corpus import CASES

    from enzpy.bridge import capture as hook
    from enzpy.bridge.capture import defined_symbols

    out: dict[str, str] = {}
    seen = set(hook._registry.values())  # compiled on import: no case's
    for case in CASES:
        case.fn(*case.args())  # compile the primal (and its callees) for these types
        fresh = [t for t in dict.fromkeys(hook._registry.values()) if t not in seen]
        seen.update(fresh)
        own = {r.fndesc.mangled_name for r in case.fn.dispatcher.overloads.values()}
        fresh.sort(key=lambda t: own.isdisjoint(defined_symbols(t)))  # the case's own first
        for k, text in enumerate(fresh):
            out[f"{case.id}.ll" if k == 0 else f"{case.id}.{k + 1}.ll"] = text
    assert len(out) >= len(CASES), "fewer modules than corpus cases: capture is broken"
    return out


def main() -> None:
    modules = capture()
    FIXTURES.mkdir(exist_ok=True)
    for old in FIXTURES.glob("*.ll"):
        old.unlink()
    for name, text in modules.items():
        (FIXTURES / name).write_text(text)
    size = sum(len(t.encode()) for t in modules.values())
    print(f"{len(modules)} modules, {size / 1024:.0f} KiB -> {FIXTURES}")


if __name__ == "__main__":
    main()
