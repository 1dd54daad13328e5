"""A one-line progress bar on stderr, no dependency: ``[#####-----] 12/40 0:31 gmm: jax rev``."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts steps towards ``total`` and redraws the bar on every :meth:`step`."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 24) -> None:
        self.total = max(total, 1)
        self.done = 0
        self.stream = stream or sys.stderr
        self.width = width
        self.t0 = time.perf_counter()

    def step(self, label: str) -> None:
        """Advance by one step and show ``label`` (what runs now)."""
        self.done = min(self.done + 1, self.total)
        fill = self.width * self.done // self.total
        secs = int(time.perf_counter() - self.t0)
        line = (
            f"[{'#' * fill}{'-' * (self.width - fill)}] {self.done}/{self.total} "
            f"{secs // 60}:{secs % 60:02d} {label}"
        )
        self.stream.write("\r" + line[:110].ljust(110))
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        self.stream.write("\n")
        self.stream.flush()
