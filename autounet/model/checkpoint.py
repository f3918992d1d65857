"""Checkpoints: written atomically, read without unpickling arbitrary objects.

A checkpoint is a dict of tensors, numbers, strings, lists and dicts only, so that
``torch.load(..., weights_only=True)`` can read it. It holds everything needed to resume
(weights, optimizer and scaler state, epoch, RNG state, logs) and to predict (the plans as JSON
text, with the stage as trained, and the configuration name): inference needs nothing else.
Where checkpoints live is :class:`autounet.workspace.FoldPaths`'s business.
"""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from autounet.autoplan.plans import Plans, StagePlan
from autounet.io.atomic import atomic_path, fsync_file


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write a checkpoint atomically: a kill at any moment leaves the previous one intact. A
    failed write (a full disk: torch says only "PytorchStreamWriter failed writing file") is an
    OSError naming the checkpoint and the free space left."""
    with atomic_path(path) as tmp:
        try:
            torch.save(checkpoint, tmp)
        except RuntimeError as e:
            free = shutil.disk_usage(Path(path).parent).free
            reason = "disk full" if free < 64 * 2**20 else "the write failed"
            raise OSError(errno.ENOSPC if reason == "disk full" else errno.EIO,
                          f"{reason} while writing this checkpoint ({free / 2**20:.0f} MB free there; {e}); the "
                          "previous checkpoint is intact", str(path)) from e
        fsync_file(tmp)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; the error names the file if it is unusable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated file, foreign pickle, ...
        raise ValueError(f"{path}: not a readable autounet checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict) or "network" not in ckpt or "plans" not in ckpt:
        raise ValueError(f"{path}: not an autounet checkpoint (missing weights or plans)")
    return ckpt


def peek_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint's contents memory-mapped (``weights_only=True``): cheap when only its log or
    plans are needed. ValueError naming the file when it cannot be read."""
    try:
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # an old-style (non-zip) file cannot be memory-mapped
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated file, foreign pickle, ...
        raise ValueError(f"{path}: not a readable autounet checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(ckpt, dict):
        raise ValueError(f"{path}: not an autounet checkpoint")
    return ckpt


def plans_of(checkpoint: dict[str, Any]) -> Plans:
    """The plans a checkpoint was trained with (its configuration's stage as trained)."""
    return Plans.from_json(json.loads(checkpoint["plans"]))


def trained_stage(checkpoint: dict[str, Any]) -> StagePlan:
    """The stage (network, patch, batch) a checkpoint was trained with: a time budget's lighter
    variant where one was chosen, else the planned one."""
    return plans_of(checkpoint).configurations[checkpoint["configuration"]]
