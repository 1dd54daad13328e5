"""Calls that read floats and return nothing a derivative flows through: they build Python
objects from floats (printing, error messages, boxing). Their results are inactive."""

from __future__ import annotations

from .registry import no_derivative

# the CPython C API's constructors of Python objects from C floats
PYTHON_OBJECTS = ("PyFloat_FromDouble", "PyComplex_FromDoubles", "PyLong_FromDouble")

no_derivative(*PYTHON_OBJECTS, why="builds a Python object (printing, messages)")
