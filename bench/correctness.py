"""Correctness of every derivative column: each tool's result is compared with one reference
tool of the same kernel (a hand-written gradient — native C or Numba — else JAX, else PyTorch),
and a tool that disagrees beyond its tolerance is flagged: its time is then not shown as a valid
measurement.

The deviation is ``‖g − g_ref‖₂ / ‖g_ref‖₂`` when both tools return whole gradients, else the
relative deviation of the directional derivatives ``|ż − ż_ref| / |ż_ref|`` (a forward tool's
ż, a reverse tool's gᵀu). (Norm-wise: the derivative of lse's max, ``1 − Σ softmax``, is a
rounding error of 2e-14 at one entry of a gradient whose largest entry is 1e-6; entry-wise
relative to the largest entry, that read as a wrong gradient.)
"""

from __future__ import annotations

import numpy as np

from .timing import KernelResult, ToolResult, is_derivative

#: reference tools, most trusted first
REFERENCES: tuple[str, ...] = ("native rev", "hand rev", "jax rev", "torch rev")
#: allowed deviation from the reference: rounding for exact tools, truncation for differences
EXACT_TOLERANCE = 1e-8
FD_TOLERANCE = 1e-4


def tolerance(tool: str) -> float:
    """The deviation above which ``tool`` is flagged."""
    return FD_TOLERANCE if tool.startswith("FD") else EXACT_TOLERANCE


def deviation(res: ToolResult, ref: ToolResult) -> float | None:
    """Relative deviation of ``res`` from ``ref`` (None when there is nothing to compare)."""
    if res.gradient is not None and ref.gradient is not None:
        if res.gradient.shape != ref.gradient.shape:
            return float("inf")
        scale = float(np.linalg.norm(ref.gradient))
        diff = float(np.linalg.norm(res.gradient - ref.gradient))
        return diff / scale if scale > 0 else diff
    if isinstance(res.value, float | np.floating) and isinstance(ref.value, float | np.floating):
        d = abs(float(res.value) - float(ref.value))
        return d / abs(float(ref.value)) if ref.value != 0 else d
    return None


def assess(result: KernelResult) -> None:
    """Pick the kernel's reference, set each derivative tool's ``rel_error`` and ``flagged``."""
    ref_name = next(
        (n for n in REFERENCES if n in result.tools and result.tools[n].error is None), None
    )
    result.reference = ref_name
    if ref_name is None:
        return
    ref = result.tools[ref_name]
    for name, res in result.tools.items():
        if name == ref_name or not is_derivative(name) or res.error is not None:
            continue
        err = deviation(res, ref)
        res.rel_error = err
        res.flagged = err is not None and not err <= tolerance(name)
