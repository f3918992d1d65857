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

from autounet.postprocess.labelling import overlap_pairs

INSTANCE_METRICS = ("pq", "sq", "dq", "object_f1", "aji", "instance_dice", "n_ref_objects", "n_pred_objects",
                    "object_tp", "object_fp", "object_fn")


def _relabel(ids: np.ndarray) -> tuple[np.ndarray, int]:
    """Consecutive ids 1..N (0 stays background), and N."""
    values, inverse = np.unique(ids, return_inverse=True)
    if values.size and values[0] == 0:
        return inverse.reshape(ids.shape), values.size - 1
    return (inverse + 1).reshape(ids.shape), values.size


def instance_metrics(pred: np.ndarray, ref: np.ndarray) -> dict[str, Any]:
    """Every metric of :data:`INSTANCE_METRICS` for one image (see the module docstring)."""
    if np.shape(pred) != np.shape(ref):
        raise ValueError(f"prediction shape {np.shape(pred)} != reference shape {np.shape(ref)}")
    r, n_ref = _relabel(np.asarray(ref))
    p, n_pred = _relabel(np.asarray(pred))
    ref_size, pred_size = np.bincount(r.ravel(), minlength=n_ref + 1), np.bincount(p.ravel(), minlength=n_pred + 1)
    ri, pj, inter = overlap_pairs(r, n_ref, p, n_pred)
    iou = inter / (ref_size[ri] + pred_size[pj] - inter)
    matched = iou > 0.5
    tp = int(matched.sum())
    fp, fn = n_pred - tp, n_ref - tp
    counts = {"n_ref_objects": n_ref, "n_pred_objects": n_pred, "object_tp": tp, "object_fp": fp, "object_fn": fn}
    if n_ref == 0 and n_pred == 0:
        return {**{k: math.nan for k in INSTANCE_METRICS[:6]}, **counts}
    dq = tp / (tp + fp / 2 + fn / 2)
    sq = float(iou[matched].mean()) if tp else math.nan
    best = _best_per_reference(ri, pj, iou)  # each reference object's pair of highest IoU
    return {"pq": dq * sq if tp else 0.0, "sq": sq, "dq": dq, "object_f1": 2 * tp / (2 * tp + fp + fn),
            "aji": _aji(ri[best], pj[best], inter[best], ref_size, pred_size),
            "instance_dice": float(np.sum(2 * inter[best] / (ref_size[ri[best]] + pred_size[pj[best]])) / n_ref)
            if n_ref else math.nan, **counts}


def _best_per_reference(ri: np.ndarray, pj: np.ndarray, iou: np.ndarray) -> np.ndarray:
    """Indices of each reference object's overlapping pair of highest IoU (ties: the lower
    prediction id)."""
    order = np.lexsort((-pj, iou, ri))  # by reference, then IoU, then prediction id descending
    last = np.r_[ri[order][1:] != ri[order][:-1], True] if len(order) else np.zeros(0, bool)
    return order[last]


def _aji(ri: np.ndarray, pj: np.ndarray, inter: np.ndarray, ref_size: np.ndarray, pred_size: np.ndarray) -> float:
    """Aggregated Jaccard index from each reference object's best pair (ids ``ri``, ``pj``, shared
    voxels ``inter``) and the objects' sizes (index 0: background): the intersections over the
    unions, references without a pair and predictions paired with none adding their whole area."""
    used = np.zeros(len(pred_size), bool)
    used[pj] = True
    paired = np.zeros(len(ref_size), bool)
    paired[ri] = True
    union = (np.sum(ref_size[ri] + pred_size[pj] - inter) + ref_size[1:][~paired[1:]].sum()
             + pred_size[1:][~used[1:]].sum())
    return float(inter.sum() / union) if union else math.nan
