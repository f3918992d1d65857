"""Instance metrics: objects matched one to one, as nuclei, cells or lesions are judged.

pred, ref : integer instance maps of the same shape (0 background, each object one id; the ids
need not be consecutive). A predicted and a reference object *match* when their IoU exceeds 0.5;
such matches are unique, since no object can have IoU > 0.5 with two disjoint others.

pq, sq, dq : panoptic quality ``sq * dq`` (Kirillov et al. 2019): sq is the mean IoU of the
    matches, dq = TP / (TP + FP/2 + FN/2).
object_f1 : F1 of object detection at IoU 0.5: 2 TP / (2 TP + FP + FN) (equal to dq).
aji : aggregated Jaccard index (Kumar et al. 2017): each reference object is paired with the
    prediction of highest IoU with it; the summed intersections over the summed unions, where
    predictions paired with no reference object add their whole area to the unions.
instance_dice : mean over reference objects of the Dice with their highest-IoU prediction (0 for
    an object no prediction touches).
n_ref_objects, n_pred_objects, object_tp, object_fp, object_fn : counts at IoU 0.5.

NaN rules: with no object on either side every score is NaN (nothing to find, nothing found);
with objects on one side only, pq, sq... are 0 except sq (no match: NaN) and instance_dice with
no reference object (NaN).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

INSTANCE_METRICS = ("pq", "sq", "dq", "object_f1", "aji", "instance_dice", "n_ref_objects", "n_pred_objects",
                    "object_tp", "object_fp", "object_fn")


def _relabel(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Consecutive ids 1..N (0 stays background), and N."""
    values, inverse = np.unique(ids, return_inverse=True)
    if values.size and values[0] == 0:
        return inverse.reshape(ids.shape), values.size - 1
    return (inverse + 1).reshape(ids.shape), values.size


def overlaps(pred: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Intersections (n_ref + 1, n_pred + 1) between every reference and predicted object (row and
    column 0: background), and the objects' sizes (n_ref + 1,), (n_pred + 1,)."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} != reference shape {ref.shape}")
    r, n_ref = _relabel(np.asarray(ref))
    p, n_pred = _relabel(np.asarray(pred))
    flat = r.ravel().astype(np.int64) * (n_pred + 1) + p.ravel()
    inter = np.bincount(flat, minlength=(n_ref + 1) * (n_pred + 1)).reshape(n_ref + 1, n_pred + 1)
    return inter, inter.sum(1), inter.sum(0)


def instance_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """Every metric of :data:`INSTANCE_METRICS` for one image (see the module docstring)."""
    inter, ref_size, pred_size = overlaps(pred, ref)
    n_ref, n_pred = len(ref_size) - 1, len(pred_size) - 1
    inter = inter[1:, 1:].astype(np.float64)
    union = ref_size[1:, None] + pred_size[None, 1:] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    matched = iou > 0.5
    tp = int(matched.sum())
    fp, fn = n_pred - tp, n_ref - tp
    counts = {"n_ref_objects": n_ref, "n_pred_objects": n_pred, "object_tp": tp, "object_fp": fp, "object_fn": fn}
    if n_ref == 0 and n_pred == 0:
        return {**{k: math.nan for k in INSTANCE_METRICS[:6]}, **counts}
    dq = tp / (tp + fp / 2 + fn / 2)
    sq = float(iou[matched].mean()) if tp else math.nan
    return {"pq": dq * sq if tp else 0.0, "sq": sq, "dq": dq, "object_f1": 2 * tp / (2 * tp + fp + fn),
            "aji": _aji(inter, iou, ref_size[1:], pred_size[1:]), "instance_dice": _instance_dice(inter, iou, ref_size[1:], pred_size[1:]),
            **counts}


def _aji(inter: np.ndarray, iou: np.ndarray, ref_size: np.ndarray, pred_size: np.ndarray) -> float:
    """Aggregated Jaccard index from the intersections (n_ref, n_pred) and IoUs."""
    intersection = union = 0.0
    used = np.zeros(len(pred_size), bool)
    for i in range(len(ref_size)):
        j = int(np.argmax(iou[i])) if len(pred_size) else -1
        if j >= 0 and inter[i, j] > 0:
            intersection += inter[i, j]
            union += ref_size[i] + pred_size[j] - inter[i, j]
            used[j] = True
        else:
            union += ref_size[i]
    union += pred_size[~used].sum()
    return float(intersection / union) if union else math.nan


def _instance_dice(inter: np.ndarray, iou: np.ndarray, ref_size: np.ndarray, pred_size: np.ndarray) -> float:
    """Mean over reference objects of the Dice with their highest-IoU prediction."""
    if not len(ref_size):
        return math.nan
    if not len(pred_size):
        return 0.0
    best = np.argmax(iou, axis=1)
    hit = inter[np.arange(len(ref_size)), best]
    return float(np.mean(2 * hit / (ref_size + pred_size[best])))
