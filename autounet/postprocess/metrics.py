"""Segmentation metrics per case and class.

NaN rules: Dice is NaN when a class is absent from both the prediction and the reference
(nothing to find, nothing found); means over cases skip NaN.
"""

from __future__ import annotations

from typing import Sequence, Union

import numpy as np

Class = Union[int, tuple[int, ...]]  # a label value, or the label values forming a region


def class_mask(seg: np.ndarray, cls: Class) -> np.ndarray:
    """Voxels belonging to a class (label value) or region (any of its label values)."""
    return np.isin(seg, cls) if isinstance(cls, tuple) else seg == cls


def class_name(cls: Class) -> str:
    return ",".join(map(str, cls)) if isinstance(cls, tuple) else str(cls)


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
        dice = float("nan") if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)
        out[class_name(cls)] = {"dice": dice, "tp": tp, "fp": fp, "fn": fn}
    return out


def mean_per_class(per_case: Sequence[dict[str, dict[str, float]]]) -> dict[str, float]:
    """Mean Dice per class over cases (NaN cases skipped; NaN if a class is NaN everywhere)."""
    classes = list(per_case[0]) if per_case else []
    out = {}
    for c in classes:
        values = [case[c]["dice"] for case in per_case if not np.isnan(case[c]["dice"])]
        out[c] = float(np.mean(values)) if values else float("nan")
    return out


def foreground_mean(means: dict[str, float]) -> float:
    """Mean over classes of the per-class means (NaN classes skipped)."""
    values = [v for v in means.values() if not np.isnan(v)]
    return float(np.mean(values)) if values else float("nan")
