"""Batches of whole cases for case-level tasks (classification, multi-label, regression).

A batch draws cases uniformly, or, where the plan balances classes (``balanced_sampling``),
every class equally often: without that, a 1:9 dataset would show the rare class in one sample
of ten and a network could score 90% by never predicting it. Targets travel as (B, K) float:
the class value in column 0, 0/1 per target, or regression values standardized with the plan's
mean and spread. Validation goes through every validation case once, in order.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from autounet.autoplan.plans import CaseTaskPlan
from autounet.hardware import data_loading, detect_hardware
from autounet.io.atomic import read_json
from autounet.training.augmentation import case_level_transforms
from autounet.training.batches import Inputs
from autounet.training.config import TrainingConfig
from autounet.training.data import REPREPROCESS, _opened
from autounet.training.distributed import DistInfo, split_batch
from autounet.training.setup import FoldSetup

IN_MEMORY_BYTES = 2 * 1024**3  # case inputs up to this size together are held in memory, not mapped


def standardized(targets: np.ndarray, plan: CaseTaskPlan) -> np.ndarray:
    """Targets (N, K) as the network learns them: regression values standardized, others as they are."""
    if plan.task != "regression":
        return targets.astype(np.float32)
    return ((targets - np.array(plan.target_mean)) / np.array(plan.target_std)).astype(np.float32)


def unstandardized(targets: np.ndarray, plan: CaseTaskPlan) -> np.ndarray:
    """The inverse of :func:`standardized`: targets (N, K) back in their own units, float64."""
    targets = np.asarray(targets, dtype=np.float64)
    if plan.task != "regression":
        return targets
    return targets * np.array(plan.target_std) + np.array(plan.target_mean)


def sampling_weights(targets: np.ndarray, plan: CaseTaskPlan) -> np.ndarray | None:
    """Per-case probabilities that give every class the same share of a batch (None: uniform)."""
    if plan.imbalance != "balanced_sampling":
        return None
    classes = targets[:, 0].astype(int)
    counts = np.bincount(classes)
    w = 1.0 / counts[classes]
    return w / w.sum()


class CaseSampler:
    """Draws batches of whole cases: data (B, C, *size) float32 (size 2 axes for a 2D
    configuration), target (B, K) float32."""

    def __init__(self, data: Sequence[np.ndarray], targets: np.ndarray, batch_size: int, dims: int,
                 weights: np.ndarray | None = None):
        if not len(data):
            raise ValueError("no cases to sample from")
        self.data, self.targets, self.batch_size = list(data), targets, batch_size
        self.dims, self.weights = dims, weights

    def _stack(self, index: Sequence[int]) -> dict[str, np.ndarray]:
        x = np.stack([np.asarray(self.data[i], dtype=np.float32) for i in index])
        if self.dims == 2:
            x = x[:, :, 0]  # (B, C, 1, Y, X) -> (B, C, Y, X)
        return {"data": np.ascontiguousarray(x), "target": self.targets[list(index)]}

    def sample(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One batch, drawn with replacement (class-balanced where the plan says so)."""
        return self._stack(rng.choice(len(self.data), self.batch_size, replace=True, p=self.weights))

    def in_order(self, batch_size: int | None = None) -> Iterator[dict[str, np.ndarray]]:
        """Every case once, in order, in batches."""
        b = batch_size or self.batch_size
        for start in range(0, len(self.data), b):
            yield self._stack(range(start, min(start + b, len(self.data))))

    def __len__(self) -> int:
        return len(self.data)


def open_cases(setup: FoldSetup, ids: Sequence[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """The preprocessed inputs and targets (N, K) of cases. The inputs are read into memory when
    they hold at most ``IN_MEMORY_BYTES`` together, else memory-mapped: a memory map keeps its file
    open, and MedMNIST-sized datasets (tens of thousands of small cases) would exceed the limit on
    open files (measured here: the 19,993rd map failed with "Too many open files")."""
    files = [setup.case_arrays(c) for c in ids]
    in_memory = sum(f.data.stat().st_size for f in files if f.data.is_file()) <= IN_MEMORY_BYTES
    data, targets = [], []
    for arrays in files:
        x = _opened(arrays.data, REPREPROCESS)
        data.append(np.array(x) if in_memory else x)
        del x  # an in-memory copy lets its map (and file) go
        targets.append(read_json(arrays.meta)["target"])
    return data, np.array(targets, dtype=np.float64).reshape(len(ids), -1)


class CaseInputs(Inputs):
    """A case-level fold's samplers: validation runs over every validation case once."""

    def validation(self, seed: int, epoch: int) -> Iterator[dict]:
        return self.val_sampler.in_order()  # type: ignore[attr-defined]


def make_case_inputs(setup: FoldSetup, config: TrainingConfig, device: torch.device,
                     dist: DistInfo = DistInfo()) -> CaseInputs:
    """Samplers and transforms of a case-level fold."""
    plan, stage = setup.plans.case_task, setup.stage
    assert plan is not None
    batch = split_batch(min(config.batch_size or stage.batch_size, max(1, len(setup.train_ids))), dist)
    dims = len(stage.patch_size)

    def sampler(ids: list[str], balanced: bool) -> CaseSampler:
        data, targets = open_cases(setup, ids)
        weights = sampling_weights(targets, plan) if balanced else None
        return CaseSampler(data, standardized(targets, plan), batch, dims, weights)

    transform = case_level_transforms(stage.patch_size, stage.mirror_axes if config.augmentation else (),
                                      config.augmentation)
    workers, pin = data_loading(detect_hardware(device.type))
    workers = workers if config.num_workers is None else config.num_workers
    return CaseInputs(sampler(setup.train_ids, True), transform, sampler(setup.val_ids, False),
                      case_level_transforms(stage.patch_size, (), False), workers, pin, batch)

