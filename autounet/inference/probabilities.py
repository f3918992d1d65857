"""Probabilities: from logits, to labels, and averaged over folds, configurations or folders.

:func:`average_probabilities` is the one place where predictions are combined: the folds of a
configuration, the configurations of an ensemble, saved prediction folders (`autounet ensemble`)
and the cross-validation ensembles of `find_best_configuration` all average through it.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def probabilities_from_logits(logits: np.ndarray, regions: bool) -> np.ndarray:
    """Softmax over classes, or independent sigmoids for region-based training, (K, ...) float32
    -> (K, ...) float32, computed in place in ``logits`` (the torch path's
    :func:`~autounet.inference.logits.logits_to_probabilities` for numpy arrays)."""
    if regions:
        np.negative(logits, out=logits)
        np.exp(logits, out=logits)
        logits += 1
        return np.reciprocal(logits, out=logits)
    logits -= logits.max(0, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(0, keepdims=True)
    return logits


def probabilities_to_labels(probs: np.ndarray, regions_class_order: Sequence[int] | None) -> np.ndarray:
    """(K, ...) probabilities -> label map; regions are painted in ``regions_class_order``."""
    if regions_class_order is None:
        return np.argmax(probs, 0).astype(np.uint8 if probs.shape[0] < 256 else np.int16)
    seg = np.zeros(probs.shape[1:], np.int16)
    for channel, label in enumerate(regions_class_order):
        seg[probs[channel] > 0.5] = label
    return seg


def average_probabilities(arrays: Iterable[np.ndarray]) -> np.ndarray:
    """The mean (float32) of probability arrays of one shape, taken one at a time so that only
    the running sum and the newest array are in memory. ValueError on a shape mismatch or none."""
    total, n = None, 0
    for array in arrays:
        array = np.asarray(array, dtype=np.float32)
        if total is not None and array.shape != total.shape:
            raise ValueError(f"probabilities of shape {array.shape} cannot be averaged with shape {total.shape} "
                             "(different label sets or geometry?)")
        if total is None:
            total = array  # not copied: a single array is returned as it is
        elif n == 1:
            total = total + array  # a new array: the caller's first one is never modified
        else:
            total += array
        n += 1
    if total is None:
        raise ValueError("no probabilities to average")
    return total / n if n > 1 else total
