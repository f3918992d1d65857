"""Lesion-wise evaluation: each connected component of a class is a lesion (full connectivity,
as :mod:`autounet.postprocess.labelling`), judged lesion by lesion as well as voxel by voxel.

A reference lesion is *detected* when at least one predicted voxel of the class lies in it; a
predicted lesion is *false* when none of its voxels lies in a reference lesion. Per class and case:

n_ref_lesions, n_pred_lesions : lesions in the reference and in the prediction.
lesion_tp, lesion_fn : reference lesions detected and missed.
lesion_fp : predicted lesions that touch no reference lesion.
lesion_tpr : lesion_tp / n_ref_lesions (the lesion-wise true-positive rate, or sensitivity).
lesion_fpr : lesion_fp / n_pred_lesions (the lesion-wise false-positive rate of the MS-lesion
    literature: the share of predicted lesions that are false).
lesion_f1 : 2 P R / (P + R) with P = 1 - lesion_fpr and R = lesion_tpr; 0 when either side has
    no lesion and the other has some.
lesion_dice : mean over reference lesions of each lesion's Dice with the predicted lesions that
    touch it (0 for a missed lesion).
lesions : per reference lesion, its volume (voxel count x voxel volume, in the units of the
    spacing cubed, or squared for a 2D image), its Dice and whether it was detected.

NaN rules, as for the voxel metrics: a rate whose denominator is 0 is NaN (lesion_tpr and
lesion_dice with no reference lesion, lesion_fpr with no predicted lesion), and lesion_f1 is NaN
when neither side has a lesion; means over cases skip NaN.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from autounet.postprocess.labelling import connected_components, overlap_pairs

LESION_METRICS = ("n_ref_lesions", "n_pred_lesions", "lesion_tp", "lesion_fn", "lesion_fp", "lesion_tpr",
                  "lesion_fpr", "lesion_f1", "lesion_dice")


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def lesion_f1(tpr: float, fpr: float, n_ref: int, n_pred: int) -> float:
    """The lesion-wise F1 from the two rates (see the module docstring for its NaN and 0 cases)."""
    if n_ref == 0 and n_pred == 0:
        return math.nan
    if n_ref == 0 or n_pred == 0:
        return 0.0
    precision = 1.0 - fpr
    return 0.0 if precision + tpr == 0 else 2 * precision * tpr / (precision + tpr)


def lesion_metrics(pred: np.ndarray, ref: np.ndarray, voxel_volume: float = 1.0,
                   per_lesion: bool = True) -> dict[str, Any]:
    """The lesion-wise metrics of one class (boolean masks of the same shape, e.g. (Z, Y, X));
    with ``per_lesion``, also the list of reference lesions under ``"lesions"``."""
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} != reference shape {ref.shape}")
    ref_labels, n_ref = connected_components(np.asarray(ref, bool))
    pred_labels, n_pred = connected_components(np.asarray(pred, bool))
    pair_ref, pair_pred, shared = overlap_pairs(ref_labels, n_ref, pred_labels, n_pred)
    detected = np.zeros(n_ref + 1, bool)
    detected[pair_ref] = True
    tp, fp = int(detected[1:].sum()), n_pred - len(np.unique(pair_pred))
    ref_size = np.bincount(ref_labels.ravel(), minlength=n_ref + 1)
    pred_size = np.bincount(pred_labels.ravel(), minlength=n_pred + 1)
    inside = np.bincount(pair_ref, weights=shared, minlength=n_ref + 1)  # predicted voxels in each lesion
    touching = np.bincount(pair_ref, weights=pred_size[pair_pred], minlength=n_ref + 1)  # voxels predicted for it
    dice = 2 * inside[1:] / np.maximum(ref_size[1:] + touching[1:], 1)
    tpr, fpr = _ratio(tp, n_ref), _ratio(fp, n_pred)
    out: dict[str, Any] = {
        "n_ref_lesions": n_ref, "n_pred_lesions": n_pred, "lesion_tp": tp, "lesion_fn": n_ref - tp, "lesion_fp": fp,
        "lesion_tpr": tpr, "lesion_fpr": fpr, "lesion_f1": lesion_f1(tpr, fpr, n_ref, n_pred),
        "lesion_dice": float(dice.mean()) if n_ref else math.nan}
    if per_lesion:
        out["lesions"] = [{"volume": float(ref_size[i] * voxel_volume), "dice": float(dice[i - 1]),
                           "detected": bool(detected[i])} for i in range(1, n_ref + 1)]
    return out


def absent_lesion_metrics() -> dict[str, Any]:
    """The lesion-wise metrics of a class absent from both prediction and reference."""
    nan = math.nan
    return {"n_ref_lesions": 0, "n_pred_lesions": 0, "lesion_tp": 0, "lesion_fn": 0, "lesion_fp": 0,
            "lesion_tpr": nan, "lesion_fpr": nan, "lesion_f1": nan, "lesion_dice": nan, "lesions": []}
