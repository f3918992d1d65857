"""From predictions in preprocessed space back to the original image.

The inverse of preprocessing: resample the class probabilities to the cropped original
resolution, turn them into labels, undo the transpose, and put the crop back into an image of
the original shape. The writer then gives the mask the input's spacing, origin and direction.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from autounet.autoplan.plans import Plans, StagePlan
from autounet.inference.probabilities import average_probabilities, probabilities_to_labels
from autounet.io.geometry import Geometry
from autounet.preprocess.crop import uncrop
from autounet.preprocess.resample import anisotropic_axis, resample_to_shape


def _original_order(geometry: Geometry, transpose: Sequence[int]):
    cropped = geometry.cropped_shape
    spacing = geometry.spacing
    return tuple(cropped[t] for t in transpose), tuple(spacing[t] for t in transpose)


def probabilities_to_original(probs: np.ndarray, geometry: Geometry, plans: Plans, stage: StagePlan
                              ) -> np.ndarray:
    """Resample probabilities (K, z, y, x) from preprocessed space to the cropped original
    resolution (still transposed). Linear interpolation; nearest along an anisotropic axis."""
    shape_t, spacing_t = _original_order(geometry, plans.transpose_forward)
    target = [s if t is None else t for s, t in zip(spacing_t, stage.spacing)]
    separate = anisotropic_axis(target, spacing_t, stage.anisotropy_threshold)
    return resample_to_shape(np.ascontiguousarray(probs, dtype=np.float32), shape_t, separate, "linear")


def to_original_geometry(labels_t: np.ndarray, geometry: Geometry, plans: Plans, fill: int = 0) -> np.ndarray:
    """Undo transpose and crop of an array (..., z, y, x) in cropped original resolution."""
    lead = labels_t.ndim - 3
    back = tuple(range(lead)) + tuple(lead + i for i in plans.transpose_backward)
    arr = labels_t.transpose(back)
    if geometry.crop_box is None:
        return np.ascontiguousarray(arr)
    return uncrop(arr, geometry.crop_box, geometry.shape, fill)


def labels_in_original_space(stages: Sequence[tuple[np.ndarray, Plans, StagePlan]], geometry: Geometry,
                         with_probabilities: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """The label map (Z, Y, X) in the original image's space from one configuration's
    probabilities, or from several (an ensemble), each (K, z, y, x) in its own preprocessed space
    with its plans and stage. Several are averaged at the original resolution, inside the crop.

    with_probabilities : also return the (averaged) probabilities (K, Z, Y, X) float32 in the
    original space; outside the crop they say background (softmax) or nothing (regions).
    """
    plans = stages[0][1]
    if any(p.transpose_forward != plans.transpose_forward for _, p, _ in stages):
        raise ValueError("the configurations to ensemble were planned with different axis orders; "
                         "re-plan and retrain them together")
    probs = average_probabilities(probabilities_to_original(p, geometry, pl, st) for p, pl, st in stages)
    seg = to_original_geometry(probabilities_to_labels(probs, plans.regions_class_order), geometry, plans, 0)
    if not with_probabilities:
        return seg, None
    full_probs = to_original_geometry(probs, geometry, plans, 0)
    if plans.regions_class_order is None and geometry.crop_box is not None:
        inside = np.zeros(geometry.shape, bool)
        inside[tuple(slice(a, b) for a, b in geometry.crop_box)] = True
        full_probs[0][~inside] = 1.0
    return seg, full_probs
