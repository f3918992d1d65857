"""Patch sampling from the memory-mapped preprocessed cases.

A batch samples cases uniformly; the last third of it (and at least one sample) is centred on
a voxel of a foreground label present in the case, drawn from the locations preprocessing
recorded — without that, small structures would rarely be seen. The other samples are placed
at random, except in sparsely annotated datasets (those with an ``ignore`` label: a few slices or
frames labelled, the rest ignored), where they are centred on an annotated voxel of any class,
background included: a random patch there would often hold no label at all and teach nothing.
Patches that reach beyond the image are padded: image 0, label 0 (``ignore`` when the dataset
has one, so that padding never counts as background).
"""

from __future__ import annotations

from dataclasses import dataclass
import os
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.errors import WorkspaceError
from autounet.stopping import stop_with
from autounet.workspace import PreprocessedCase


@dataclass
class CaseArrays:
    """One preprocessed case, memory-mapped: data (C, Z, Y, X), seg (Z, Y, X), label locations."""

    case_id: str
    data: np.ndarray
    seg: np.ndarray
    locations: dict[int, np.ndarray]
    previous_stage: np.ndarray | None = None


REPREPROCESS = "run autounet plan_and_preprocess again: it redoes damaged cases"


def _opened(path: Path, remedy: str):
    """``np.load`` of a memory-mappable array (or an npz), errors naming the file and the remedy."""
    try:
        return np.load(path, mmap_mode="r") if path.suffix == ".npy" else np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise WorkspaceError(f"{path}: damaged or unreadable ({e}); {remedy}") from e


def open_case(arrays: PreprocessedCase, previous_stage: Path | None = None) -> CaseArrays:
    """Open a preprocessed case (and a cascade's previous-stage labels) without reading it into
    memory; a damaged file raises WorkspaceError naming it and what repairs it."""
    data, seg = _opened(arrays.data, REPREPROCESS), _opened(arrays.seg, REPREPROCESS)
    with _opened(arrays.locations, REPREPROCESS) as z:
        locations = {int(k.split("_")[1]): z[k] for k in z.files}
    prev = _opened(previous_stage, "train the previous stage's folds again") if previous_stage is not None else None
    return CaseArrays(arrays.case_id, data, seg, locations, prev)


def forced_foreground(batch_size: int, fraction: float) -> list[bool]:
    """Which samples of a batch must contain foreground: the last ``fraction``, at least one."""
    n_random = min(int(round(batch_size * (1 - fraction))), batch_size - 1)
    return [i >= n_random for i in range(batch_size)]


def _crop_padded(array: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float) -> np.ndarray:
    """array[..., start:start+size] over the last len(size) axes, padding outside with ``fill``."""
    lead = array.shape[: array.ndim - len(size)]
    out = np.full(lead + tuple(size), fill, dtype=array.dtype)
    src, dst = [], []
    for s, n, dim in zip(start, size, array.shape[len(lead):]):
        lo, hi = max(s, 0), min(s + n, dim)
        src.append(slice(lo, max(lo, hi)))
        dst.append(slice(lo - s, lo - s + max(0, hi - lo)))
    pre = (slice(None),) * len(lead)
    out[pre + tuple(dst)] = array[pre + tuple(src)]
    return out


class PatchSampler:
    """Draw training batches (data (B, C, *patch) float32, seg (B, 1 or 2, *patch) int16).

    patch_size : the sampled size (possibly enlarged so that rotation and scaling in the
        augmentation do not pull in padding); 2 values for 2D configurations, which sample one
        slice of the (C, Z, Y, X) arrays.
    Cascade: a case's previous-stage prediction comes as a second seg channel (the
    augmentation moves it into the data as one-hot channels after the intensity transforms).
    """

    def __init__(self, cases: list[CaseArrays], patch_size: Sequence[int], batch_size: int,
                 oversample_foreground: float, ignore_label: int | None = None):
        if not cases:
            raise ValueError("no cases to sample from")
        self.cases = cases
        self.patch_size = tuple(int(p) for p in patch_size)
        self.batch_size = batch_size
        self.forced = forced_foreground(batch_size, oversample_foreground)
        self.ignore_label = ignore_label

    def _location(self, case: CaseArrays, force: bool, rng: np.random.Generator) -> np.ndarray | None:
        """The voxel a sample is centred on: of a random foreground label present when ``force``;
        else (or when the case has no foreground) of a random annotated class, background
        included, in sparsely annotated data; else None (placed at random)."""
        labels = [k for k in case.locations if k != 0] if force else []
        if not labels and self.ignore_label is not None:
            labels = list(case.locations)
        if not labels:
            return None
        locs = case.locations[labels[int(rng.integers(len(labels)))]]
        return locs[int(rng.integers(len(locs)))]

    def _start(self, shape: Sequence[int], center: Sequence[int] | None, rng: np.random.Generator) -> list[int]:
        starts = []
        for i, (dim, p) in enumerate(zip(shape, self.patch_size)):
            lo, hi = min(0, dim - p), max(0, dim - p)
            if center is None:
                starts.append(int(rng.integers(lo, hi + 1)))
            else:
                starts.append(int(np.clip(center[i] - p // 2, lo, hi)))
        return starts

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One batch."""
        data, segs = [], []
        two_d = len(self.patch_size) == 2
        for force in self.forced:
            case = self.cases[int(rng.integers(len(self.cases)))]
            location = self._location(case, force, rng)
            if two_d:
                z = int(location[0]) if location is not None else int(rng.integers(case.seg.shape[0]))
                center = None if location is None else location[1:]
                start = self._start(case.seg.shape[1:], center, rng)
                image, seg = case.data[:, z], case.seg[z]
                prev = case.previous_stage[z] if case.previous_stage is not None else None
            else:
                start = self._start(case.seg.shape, location, rng)
                image, seg, prev = case.data, case.seg, case.previous_stage
            data.append(_crop_padded(image, start, self.patch_size, 0.0).astype(np.float32, copy=False))
            s = [_crop_padded(seg, start, self.patch_size, 0 if self.ignore_label is None else self.ignore_label)]
            if prev is not None:
                s.append(_crop_padded(prev, start, self.patch_size, 0))
            segs.append(np.stack(s).astype(np.int16))
        return {"data": np.stack(data), "seg": np.stack(segs)}


class BatchStream:
    """An endless iterator of batches for batchgenerators' augmenters, seeded per worker.

    ``set_thread_id`` is called by each background worker; its stream then depends only on
    (seed, epoch, worker), so an epoch's data is the same whether or not training was resumed.
    """

    def __init__(self, sampler: PatchSampler, seed: int, epoch: int):
        self.sampler = sampler
        self.seed, self.epoch = seed, epoch
        self.rng = np.random.default_rng([seed, epoch, 0])
        self.owner = os.getpid()

    def set_thread_id(self, thread_id: int) -> None:
        """Called in each augmentation worker as it starts (batchgenerators forks them)."""
        self.rng = np.random.default_rng([self.seed, self.epoch, thread_id])
        if os.getpid() != self.owner:  # a worker ends with the training process, even one SIGKILLed
            stop_with(self.owner)

    def __iter__(self) -> "BatchStream":
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        return self.sampler.sample(self.rng)
