"""One writer at a time: OS file locks on a dataset's preprocessing, its run and each fold.

A lock is ``fcntl.flock`` on a small file: the kernel releases it when the process ends, however
it ends (SIGKILL and a power cut included), so nothing a crash leaves behind can block the next
process. The file holds who took the lock (pid, host, command, since when), so that a second
process can say who holds it. Parallel folds on several GPUs lock different folds and run side
by side. The lock files are part of the workspace's layout (:mod:`autounet.workspace`).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

from autounet.errors import AutounetError

try:
    import fcntl
except ImportError:  # Windows: no flock; the work runs unlocked, as before
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("autounet")
LOCKED_EXIT_CODE = 75  # sysexits' EX_TEMPFAIL: another process holds the work; try again later (or --wait)


@dataclass(frozen=True)
class Holder:
    """Who holds a lock, as written in its file."""

    pid: int
    host: str
    command: str
    since: str

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.since}: {self.command}"


class LockedError(AutounetError):
    """Another process holds the lock on work this one would do."""

    exit_code = LOCKED_EXIT_CODE

    def __init__(self, what: str, path: Path, holder: Holder | None):
        who = holder.describe() if holder else "a process that has not said who it is yet"
        super().__init__(f"{what} is locked by another autounet process ({who}); its lock file is {path}. "
                         "Let it finish or stop it, or pass --wait to start when it ends. The lock is released "
                         "when that process ends, however it ends: nothing needs deleting.")
        self.what, self.path, self.holder = what, path, holder


def this_process() -> Holder:
    """The holder this process writes into the locks it takes."""
    command = " ".join([Path(sys.argv[0]).name or "python", *sys.argv[1:]])[:500]
    return Holder(os.getpid(), socket.gethostname(), command, time.strftime("%Y-%m-%d %H:%M:%S"))


def read_holder(path: Path) -> Holder | None:
    """Who holds the lock at ``path``, as its file says (None: unreadable or not yet written)."""
    try:
        data = json.loads(Path(path).read_text())
        return Holder(int(data["pid"]), str(data["host"]), str(data["command"]), str(data["since"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextmanager
def locked(path: Path, what: str, wait: bool = False) -> Iterator[None]:
    """Hold the lock at ``path`` for the block (``what`` names the work in messages, e.g. "fold 0
    of 2d of Dataset900_Example"). Held by another process: raise :class:`LockedError`, or with
    ``wait`` say who holds it and block until it is released. The lock file (and any folder made
    for it that stays empty) is removed when the block ends, so that a command leaves nothing
    behind but its work; a process that finds its file removed meanwhile takes the new one."""
    if fcntl is None:
        yield
        return
    path = Path(path)
    fd, made = _acquire(path, what, wait)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(this_process())).encode(), 0)
        yield
    finally:
        try:
            path.unlink(missing_ok=True)  # still held: a process waiting on this file finds it gone and retries
        finally:
            os.close(fd)  # closing the only descriptor releases the lock
            for folder in made:
                try:
                    folder.rmdir()  # only while empty: made for the lock, and nothing else was written
                except OSError:
                    break


def _acquire(path: Path, what: str, wait: bool) -> tuple[int, list[Path]]:
    """An open descriptor of ``path`` holding its lock (the file the path names now, not one a
    releasing process removed meanwhile), and the folders created for it."""
    warned, made = False, []
    while True:
        try:
            made += _make_parents(path.parent)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except FileNotFoundError:  # a releasing process removed the empty folder meanwhile: make it again
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(path)
            if not wait:
                os.close(fd)
                raise LockedError(what, path, holder) from None
            if not warned:
                log.warning("%s is locked by another autounet process (%s); waiting for it to end (--wait)", what,
                            holder.describe() if holder else "unknown")
                warned = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            if warned:
                log.info("%s: the lock was released; going on", what)
            return fd, made
        os.close(fd)  # the holder removed this file when it ended: lock the path's new file


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; the ones created, deepest first."""
    missing = [f for f in (folder, *folder.parents) if not f.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    return missing
