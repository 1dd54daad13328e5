"""The engine's parallel call: `enzpy.parallel_for(ptr @chunk, i64 n, args...)` runs
`@chunk(i64 c, args...)` for every c in [0, n) concurrently (see `registry.ParallelCall`).

Its derivative is the same call of the chunk's derivative (forward: `fwddiffe_chunk` with
the shadows of the arguments appended). A front end lowers the calls left in the code it
compiles onto its own thread pool.
"""

from __future__ import annotations

from .registry import parallel_call

PARALLEL_FOR = "enzpy.parallel_for"

parallel_call(PARALLEL_FOR)
