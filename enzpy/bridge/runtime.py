"""Numba's runtime and C helpers in the engine's rule table, registered through the same
public registry user rules use (`llvm_passes.rules`): the engine names no Numba symbol.

- NRT memory: meminfo allocations (`NRT_MemInfo_alloc*`, released by `NRT_decref`, kept
  alive by `NRT_incref`, data through `NRT_MemInfo_data_fast`), raw temporaries
  (`NRT_Allocate` / `NRT_Free`), reference counts;
- Numba's C math helpers, the same functions as libm's under other names;
- `numba_attempt_nocopy_reshape` (integers only), CPython's object constructors (printing),
  the fatal-error path of the BLAS wrappers;
- BLAS (`numba_xxdot`, `numba_xxgemv`, `numba_xxgemm`): `blas.py`.
"""

from __future__ import annotations

from llvm_passes.rules import Allocation, Effects, alias, no_derivative
from llvm_passes.rules.memory import allocator, data_pointer, lifetime

from . import blas  # noqa: F401  (registration)

MEMINFO_ALLOCATORS = (
    "NRT_MemInfo_alloc_aligned",
    "NRT_MemInfo_alloc_safe_aligned",
    "NRT_MemInfo_alloc",
    "NRT_MemInfo_alloc_safe",
)
REFCOUNT = ("NRT_incref", "NRT_decref")
DATA = "NRT_MemInfo_data_fast"

allocator(*MEMINFO_ALLOCATORS, allocation=Allocation("NRT_decref", "NRT_incref"), data=DATA)
# memory without a meminfo: the temporaries of an overlapping slice assignment
allocator("NRT_Allocate", allocation=Allocation("NRT_Free"))
lifetime(*REFCOUNT, "NRT_Free")
data_pointer(DATA)

for name in ("ldexp", "erf", "erfc", "lgamma"):
    alias(name, f"numba_{name}")
    alias(f"{name}f", f"numba_{name}f")
alias("tgamma", "numba_gamma")
alias("tgammaf", "numba_gammaf")

# (nd, dims, strides, newnd, newdims, newstrides, itemsize, is_f_order): new strides
RESHAPE = "numba_attempt_nocopy_reshape"
no_derivative(RESHAPE, why="integers only", effects=Effects(writes=(5,)))
#: what LLVM is told of runtime functions Numba declares without saying (`inline.py`): the
#: reshape reads its shapes and writes only the new strides, so that a view's data pointer,
#: stored beside the shape handed to it, is known again when it is loaded back
DECLARATIONS = {
    RESHAPE: f"declare i32 @{RESHAPE}(i64, ptr readonly captures(none), "
    "ptr readonly captures(none), i64, ptr readonly captures(none), "
    "ptr writeonly captures(none), i64, i32) nounwind memory(argmem: readwrite)"
}
# the CPython C API's constructors of Python objects from C floats (printing, messages)
PYTHON_OBJECTS = ("PyFloat_FromDouble", "PyComplex_FromDoubles", "PyLong_FromDouble")
no_derivative(*PYTHON_OBJECTS, why="builds a Python object (printing, messages)")
# the fatal-error path of Numba's BLAS wrappers (the helper failed: the process ends there)
FATAL_ERROR = ("numba_gil_ensure", "Py_FatalError")
no_derivative(FATAL_ERROR[0], why="takes the GIL", effects=Effects(writes=(0,)))
no_derivative(FATAL_ERROR[1], why="ends the process")

# Numba's parallel-loop scheduler (`parallel=True`): thread counts, chunk sizes, the
# schedule (integer rows [start..., end...] per chunk) and the running thread's index
no_derivative(
    "get_num_threads",
    "get_parallel_chunksize",
    "set_parallel_chunksize",
    why="the parallel scheduler's integers",
)
# the running thread's slot of a reduction's partial results: a chunk's reverse sweep uses
# the slot of the thread running it (additive reductions: every slot's adjoint is the same)
no_derivative("get_thread_id", why="the running thread's index", per_thread=True)
no_derivative("get_sched_size", why="the parallel scheduler's integers (reads its bounds)")
no_derivative(
    "allocate_sched",
    why="the parallel schedule's integer memory",
    effects=Effects(allocates=Allocation("deallocate_sched")),
)
lifetime("deallocate_sched")
SCHEDULES = ("do_scheduling_signed", "do_scheduling_unsigned")
no_derivative(
    *SCHEDULES, why="fills the parallel schedule's integers", effects=Effects(writes=(4,))
)
SCHEDULER = (  # all of the above
    "get_num_threads",
    "get_thread_id",
    "get_parallel_chunksize",
    "set_parallel_chunksize",
    "get_sched_size",
    "allocate_sched",
    *SCHEDULES,
)
