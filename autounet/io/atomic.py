"""Atomic file writes: write to a temporary name in the same folder, then rename.

A reader (or a resumed job) therefore sees either the old complete file or the new complete
file, never a half-written one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _atomic_write(path: Path, write: Callable[[Any], None], mode: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


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
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON ({e})") from e


def write_npy(path: Path, array: np.ndarray) -> None:
    """Write an uncompressed ``.npy`` (memory-mappable) atomically."""
    _atomic_write(path, lambda f: np.save(f, np.ascontiguousarray(array), allow_pickle=False), "wb")


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write several arrays to an uncompressed ``.npz`` atomically (loaded without pickle)."""
    _atomic_write(path, lambda f: np.savez(f, **arrays), "wb")


def remove_stale_temporaries(folder: Path) -> int:
    """Delete temporaries left by a killed writer in ``folder``; returns how many were removed."""
    n = 0
    for p in Path(folder).glob(".*.tmp"):
        p.unlink(missing_ok=True)
        n += 1
    return n
