"""Cropping to the non-zero region, and undoing it."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

Box = tuple[tuple[int, int], ...]


def nonzero_box(image: np.ndarray) -> Box:
    """Bounding box ((z0, z1), (y0, y1), (x0, x1)) of voxels non-zero in any channel.

    image : ndarray of shape (C, Z, Y, X). An all-zero image keeps its full extent.
    """
    mask = np.any(image != 0, axis=0)
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(np.any(mask, axis=other))
        box.append((int(hits[0]), int(hits[-1]) + 1) if hits.size else (0, mask.shape[axis]))
    return tuple(box)


def nonzero_mask(image: np.ndarray) -> np.ndarray:
    """Voxels non-zero in any channel, with enclosed holes filled: the "inside" of the image.

    image : ndarray of shape (C, Z, Y, X); returns a bool array (Z, Y, X).
    """
    return ndimage.binary_fill_holes(np.any(image != 0, axis=0))


def crop(array: np.ndarray, box: Box) -> np.ndarray:
    """Crop the last ``len(box)`` axes of ``array`` to ``box`` (a view)."""
    lead = (slice(None),) * (array.ndim - len(box))
    return array[lead + tuple(slice(a, b) for a, b in box)]


def uncrop(array: np.ndarray, box: Box, full_shape: tuple[int, ...], fill: float = 0) -> np.ndarray:
    """Place a cropped array back into an array of the original spatial shape filled with ``fill``."""
    lead = array.shape[: array.ndim - len(box)]
    out = np.full(lead + tuple(full_shape), fill, dtype=array.dtype)
    out[(slice(None),) * len(lead) + tuple(slice(a, b) for a, b in box)] = array
    return out
