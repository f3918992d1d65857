"""From predictions in preprocessed space back to the original image.

The inverse of preprocessing: resample the class probabilities to the cropped original
resolution, turn them into labels, undo the transpose, and put the crop back into an image of
the original shape. The writer then gives the mask the input's spacing, origin and direction.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from autounet.autoplan.plans import Plans, StagePlan
from autounet.io.geometry import Geometry
from autounet.preprocess.crop import uncrop
from autounet.preprocess.resample import anisotropic_axis, resample_to_shape


def logits_to_probabilities(logits: torch.Tensor, regions: bool) -> torch.Tensor:
    """Softmax over classes, or independent sigmoids for region-based training. (K, ...) -> (K, ...)"""
    return torch.sigmoid(logits) if regions else torch.softmax(logits, 0)


def probabilities_to_labels(probs: np.ndarray, regions_class_order: Sequence[int] | None) -> np.ndarray:
    """(K, ...) probabilities -> label map; regions are painted in ``regions_class_order``."""
    if regions_class_order is None:
        return np.argmax(probs, 0).astype(np.uint8 if probs.shape[0] < 256 else np.int16)
    seg = np.zeros(probs.shape[1:], np.int16)
    for channel, label in enumerate(regions_class_order):
        seg[probs[channel] > 0.5] = label
    return seg


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


def export_probabilities(probs: np.ndarray, geometry: Geometry, plans: Plans, stage: StagePlan
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities (K, z, y, x) in preprocessed space -> (label map, probabilities) in the
    original image's space: seg (Z, Y, X) and probabilities (K, Z, Y, X) float32. Outside the
    crop the probabilities say background (softmax) or nothing (regions)."""
    probs = probabilities_to_original(probs, geometry, plans, stage)
    seg = probabilities_to_labels(probs, plans.regions_class_order)
    full_probs = to_original_geometry(probs, geometry, plans, 0)
    if plans.regions_class_order is None and geometry.crop_box is not None:
        inside = np.zeros(geometry.shape, bool)
        inside[tuple(slice(a, b) for a, b in geometry.crop_box)] = True
        full_probs[0][~inside] = 1.0
    return to_original_geometry(seg, geometry, plans, 0), full_probs


def export_prediction(logits: torch.Tensor, geometry: Geometry, plans: Plans, stage: StagePlan
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Logits in preprocessed space -> (label map, probabilities) in the original image's space."""
    probs = logits_to_probabilities(logits.float(), plans.regions_class_order is not None).cpu().numpy()
    return export_probabilities(probs, geometry, plans, stage)


def prediction_meta(case_id: str, geometry: Geometry, ending: str, plans: Plans) -> dict:
    """What a saved prediction needs to be turned into a mask again (no pickle): CASE.json."""
    return {"case_id": case_id, "geometry": geometry.to_json(), "ending": ending, "labels": plans.labels,
            "regions_class_order": plans.regions_class_order}
