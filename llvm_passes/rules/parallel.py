"""The engine's parallel call: `enzpy.parallel_for(ptr @chunk, i64 n, args...)` runs
`@chunk(i64 c, args...)` for every c in [0, n) concurrently (see `registry.ParallelCall`).

Its derivative is the same call of the chunk's derivative (forward: `fwddiffe_chunk` with
the shadows of the arguments appended). A front end lowers the calls left in the code it
compiles onto its own thread pool.

`call void @enzpy.partition(ptr %row, i64 %entries, i64 %first)`, in a chunk, is a front
end's declaration (it does nothing): `%row` points to the chunk's part `[lo, hi]` (`%entries`
= 2 i64s) of a partition of an iteration space among the concurrent chunks, and a loop of
the chunk counting up by 1 from `lo` stays within it, so that the indices it visits no other
chunk visits; every chunk's part starts at or above `%first` (`analysis.partition`). A
front end defines it as a function doing nothing.
"""

from __future__ import annotations

from .registry import no_derivative, parallel_call

PARALLEL_FOR = "enzpy.parallel_for"
PARTITION = "enzpy.partition"

parallel_call(PARALLEL_FOR)
no_derivative(PARTITION, why="a declaration")
