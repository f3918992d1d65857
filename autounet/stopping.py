"""A clean stop on a termination signal: what a job scheduler sends before it preempts a job or
its time runs out (Slurm: SIGTERM, or the signal chosen with ``--signal``, e.g. SIGUSR1).

While :func:`stop_on_signals` is in force, SIGTERM, SIGUSR1, SIGUSR2 and SIGHUP raise
:class:`Stopped` in the main thread, as Ctrl-C raises KeyboardInterrupt; inside a training
epoch (:func:`deferred_stop`) only once the current step is finished (:func:`stop_point`), so
that no data loader or optimiser is interrupted half-way. Every ``finally`` block
then runs, so a command stops as it does on Ctrl-C: augmentation workers and child processes
are stopped, locks released, the run's ledger and the logs flushed, and nothing half-written
replaces a finished file (all writes are atomic). A fold loses the epoch in progress: its
``checkpoint_latest.pt`` holds the last finished epoch, and ``--continue`` (or the same
``autounet run`` again) repeats that epoch from the same seeds, so the resumed fold ends as an
uninterrupted one would. The command exits with ``128 + the signal's number`` (143 for SIGTERM),
as a shell reports a process a signal ended.

A signal that is ignored when the command starts (``nohup`` ignores SIGHUP) stays ignored.
Processes forked from the command (augmentation and export workers) do not inherit the
behaviour: there the signal does what it did before. A child ``autounet`` command that must not
outlive its parent (a fold process of a multi-GPU ``autounet run``) is started with
:func:`child_environment` and asks the kernel, at its start, for SIGTERM when the parent dies
(:func:`stop_with_parent`, Linux): a parent killed without warning leaves nothing running.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from contextlib import contextmanager
from typing import Iterator

log = logging.getLogger("autounet")
PARENT_ENV = "AUTOUNET_STOP_WITH_PARENT"  # set to its pid by a parent whose child must not outlive it
PR_SET_PDEATHSIG = 1                      # prctl(2): the signal a process receives when its parent dies
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGUSR2", "SIGHUP")
                     if hasattr(signal, name))


class Stopped(BaseException):
    """A stop signal arrived. A BaseException, as KeyboardInterrupt: ``except Exception`` blocks
    do not swallow it, ``finally`` blocks run."""

    def __init__(self, signum: int):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


class _StopHandler:
    """The installed handler: it raises :class:`Stopped`, or inside :func:`deferred_stop` keeps the
    signal for the next :func:`stop_point`. Its state lives here, in the handler the signal
    module holds, not in a module global."""

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.deferring = 0
        self.pending: int | None = None
        self.raised = False

    def __call__(self, signum: int, frame) -> None:
        if os.getpid() != self.owner:  # a forked worker: the signal's own behaviour
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.raised or self.pending is not None:
            log.warning("%s again: still stopping cleanly", signal.Signals(signum).name)
            return
        if self.deferring:
            self.pending = signum
            log.info("%s: stopping after the current step", signal.Signals(signum).name)
            return
        self.stop(signum)

    def stop(self, signum: int) -> None:
        self.pending, self.raised = None, True
        raise Stopped(signum)


def _installed() -> _StopHandler | None:
    handler = signal.getsignal(STOP_SIGNALS[0]) if STOP_SIGNALS else None
    return handler if isinstance(handler, _StopHandler) else None


@contextmanager
def stop_on_signals(signals: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Turn ``signals`` into :class:`Stopped` while the block runs (main thread only; elsewhere,
    and for signals ignored at the start, nothing changes). A second signal while the first one's
    clean-up runs is logged and does not interrupt it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handler = _StopHandler()
    previous = {s: signal.getsignal(s) for s in signals}
    for s, before in previous.items():
        if before is not signal.SIG_IGN:
            signal.signal(s, handler)
    try:
        yield
    finally:
        for s, before in previous.items():
            signal.signal(s, before if before is not None else signal.SIG_DFL)


@contextmanager
def deferred_stop() -> Iterator[None]:
    """A stop signal arriving while the block runs waits for the next :func:`stop_point` (or the
    block's end): a training epoch is stopped between two steps, never inside a data loader's
    or an optimiser's work."""
    handler = _installed()
    if handler is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    handler.deferring += 1
    try:
        yield
    finally:
        handler.deferring -= 1
    if not handler.deferring and handler.pending is not None:
        handler.stop(handler.pending)


def stop_point() -> None:
    """Raise :class:`Stopped` here if a stop signal arrived during :func:`deferred_stop`."""
    handler = _installed()
    if handler is not None and handler.pending is not None and threading.current_thread() is threading.main_thread():
        handler.stop(handler.pending)


def child_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a child process that must stop when this process dies, however it
    dies (with :func:`stop_with_parent` called at the child's start)."""
    return {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}


def stop_with_parent() -> None:
    """In a process started with :func:`child_environment` (Linux): SIGTERM when the parent dies,
    also by SIGKILL or the out-of-memory killer; at once when it has died already. Elsewhere nothing."""
    parent = os.environ.pop(PARENT_ENV, "")  # not passed on to this process's own children
    if parent.isdigit():
        stop_with(int(parent))


def stop_with(parent: int) -> None:
    """This process (a child of ``parent``: a forked augmentation worker, a fold process) receives
    SIGTERM when ``parent`` dies, however it dies (Linux; elsewhere nothing): a parent killed
    without warning leaves no worker behind."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request was in place
        os.kill(os.getpid(), signal.SIGTERM)
