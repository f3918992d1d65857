"""Progress of long work: a bar on a terminal, plain log lines elsewhere.

A log file, ``nohup`` or a cluster job gets no carriage-return bars: instead one line at most
every ``INTERVAL_S`` seconds (``preprocess: 12/40 case (30%), 21 s, about 49 s left``) and one
at the end, through the ``autounet`` logger.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable, Iterable, Iterator

from tqdm import tqdm

INTERVAL_S = 10.0
log = logging.getLogger("autounet")


class LogProgress:
    """tqdm's small interface (iterate, ``update``, ``set_postfix``, ``close``) as log lines."""

    def __init__(self, iterable: Iterable | None = None, total: int | None = None, desc: str = "", unit: str = "it",
                 interval_s: float = INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.iterable, self.desc, self.unit, self.interval_s, self.clock = iterable, desc, unit, interval_s, clock
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n, self.postfix, self.closed = 0, "", False
        self.reported = -1  # the count of the last line
        self.started = self.last = clock()

    def __iter__(self) -> Iterator:
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> "LogProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def set_postfix(self, **values: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in values.items())

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self.clock()
        if now - self.last >= self.interval_s:
            self.last = now
            self._line(now)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if (self.reported >= 0 or self.clock() - self.started >= self.interval_s) and self.reported != self.n:
                self._line(self.clock(), done=True)

    def _line(self, now: float, done: bool = False) -> None:
        elapsed = now - self.started
        text = f"{self.desc}: {self.n}" + (f"/{self.total}" if self.total else "") + f" {self.unit}"
        if self.total:
            text += f" ({100 * self.n / self.total:.0f}%)"
        text += f", {elapsed:.0f} s"
        if self.total and 0 < self.n < self.total and not done:
            text += f", about {elapsed * (self.total - self.n) / self.n:.0f} s left"
        log.info("%s%s", text, f" ({self.postfix})" if self.postfix else "")
        self.reported = self.n


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it",
             leave: bool = True, disable: bool | None = None):
    """A tqdm bar where stderr is a terminal, else :class:`LogProgress` (``disable=True``: nothing)."""
    if disable:
        return tqdm(iterable, total=total, disable=True)
    if sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, unit=unit, leave=leave, dynamic_ncols=True)
    return LogProgress(iterable, total, desc, unit)
