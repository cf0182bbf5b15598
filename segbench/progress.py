"""Progress for terminals and for logs: tqdm's bar on a terminal, one line per tenth elsewhere.

A Snakemake job's output goes to a log file, where a carriage-return bar becomes one long unreadable line
and its last state vanishes. :func:`progress_bar` returns tqdm on a terminal and otherwise a
:class:`LineProgress` with the same calls (``update``, ``set_postfix``, context manager), which writes
``progress <desc>: 150/300 it (50%), loss 0.912, lr 0.04, 2.1 it/s, ETA 71 s`` lines. The train rule
passes those lines on to the console, so ``make reproduce`` shows each running job's progress.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

PREFIX = "progress "


class LineProgress:
    """tqdm's interface for a log: a line each time another ``every`` of ``total`` is done, and at the end."""

    def __init__(
        self,
        total: int,
        *,
        initial: int = 0,
        desc: str = "",
        unit: str = "it",
        every: float = 0.1,
        stream: TextIO | None = None,
        disable: bool = False,
    ) -> None:
        self.total, self.n, self.desc, self.unit = int(total), int(initial), desc, unit
        self.step = max(1, round(self.total * every))
        self.stream = stream or sys.stderr
        self.disable = disable
        self.postfix: dict[str, Any] = {}
        self._start, self._start_n = time.perf_counter(), self.n
        self._next = (self.n // self.step + 1) * self.step
        self._last_written = -1

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.n >= self._next or self.n >= self.total:
            self._next = (self.n // self.step + 1) * self.step
            self._write()

    def set_postfix(self, **values: Any) -> None:
        """Values for the next line (call it before :meth:`update`, whose line shows them)."""
        self.postfix = values

    def line(self) -> str:
        elapsed = time.perf_counter() - self._start
        rate = (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.n}/{self.total} {self.unit} ({100 * self.n / max(1, self.total):.0f}%)"]
        parts += [f"{k} {v}" for k, v in self.postfix.items()]
        parts.append(f"{rate:.2f} {self.unit}/s")
        if 0 < self.n < self.total and rate > 0:
            parts.append(f"ETA {(self.total - self.n) / rate:.0f} s")
        return f"{PREFIX}{self.desc}: " + ", ".join(parts)

    def _write(self) -> None:
        if self.disable or self.n == self._last_written:
            return
        self._last_written = self.n
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        """A last line if the work stopped between two tenths (an error, or an iterator cut short)."""
        if self.n != self._last_written and self.n > self._start_n:
            self._write()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Any:  # pragma: no cover - the bars here are driven by update()
        raise TypeError("LineProgress is driven by update(); wrap no iterable")


def progress_bar(
    total: int,
    *,
    initial: int = 0,
    desc: str = "",
    unit: str = "it",
    disable: bool = False,
    stream: TextIO | None = None,
) -> Any:
    """tqdm on a terminal (``stream``, default stderr), :class:`LineProgress` elsewhere."""
    out = stream or sys.stderr
    if out.isatty():
        from tqdm import tqdm

        return tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit=unit,
            dynamic_ncols=True,
            mininterval=2.0,
            disable=disable,
            file=out,
        )
    return LineProgress(total, initial=initial, desc=desc, unit=unit, disable=disable, stream=out)
