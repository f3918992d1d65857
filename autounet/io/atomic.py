"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader (or a resumed job) therefore sees either the old complete file or the new complete
file, never a half-written one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np


TEMPORARY = re.compile(r"\.(?P<pid>\d+)@(?P<host>[0-9a-f]{6})-[0-9a-f]{8}\.tmp")  # the writer in a temporary's name
FOREIGN_STALE_S = 24 * 3600  # another host's temporary is left over after this long (no write lasts a day)


def _writer() -> str:
    """This process as temporaries name it: pid and a digest of the host (workspaces may be shared)."""
    return f"{os.getpid()}@{hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]}"


def _new_temporary(path: Path, ending: str = "", folder: bool = False) -> Path:
    """Create an empty, unused temporary file (or folder) beside ``path`` with the permissions a
    plain ``open`` (``mkdir``) would give: 0666 (0777) less the umask. mkstemp's and mkdtemp's
    would be private to the user, unreadable to a lab's shared workspace. Its name holds the
    writer (:func:`remove_stale_temporaries` leaves a live writer's alone)."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{_writer()}-{secrets.token_hex(4)}.tmp{ending}")
        try:
            if folder:
                os.mkdir(tmp, 0o777)
            else:
                os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{path.parent}: could not create a temporary file for {path.name}")


def check_writable(folder: Path) -> Path:
    """Whether files can be written in ``folder`` (or, where it does not exist yet, created by its
    nearest existing parent), asked before long work starts; writes nothing. Raises
    PermissionError or NotADirectoryError naming the path."""
    folder = Path(folder).absolute()
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a folder, so nothing can be written under it", str(existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "cannot write here (read-only or not yours)", str(existing))
    return Path(folder)


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; it replaces ``path`` (an empty folder, or none)
    when the block ends without an error, and is removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(path, folder=True)
    try:
        yield tmp
        if path.is_dir():
            path.rmdir()  # only an empty folder: callers clear what must go first
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def atomic_path(path: Path, ending: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` (``.NAME.XXXX.tmp<ending>``) to write to; renamed onto
    ``path`` when the block ends without an error, removed otherwise. Creates the parent folder.
    ``ending`` is for writers that take the format from the file name (SimpleITK)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_temporary(path, ending)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def fsync_file(path: Path) -> None:
    """Flush a written file to disk, so that a rename after it never exposes an empty file."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str) -> None:
    # text in UTF-8 whatever the process's locale (GDCM's DICOM writer switches it to "C")
    with atomic_path(path) as tmp, open(tmp, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def copy_file(source: Path, target: Path, keep_times: bool = False) -> None:
    """Copy a file atomically (the target is never half-written); ``keep_times``: with the
    source's modification time."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
        if keep_times:
            st = os.stat(source)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))


def write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=False) + "\n"
    _atomic_write(path, lambda f: f.write(text), "w")


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically."""
    _atomic_write(path, lambda f: f.write(text), "w")


def read_json(path: Path) -> Any:
    """Read a JSON file; errors name the file."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:  # JSON is UTF-8 (RFC 8259), whatever the locale
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON ({e})") from e


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write an uncompressed ``.npy`` (memory-mappable) atomically."""
    _atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False), "wb")


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write several arrays to an uncompressed ``.npz`` atomically (loaded without pickle)."""
    _atomic_write(path, lambda f: np.savez(f, **arrays), "wb")


def remove_stale_temporaries(folder: Path, recursive: bool = False) -> int:
    """Delete the temporaries (files or folders) that killed writers left in ``folder`` (and below
    it, ``recursive``); returns how many were removed. A live writer's are kept, so this is safe
    while other processes write there: a temporary is left over when its writer (in its name) is
    a process of this host that no longer runs, when another host's is a day old, or when its
    name is an older autounet's."""
    n = 0
    for p in Path(folder).rglob(".*.tmp*") if recursive else Path(folder).glob(".*.tmp*"):
        if not _left_over(p):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        n += 1
    return n


def _left_over(tmp: Path) -> bool:
    match = TEMPORARY.search(tmp.name)
    if match is None:
        return True
    if match.group("host") != _writer().split("@")[1]:
        try:
            return time.time() - tmp.lstat().st_mtime > FOREIGN_STALE_S
        except OSError:
            return False
    try:
        os.kill(int(match.group("pid")), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # another user's live process
        return False
    return False
