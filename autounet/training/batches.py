"""Where a fold's batches come from: samplers over the memory-mapped cases, augmentation in
background workers, and the batches moved to the device."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch

from autounet.hardware import data_loading, detect_hardware
from autounet.training.augmentation import (augmentation_params, enlarged_patch_size, training_transforms,
                                            validation_transforms)
from autounet.training.config import TrainingConfig
from autounet.training.data import BatchStream, PatchSampler, open_case
from autounet.training.distributed import DistInfo, split_batch
from autounet.training.setup import FoldSetup

VALIDATION_SEED_OFFSET = 500  # validation batches draw from their own stream, apart from training's


@dataclass
class Inputs:
    """A fold's samplers and transforms, and how many workers augment."""

    train_sampler: PatchSampler
    train_transform: object
    val_sampler: PatchSampler
    val_transform: object
    workers: int
    pin_memory: bool
    batch: int

    def training(self, seed: int, epoch: int) -> tuple[Iterator[dict], Callable[[], None]]:
        """An epoch's augmented training batches, and the function that stops their workers."""
        return epoch_batches(self.train_sampler, self.train_transform, seed, epoch, self.workers, self.pin_memory)

    def validation(self, seed: int, epoch: int) -> Iterator[dict]:
        """An epoch's validation batches (no augmentation, in this process)."""
        return epoch_batches(self.val_sampler, self.val_transform, seed + VALIDATION_SEED_OFFSET, epoch, 0, False)[0]


def make_inputs(setup: FoldSetup, config: TrainingConfig, device: torch.device, dist: DistInfo = DistInfo()) -> Inputs:
    """Samplers (an enlarged patch where spatial augmentation needs room) and transforms of a fold."""
    stage = setup.stage
    batch = split_batch(config.batch_size or stage.batch_size, dist)
    params = augmentation_params(stage.patch_size, stage.mirror_axes)
    n_prev = stage.network.input_channels - len(setup.plans.channel_names)

    def sampler(ids: list[str], patch) -> PatchSampler:
        cases = [open_case(setup.case_arrays(c), setup.previous_labels(c)) for c in ids]
        return PatchSampler(cases, patch, batch, config.oversample_foreground, setup.plans.ignore_label)

    if config.augmentation:
        train_sampler = sampler(setup.train_ids, enlarged_patch_size(stage.patch_size, params))
        train_transform = training_transforms(stage.patch_size, params, n_prev, setup.plans.ignore_label)
    else:
        train_sampler = sampler(setup.train_ids, stage.patch_size)
        train_transform = validation_transforms(n_prev)
    workers, pin = data_loading(detect_hardware(device.type))
    workers = workers if config.num_workers is None else config.num_workers
    return Inputs(train_sampler, train_transform, sampler(setup.val_ids, stage.patch_size),
                  validation_transforms(n_prev), workers, pin, batch)


def epoch_batches(sampler: PatchSampler, transform, seed: int, epoch: int, workers: int, pin: bool
                  ) -> tuple[Iterator[dict], Callable[[], None]]:
    """An epoch's batch iterator and the function that stops its workers. The batches depend
    only on (seed, epoch, worker), so a resumed run sees the same data."""
    from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter
    from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter

    stream = BatchStream(sampler, seed, epoch)
    seeds = [int(s) for s in np.random.SeedSequence([seed, epoch]).generate_state(max(workers, 1))]
    if workers == 0:
        np.random.seed(seeds[0])  # batchgenerators' transforms draw from numpy's global generator
        return SingleThreadedAugmenter(stream, transform), lambda: None
    mta = MultiThreadedAugmenter(stream, transform, workers, num_cached_per_queue=2, seeds=seeds, pin_memory=pin)
    return mta, lambda: mta._finish()


def to_device(batch: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch's data (float32) and labels (long; a case-level batch's targets: float32) on the device."""
    key, dtype = ("target", torch.float32) if "target" in batch else ("seg", torch.long)
    x = batch["data"] if isinstance(batch["data"], torch.Tensor) else torch.from_numpy(batch["data"])
    y = batch[key] if isinstance(batch[key], torch.Tensor) else torch.from_numpy(batch[key])
    non_blocking = device.type == "cuda"
    return x.to(device, torch.float32, non_blocking=non_blocking), y.to(device, dtype, non_blocking=non_blocking)
