"""The non-zero mask of a case, and undoing the crop to its non-zero box.

The box itself (:func:`autounet.io.geometry.nonzero_box`) lives with the geometry, because the
fingerprint measures it before any preprocessing exists.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from autounet.io.geometry import Box


def nonzero_mask(image: np.ndarray) -> np.ndarray:
    """Voxels non-zero in any channel, with enclosed holes filled: the "inside" of the image.

    image : ndarray of shape (C, Z, Y, X); returns a bool array (Z, Y, X).
    """
    return ndimage.binary_fill_holes(np.any(image != 0, axis=0))


def uncrop(array: np.ndarray, box: Box, full_shape: tuple[int, ...], fill: float = 0) -> np.ndarray:
    """Place a cropped array back into an array of the original spatial shape filled with ``fill``."""
    lead = array.shape[: array.ndim - len(box)]
    out = np.full(lead + tuple(full_shape), fill, dtype=array.dtype)
    out[(slice(None),) * len(lead) + tuple(slice(a, b) for a, b in box)] = array
    return out
