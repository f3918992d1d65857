"""An instance map as the classes a network learns to separate touching objects from.

Each object's voxels that touch another object or the background (face connectivity) are its
*boundary*; the rest is its *interior*. Interiors of touching objects never touch, so their
connected components seed one object each, and :mod:`autounet.postprocess.instances` grows the
seeds back over the boundary.
"""

from __future__ import annotations

import numpy as np
from skimage.segmentation import find_boundaries

from autounet.autoplan.plans import INSTANCE_CLASSES
from autounet.io.geometry import without_flat_axes

BACKGROUND, INTERIOR, BOUNDARY = (INSTANCE_CLASSES[k] for k in ("background", "interior", "boundary"))


def instance_classes(ids: np.ndarray) -> np.ndarray:
    """uint8 classes (0 background, 1 interior, 2 boundary) of an instance map (ids > 0 are
    objects, any shape, e.g. (Z, Y, X); a 2D image as (1, Y, X) keeps its flat axis apart)."""
    ids = np.asarray(ids)
    out = (ids > 0).astype(np.uint8)
    edges = find_boundaries(without_flat_axes(ids), connectivity=1, mode="inner", background=0)
    out[np.reshape(edges, ids.shape) & (ids > 0)] = BOUNDARY
    return out
