"""Connected components with full connectivity (26 in 3D; a 2D image stored as (1, Y, X) gets
8): what postprocessing keeps or removes and what lesion-wise evaluation counts as a lesion.
connected-components-3d (installed with acvl-utils) is used where present: much faster than
scipy on large volumes."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

try:
    import cc3d
except ImportError:  # pragma: no cover - acvl-utils installs it
    cc3d = None


def connected_components(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels (0 background, 1..N, one per component) of a boolean mask, and N."""
    if cc3d is not None and mask.ndim in (2, 3):
        return cc3d.connected_components(mask, connectivity=26 if mask.ndim == 3 else 8, binary_image=True,
                                         return_N=True)
    return ndimage.label(mask, structure=ndimage.generate_binary_structure(mask.ndim, mask.ndim))


def overlap_pairs(a: np.ndarray, n_a: int, b: np.ndarray, n_b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of objects of two label maps of the same shape (ids 1..n_a and 1..n_b, 0
    background) that share voxels: their ids and the voxels they share, one entry per pair. Sparse,
    so that thousands of objects cost no more than their overlapping voxels."""
    both = (a > 0) & (b > 0)
    pairs, counts = np.unique(a[both].astype(np.int64) * (n_b + 1) + b[both], return_counts=True)
    return pairs // (n_b + 1), pairs % (n_b + 1), counts
