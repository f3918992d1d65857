"""Segmentation metrics per case and class: overlap counts, Dice, IoU, HD95 and surface Dice.

A *class* is a label value (``int``) or a region: a tuple of label values whose union is one
structure (nnU-Net's region-based classes). Arrays are indexed (z, y, x) — or any number of
axes — and ``spacing`` gives the voxel size per array axis, so that distances are physical
(usually mm). Axes of length 1 (the flat axis of a 2D image stored as (1, Y, X)) are left out
of the distance computation; they carry no geometry.

Metrics per class (keys of the per-class dict, in :data:`METRICS` order):

dice, iou : overlap, ``2 TP / (2 TP + FP + FN)`` and ``TP / (TP + FP + FN)``.
tp, fp, fn, n_pred, n_ref : voxel counts (``n_pred = TP + FP``, ``n_ref = TP + FN``).
hd95 : symmetric 95th-percentile Hausdorff distance: the larger of the two directed 95th
    percentiles (prediction surface -> reference surface and back).
nsd : normalized surface Dice at tolerance ``tau``: the fraction of the surface voxels of both
    masks that lie within ``tau`` of the other mask's surface.

A surface is a mask minus its binary erosion (face connectivity, voxels outside the image count
as background), and distances come from ``scipy.ndimage.distance_transform_edt`` with
``sampling=spacing``, so anisotropic voxels are measured correctly. Distance transforms are
computed only inside the bounding box of prediction | reference plus a one-voxel margin: every
surface voxel lies in that box, so the distances are the same as on the whole image.

Voxels whose reference value is the ignore label are removed from both masks before anything is
counted or measured.

NaN rules (means over cases skip NaN, see :func:`summarize`):

- class absent from both prediction and reference: dice, iou, hd95 and nsd are NaN — nothing to
  find, nothing found, so the case says nothing about the class. The counts are 0.
- class present in exactly one of them: dice = iou = nsd = 0 and hd95 = the image diagonal
  (the largest distance between two voxel centres of the image, in physical units). Infinity
  would make every mean infinite and NaN would hide the failure from the means; the diagonal is
  the worst finite value a prediction can reach, so a missed or hallucinated structure is
  penalized as hard as possible while means stay usable.
"""

from __future__ import annotations

import math
from typing import Any, Sequence, Union

import numpy as np
from scipy import ndimage

from autounet.postprocess.lesions import LESION_METRICS, absent_lesion_metrics, lesion_metrics

Class = Union[int, tuple[int, ...]]  # a label value, or the label values forming a region

METRICS = ("dice", "iou", "tp", "fp", "fn", "n_pred", "n_ref", "hd95", "nsd") + LESION_METRICS
DEFAULT_NSD_TOLERANCE_MM = 1.0


def class_mask(seg: np.ndarray, cls: Class) -> np.ndarray:
    """Voxels belonging to a class (label value) or region (any of its label values)."""
    return np.isin(seg, cls) if isinstance(cls, tuple) else seg == cls


def class_name(cls: Class) -> str:
    """The key a class has in metrics and JSON files: "1", or "1,2" for a region."""
    return ",".join(map(str, cls)) if isinstance(cls, (tuple, list)) else str(cls)


def class_names(labels: dict[str, Any]) -> dict[str, str]:
    """Class key -> label name, from dataset.json's ``labels`` (background and ignore left out)."""
    return {class_name(value): name for name, value in labels.items() if name not in ("background", "ignore")}


def class_label(key: str, names: dict[str, str]) -> str:
    """How a class is shown to people: "organ (1)" when it has a name, else "class 1"."""
    return f"{names[key]} ({key})" if key in names else f"class {key}"


# ---------------------------------------------------------------- Dice-only (used by training)

def dice_from_counts(tp: float, fp: float, fn: float) -> float:
    """``2 TP / (2 TP + FP + FN)``; NaN when there is nothing to find and nothing found."""
    return float("nan") if tp + fp + fn == 0 else float(2 * tp / (2 * tp + fp + fn))


def foreground_dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """The Dice of everything non-zero in ``pred`` against everything non-zero in ``ref`` (object
    ids or classes alike); NaN when both are empty."""
    p, r = np.asarray(pred) > 0, np.asarray(ref) > 0
    tp = int(np.count_nonzero(p & r))
    return dice_from_counts(tp, int(np.count_nonzero(p)) - tp, int(np.count_nonzero(r)) - tp)


def dice_per_class(pred: np.ndarray, ref: np.ndarray, classes: Sequence[Class],
                   ignore_label: int | None = None) -> dict[str, dict[str, float]]:
    """Dice and TP/FP/FN per class; voxels whose reference is the ignore label do not count."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} != reference shape {ref.shape}")
    valid = ref != ignore_label if ignore_label is not None else np.ones(ref.shape, bool)
    out = {}
    for cls in classes:
        p = class_mask(pred, cls) & valid
        r = class_mask(ref, cls) & valid
        tp = int(np.count_nonzero(p & r))
        fp = int(np.count_nonzero(p)) - tp
        fn = int(np.count_nonzero(r)) - tp
        out[class_name(cls)] = {"dice": dice_from_counts(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}
    return out


def case_scores(pred: np.ndarray, ref: np.ndarray, classes: Sequence[Class],
                ignore_label: int | None = None) -> dict[str, dict[str, float]]:
    """Dice, TP/FP/FN and the lesion-wise figures per class: what a validation summary and the
    cross-validation record of each case."""
    dice, lesions = dice_per_class(pred, ref, classes, ignore_label), lesions_per_class(pred, ref, classes, ignore_label)
    return {c: {**dice[c], **lesions[c]} for c in dice}


def lesions_per_class(pred: np.ndarray, ref: np.ndarray, classes: Sequence[Class],
                      ignore_label: int | None = None) -> dict[str, dict[str, float]]:
    """The lesion-wise figures per class (:mod:`autounet.postprocess.lesions`, without the
    per-lesion list); voxels whose reference is the ignore label do not count."""
    valid = ref != ignore_label if ignore_label is not None else np.ones(ref.shape, bool)
    return {class_name(cls): lesion_metrics(class_mask(pred, cls) & valid, class_mask(ref, cls) & valid,
                                            per_lesion=False) for cls in classes}


def mean_per_class(per_case: Sequence[dict[str, dict[str, float]]], metric: str = "dice") -> dict[str, float]:
    """Mean of ``metric`` per class over cases (NaN cases, and cases without it, skipped; NaN if
    a class has no value anywhere)."""
    classes = list(per_case[0]) if per_case else []
    out = {}
    for c in classes:
        values = [case[c][metric] for case in per_case if not np.isnan(case[c].get(metric, np.nan))]
        out[c] = float(np.mean(values)) if values else float("nan")
    return out


def foreground_mean(means: dict[str, float]) -> float:
    """Mean over classes of the per-class means (NaN classes skipped)."""
    values = [v for v in means.values() if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")


# ---------------------------------------------------------------- full metrics

def image_diagonal(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """The largest distance between two voxel centres of an image, in physical units."""
    return float(math.sqrt(sum(((n - 1) * s) ** 2 for n, s in zip(shape, spacing))))


def absent_class_metrics() -> dict[str, float]:
    """The metrics of a class absent from both prediction and reference (see the NaN rules)."""
    nan = float("nan")
    return {"dice": nan, "iou": nan, "tp": 0, "fp": 0, "fn": 0, "n_pred": 0, "n_ref": 0,
            "hd95": nan, "nsd": nan, **absent_lesion_metrics()}


def _bounding_box(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    """Slices of the bounding box of a non-empty mask, grown by ``margin`` and clipped to it."""
    box = []
    for axis, n in enumerate(mask.shape):
        others = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=others))
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + 1 + margin, n)))
    return tuple(box)


def _surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it (or outside the image)."""
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure, border_value=0)


def surface_distances(pred: np.ndarray, ref: np.ndarray,
                      spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Distances (physical units) from each surface voxel of ``pred`` to the surface of ``ref``,
    and from each surface voxel of ``ref`` to the surface of ``pred``.

    pred, ref : boolean arrays of the same shape, both non-empty.
    spacing : voxel size per array axis.
    """
    box = _bounding_box(pred | ref, margin=1)  # the margin keeps erosion exact inside the box
    pred, ref = pred[box], ref[box]
    keep = [i for i, n in enumerate(pred.shape) if n > 1]  # drop flat axes (2D images as (1, Y, X))
    shape = tuple(pred.shape[i] for i in keep)
    sampling = [float(spacing[i]) for i in keep]
    if not shape:  # a single-voxel image: both masks are that voxel
        return np.zeros(1), np.zeros(1)
    pred, ref = pred.reshape(shape), ref.reshape(shape)
    pred_surface, ref_surface = _surface(pred), _surface(ref)
    to_ref = ndimage.distance_transform_edt(~ref_surface, sampling=sampling)
    to_pred = ndimage.distance_transform_edt(~pred_surface, sampling=sampling)
    return to_ref[pred_surface], to_pred[ref_surface]


def _class_metrics(pred: np.ndarray, ref: np.ndarray, spacing: Sequence[float],
                   nsd_tolerance: float, diagonal: float) -> dict[str, float]:
    n_pred, n_ref = int(np.count_nonzero(pred)), int(np.count_nonzero(ref))
    if n_pred == 0 and n_ref == 0:
        return absent_class_metrics()
    tp = int(np.count_nonzero(pred & ref))
    if n_pred == 0 or n_ref == 0:
        hd95, nsd = diagonal, 0.0
    else:
        d_pred, d_ref = surface_distances(pred, ref, spacing)
        hd95 = float(max(np.percentile(d_pred, 95), np.percentile(d_ref, 95)))
        within = np.count_nonzero(d_pred <= nsd_tolerance) + np.count_nonzero(d_ref <= nsd_tolerance)
        nsd = float(within / (d_pred.size + d_ref.size))
    return {"dice": 2 * tp / (n_pred + n_ref), "iou": tp / (n_pred + n_ref - tp),
            "tp": tp, "fp": n_pred - tp, "fn": n_ref - tp, "n_pred": n_pred, "n_ref": n_ref,
            "hd95": hd95, "nsd": nsd, **lesion_metrics(pred, ref, math.prod(float(s) for s in spacing))}


def case_metrics(pred: np.ndarray, ref: np.ndarray, classes: Sequence[Class], spacing: Sequence[float],
                 ignore_label: int | None = None,
                 nsd_tolerance: float = DEFAULT_NSD_TOLERANCE_MM) -> dict[str, dict[str, float]]:
    """Every metric of :data:`METRICS` for each class of one case.

    pred, ref : integer label maps of the same shape, e.g. (Z, Y, X).
    classes : label values and/or regions (tuples of label values).
    spacing : voxel size per array axis (same order as the array axes), e.g. in mm.
    ignore_label : reference value whose voxels are excluded from every metric.
    nsd_tolerance : surface Dice tolerance, in the units of ``spacing``.

    Returns ``{class_name(cls): {metric: value}}`` following the NaN rules of the module docstring.
    """
    pred, ref = np.asarray(pred), np.asarray(ref)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} != reference shape {ref.shape}")
    if len(spacing) != ref.ndim:
        raise ValueError(f"spacing {tuple(spacing)} does not have one value per axis of shape {ref.shape}")
    if nsd_tolerance < 0:
        raise ValueError(f"nsd_tolerance must be >= 0, got {nsd_tolerance}")
    valid = ref != ignore_label if ignore_label is not None else None
    diagonal = image_diagonal(ref.shape, spacing)
    out = {}
    for cls in classes:
        p, r = class_mask(pred, cls), class_mask(ref, cls)
        if valid is not None:
            p &= valid
            r &= valid
        out[class_name(cls)] = _class_metrics(p, r, spacing, nsd_tolerance, diagonal)
    return out


def summarize(per_case: Sequence[dict[str, dict[str, float]]]) -> dict[str, dict]:
    """Means over cases per class and metric (NaN skipped), and their mean over classes.

    Returns ``{"mean": {class: {metric: mean}}, "foreground_mean": {metric: mean}}``. A mean is
    NaN where every value it would average is NaN.
    """
    classes: list[str] = []
    for case in per_case:
        classes += [c for c in case if c not in classes]
    mean: dict[str, dict[str, float]] = {}
    for c in classes:
        metrics = [m for m in METRICS if any(m in case.get(c, {}) for case in per_case)]
        mean[c] = {m: nanmean([case[c][m] for case in per_case if m in case.get(c, {})]) for m in metrics}
    metrics = [m for m in METRICS if any(m in values for values in mean.values())]
    fg = {m: nanmean([values[m] for values in mean.values() if m in values]) for m in metrics}
    return {"mean": mean, "foreground_mean": fg}


def nanmean(values: Sequence[float]) -> float:
    """The mean of the values that are not NaN; NaN when every one is."""
    finite = [float(v) for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")
