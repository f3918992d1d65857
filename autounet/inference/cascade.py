"""The cascade's two ends: a stage's labels handed to the next stage, and taken in as one-hot channels.

A ``3d_cascade_fullres`` network sees its image channels plus one channel per foreground class of
its previous stage (``3d_lowres``), whose prediction is resampled to the full-resolution grid.
Training reads those labels from the previous stage's cross-validation; prediction computes them.
"""

from __future__ import annotations

import numpy as np

from autounet.autoplan.plans import Plans
from autounet.inference.probabilities import probabilities_to_labels
from autounet.preprocess.resample import resample_to_shape


def one_hot(labels: np.ndarray, num_classes: int, axis: int = 0) -> np.ndarray:
    """float32 indicator channels of the labels 1..num_classes, stacked along ``axis``."""
    return np.stack([labels == c for c in range(1, num_classes + 1)], axis).astype(np.float32)


def with_previous_stage(data: np.ndarray, previous: np.ndarray | None, num_classes: int) -> np.ndarray:
    """Cascade input: image channels (C, ...) plus the one-hot previous-stage labels 1..num_classes."""
    if previous is None:
        return data
    return np.concatenate([np.asarray(data, np.float32), one_hot(previous, num_classes)])


def labels_at(probs: np.ndarray, shape: tuple[int, ...], plans: Plans) -> np.ndarray:
    """A stage's probabilities (K, z, y, x) resampled (linearly) to another stage's preprocessed
    shape and turned into labels (int16): what the next stage takes as input."""
    resampled = resample_to_shape(np.ascontiguousarray(probs, dtype=np.float32), shape, None, "linear")
    return probabilities_to_labels(resampled, plans.regions_class_order).astype(np.int16)
