"""A clean stop on a termination signal: what a job scheduler sends before it preempts a job or
its time runs out (Slurm: SIGTERM, or the signal chosen with ``--signal``, e.g. SIGUSR1).

While :func:`stop_on_signals` is in force, SIGTERM, SIGUSR1, SIGUSR2 and SIGHUP raise
:class:`Stopped` in the main thread, as Ctrl-C raises KeyboardInterrupt. Every ``finally`` block
then runs, so a command stops as it does on Ctrl-C: augmentation workers and child processes
are stopped, locks released, the run's ledger and the logs flushed, and nothing half-written
replaces a finished file (all writes are atomic). A fold loses the epoch in progress: its
``checkpoint_latest.pt`` holds the last finished epoch, and ``--continue`` (or the same
``autounet run`` again) repeats that epoch from the same seeds, so the resumed fold ends as an
uninterrupted one would. The command exits with ``128 + the signal's number`` (143 for SIGTERM),
as a shell reports a process a signal ended.

A signal that is ignored when the command starts (``nohup`` ignores SIGHUP) stays ignored.
Processes forked from the command (augmentation and export workers) do not inherit the
behaviour: there the signal does what it did before.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger("autounet")
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGUSR2", "SIGHUP")
                     if hasattr(signal, name))


class Stopped(BaseException):
    """A stop signal arrived. A BaseException, as KeyboardInterrupt: ``except Exception`` blocks
    do not swallow it, ``finally`` blocks run."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Turn ``signals`` into :class:`Stopped` while the block runs (main thread only; elsewhere,
    and for signals ignored at the start, nothing changes). A second signal while the first one's
    clean-up runs is logged and does not interrupt it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()
    raised: list[int] = []

    def handler(signum: int, frame) -> None:
        if os.getpid() != owner:  # a forked worker: the signal's own behaviour
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if raised:
            log.warning("%s again: still stopping cleanly", signal.Signals(signum).name)
            return
        raised.append(signum)
        raise Stopped(signum)

    previous = {s: signal.getsignal(s) for s in signals}
    for s, before in previous.items():
        if before is not signal.SIG_IGN:
            signal.signal(s, handler)
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before if before is not None else signal.SIG_DFL)
