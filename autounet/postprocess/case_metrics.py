"""Metrics for case-level tasks: one label, one set of labels, or one set of numbers per case.

Three tasks (the ``task`` argument of :func:`case_metrics` and :func:`validation_score`):

classification : ``y_true`` of shape (N,), integer classes ``0..K-1``; ``outputs`` of shape
    (N, K), class probabilities (or any scores whose argmax is the predicted class).
multilabel : ``y_true`` of shape (N, K), 0/1 per target; ``outputs`` of shape (N, K),
    probabilities of the positive outcome per target, thresholded at 0.5 (``p >= 0.5`` is positive).
regression : ``y_true`` and ``outputs`` of shape (N, K) (or (N,) for one target), real numbers.

Everything returned is JSON-ready: plain ``float``/``int``/``list``/``dict``, with NaN (as
``float("nan")``) where a number is undefined:

- a ratio whose denominator is 0 (sensitivity of a class absent from ``y_true``, precision of a
  class never predicted) is NaN; F1 is ``2 TP / (2 TP + FP + FN)``, so it is 0 when precision
  and recall are both 0 and NaN only when the class is neither present nor predicted;
- AUC is NaN when only one class is present (there are no positive/negative pairs to rank);
- R² is NaN when the true values of a target are all equal (``SS_tot = 0``).

Means over classes or targets skip NaN (a class the data say nothing about does not count), and
are NaN only when every value is NaN.

AUC comes from ranks (the Mann–Whitney U statistic): the fraction of (positive, negative) pairs
in which the positive case has the higher score, a tie counting 1/2. It equals the trapezoid area
under :func:`roc_curve`. Pure numpy; scikit-learn is not a dependency.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

TASKS = ("classification", "multilabel", "regression")
MULTILABEL_THRESHOLD = 0.5


# ---------------------------------------------------------------- input checks

def _array(name: str, values: Any, ndim: tuple[int, ...]) -> np.ndarray:
    """``values`` as a non-empty, finite numeric array with one of the allowed numbers of axes."""
    a = np.asarray(values)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
    if a.ndim not in ndim:
        axes = " or ".join(f"{n}D" for n in ndim)
        raise ValueError(f"{name} must be {axes}, got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty: need at least one case")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values (NaN or infinity)")
    return a


def _labels(name: str, values: Any, num_classes: int, ndim: tuple[int, ...] = (1,)) -> np.ndarray:
    """Integer labels in ``0..num_classes-1`` as int64."""
    a = _array(name, values, ndim)
    if not np.array_equal(a, np.round(a)):
        raise ValueError(f"{name} must hold whole numbers (class indices), got e.g. {a[a != np.round(a)].flat[0]}")
    a = a.astype(np.int64)
    bad = a[(a < 0) | (a >= num_classes)]
    if bad.size:
        raise ValueError(f"{name} has labels out of range 0..{num_classes - 1}: {sorted(set(bad.tolist()))[:5]}")
    return a


def _same_shape(a_name: str, a: np.ndarray, b_name: str, b: np.ndarray) -> None:
    if a.shape != b.shape:
        raise ValueError(f"shape mismatch: {a_name} has shape {a.shape}, {b_name} has shape {b.shape}")


def _names(names: Sequence[str], count: int, what: str) -> list[str]:
    names = [str(n) for n in names]
    if len(names) != count:
        raise ValueError(f"got {len(names)} {what} names for {count} {what} columns")
    if len(set(names)) != len(names):
        raise ValueError(f"{what} names must be unique, got {names}")
    return names


def _binary(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    """(N,) bool labels and (N,) float scores, checked."""
    y = _labels("y_true", y_true, 2).astype(bool)
    s = _array("scores", scores, (1,)).astype(np.float64)
    _same_shape("y_true", y, "scores", s)
    return y, s


# ---------------------------------------------------------------- small helpers

def _ratio(num: float, den: float) -> float:
    """``num / den`` as a float; NaN when ``den`` is 0."""
    return float(num / den) if den else float("nan")


def _nanmean(values: Sequence[float]) -> float:
    """Mean skipping NaN; NaN (without a warning) when nothing is left."""
    kept = [v for v in values if not math.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of (N,) ``x``; tied values share the mean of the ranks they span."""
    order = np.argsort(x, kind="mergesort")
    ordered = x[order]
    starts_group = np.r_[True, ordered[1:] != ordered[:-1]]
    starts = np.flatnonzero(starts_group)
    ends = np.r_[starts[1:], x.size]  # exclusive; the group holds ranks starts+1 .. ends
    ranks = np.empty(x.size, np.float64)
    ranks[order] = ((starts + 1 + ends) / 2)[np.cumsum(starts_group) - 1]
    return ranks


def _binary_counts(y: np.ndarray, pred: np.ndarray) -> tuple[int, int, int, int]:
    """(TP, FP, FN, TN) of (N,) bool predictions against (N,) bool truth."""
    tp, fp = int(np.sum(y & pred)), int(np.sum(~y & pred))
    fn, tn = int(np.sum(y & ~pred)), int(np.sum(~y & ~pred))
    return tp, fp, fn, tn


def _rates(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Sensitivity, specificity, precision and F1 from one-vs-rest counts (NaN for 0/0)."""
    return {"sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
            "precision": _ratio(tp, tp + fp), "f1": _ratio(2 * tp, 2 * tp + fp + fn)}


# ---------------------------------------------------------------- ranking metrics

def auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of (N,) 0/1 labels ranked by (N,) scores (higher = more positive).

    The Mann–Whitney U statistic over ``n_pos * n_neg``: the fraction of (positive, negative)
    pairs where the positive scores higher, ties counting 1/2. NaN when only one class is present.
    """
    y, s = _binary(y_true, scores)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    u = _average_ranks(s)[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def roc_curve(y_true: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates, each of shape (T + 1,) for T distinct scores.

    Point 0 is (0, 0) (nothing called positive); point i is "score >= i-th highest distinct score",
    so the last point is (1, 1). Cases with tied scores enter together (a diagonal step). A rate
    whose class is absent (no negatives, or no positives) is NaN throughout.
    """
    y, s = _binary(y_true, scores)
    order = np.argsort(-s, kind="mergesort")
    ordered, hits = s[order], y[order]
    last_of_group = np.r_[np.flatnonzero(ordered[1:] != ordered[:-1]), s.size - 1]
    tps = np.cumsum(hits)[last_of_group]
    fps = last_of_group + 1 - tps
    n_pos, n_neg = tps[-1], fps[-1]
    fpr = np.r_[0, fps] / n_neg if n_neg else np.full(tps.size + 1, np.nan)
    tpr = np.r_[0, tps] / n_pos if n_pos else np.full(tps.size + 1, np.nan)
    return fpr.astype(np.float64), tpr.astype(np.float64)


# ---------------------------------------------------------------- classification

def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts for (N,) true and (N,) predicted classes: row = true, column = predicted."""
    if num_classes < 1:
        raise ValueError(f"num_classes must be at least 1, got {num_classes}")
    t = _labels("y_true", y_true, num_classes)
    p = _labels("y_pred", y_pred, num_classes)
    _same_shape("y_true", t, "y_pred", p)
    return np.bincount(t * num_classes + p, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def classification_metrics(y_true: np.ndarray, probabilities: np.ndarray,
                           class_names: Sequence[str], predicted: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of single-label classification with K >= 2 classes.

    ``y_true`` is (N,) int in ``0..K-1``, ``probabilities`` is (N, K); the prediction is
    ``predicted`` (N,) where given (e.g. at a chosen operating point), else the argmax.
    Returns ``accuracy``, ``balanced_accuracy`` (mean sensitivity over classes present in
    ``y_true``), ``auc`` (K == 2: class 1's probability; K > 2: NaN-skipping mean of one-vs-rest
    AUCs), ``f1_macro`` (NaN-skipping mean of per-class F1), ``confusion_matrix`` (K lists of K),
    ``num_cases`` and ``per_class`` = {name: sensitivity, specificity, precision, f1, auc, support}.
    """
    probs = _array("probabilities", probabilities, (2,)).astype(np.float64)
    k = probs.shape[1]
    if k < 2:
        raise ValueError(f"probabilities must have at least 2 columns (classes), got shape {probs.shape}")
    names = _names(class_names, k, "class")
    y = _labels("y_true", y_true, k)
    if y.shape[0] != probs.shape[0]:
        raise ValueError(f"shape mismatch: y_true has {y.shape[0]} cases, probabilities has {probs.shape[0]}")
    pred = np.argmax(probs, axis=1) if predicted is None else _labels("predicted", predicted, k)
    cm = confusion_matrix(y, pred, k)
    per_class = {}
    for c, name in enumerate(names):
        tp = int(cm[c, c])
        fn, fp = int(cm[c].sum()) - tp, int(cm[:, c].sum()) - tp
        per_class[name] = {**_rates(tp, fp, fn, y.size - tp - fn - fp),
                           "auc": auc(y == c, probs[:, c]), "support": int(cm[c].sum())}
    present = [m for m in per_class.values() if m["support"] > 0]
    return {
        "accuracy": float(np.mean(pred == y)),
        "balanced_accuracy": float(np.mean([m["sensitivity"] for m in present])),
        "auc": per_class[names[1]]["auc"] if k == 2 else _nanmean([m["auc"] for m in per_class.values()]),
        "f1_macro": _nanmean([m["f1"] for m in per_class.values()]),
        "confusion_matrix": cm.tolist(),
        "num_cases": int(y.size),
        "per_class": per_class,
    }


# ---------------------------------------------------------------- multi-label

def multilabel_metrics(y_true: np.ndarray, probabilities: np.ndarray, names: Sequence[str],
                       predicted: np.ndarray | None = None) -> dict[str, Any]:
    """Metrics of K independent binary targets: ``y_true`` (N, K) 0/1, ``probabilities`` (N, K).

    A target is predicted positive as ``predicted`` (N, K) 0/1 says where given, else where its
    probability is >= 0.5. ``per_target`` = {name: auc,
    accuracy, sensitivity, specificity, f1, support (number of positives)}; the summary has
    ``auc`` and ``f1_macro`` (NaN-skipping means over targets), ``accuracy`` (mean over targets)
    and ``num_cases``. (N,) inputs are read as one target.
    """
    probs = _array("probabilities", probabilities, (1, 2)).astype(np.float64)
    y = _labels("y_true", y_true, 2, ndim=(1, 2)).astype(bool)
    _same_shape("y_true", y, "probabilities", probs)
    if y.ndim == 1:
        y, probs = y[:, None], probs[:, None]
    positive = probs >= MULTILABEL_THRESHOLD if predicted is None else np.asarray(predicted).reshape(y.shape) > 0
    target_names = _names(names, y.shape[1], "target")
    per_target = {}
    for j, name in enumerate(target_names):
        tp, fp, fn, tn = _binary_counts(y[:, j], positive[:, j])
        rates = _rates(tp, fp, fn, tn)
        per_target[name] = {"auc": auc(y[:, j], probs[:, j]), "accuracy": (tp + tn) / y.shape[0],
                            "sensitivity": rates["sensitivity"], "specificity": rates["specificity"],
                            "f1": rates["f1"], "support": tp + fn}
    values = per_target.values()
    return {
        "auc": _nanmean([m["auc"] for m in values]),
        "accuracy": float(np.mean([m["accuracy"] for m in values])),
        "f1_macro": _nanmean([m["f1"] for m in values]),
        "num_cases": int(y.shape[0]),
        "per_target": per_target,
    }


# ---------------------------------------------------------------- regression

def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray, names: Sequence[str]) -> dict[str, Any]:
    """Errors of K real-valued targets: ``y_true`` and ``y_pred`` (N, K), or (N,) for one target.

    ``per_target`` = {name: mae, rmse, r2} with R² = 1 - SS_res / SS_tot (NaN when the true values
    of the target are all equal); the summary has the means over targets of ``mae``, ``rmse`` and
    ``r2`` (NaN-skipping), and ``num_cases``.
    """
    t = _array("y_true", y_true, (1, 2)).astype(np.float64)
    p = _array("y_pred", y_pred, (1, 2)).astype(np.float64)
    _same_shape("y_true", t, "y_pred", p)
    if t.ndim == 1:
        t, p = t[:, None], p[:, None]
    target_names = _names(names, t.shape[1], "target")
    per_target = {}
    for j, name in enumerate(target_names):
        err = p[:, j] - t[:, j]
        constant = np.ptp(t[:, j]) == 0  # SS_tot is 0 exactly, not just up to rounding
        ss_tot = float(np.sum((t[:, j] - t[:, j].mean()) ** 2))
        per_target[name] = {"mae": float(np.mean(np.abs(err))), "rmse": float(np.sqrt(np.mean(err ** 2))),
                            "r2": float("nan") if constant else 1.0 - float(np.sum(err ** 2)) / ss_tot}
    values = per_target.values()
    return {
        "mae": float(np.mean([m["mae"] for m in values])),
        "rmse": float(np.mean([m["rmse"] for m in values])),
        "r2": _nanmean([m["r2"] for m in values]),
        "num_cases": int(t.shape[0]),
        "per_target": per_target,
    }


# ---------------------------------------------------------------- task dispatch

def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown case-level task {task!r}; expected one of {', '.join(TASKS)}")


def case_metrics(task: str, y_true: np.ndarray, outputs: np.ndarray, names: Sequence[str],
                 predicted: np.ndarray | None = None) -> dict[str, Any]:
    """The metrics of one task ("classification", "multilabel" or "regression") on N cases.

    ``outputs`` are class probabilities (N, K), target probabilities (N, K) or predicted values
    (N, K) respectively; ``names`` name the K classes or targets; ``predicted``: the predicted
    classes (N,) or 0/1 targets (N, K) where they are not the argmax / the probability >= 0.5.
    """
    _check_task(task)
    if task == "classification":
        return classification_metrics(y_true, outputs, names, predicted)
    if task == "multilabel":
        return multilabel_metrics(y_true, outputs, names, predicted)
    return regression_metrics(y_true, outputs, names)


def validation_score(task: str, metrics: dict[str, Any]) -> float:
    """One number, higher is better, to pick checkpoints and configurations by.

    Classification: ``auc``, or ``balanced_accuracy`` where the AUC is NaN; multi-label: ``auc``,
    or ``accuracy`` where it is NaN; regression: ``-mae``.
    """
    _check_task(task)
    if task == "regression":
        return -float(metrics["mae"])
    score = float(metrics["auc"])
    if math.isnan(score):
        score = float(metrics["balanced_accuracy" if task == "classification" else "accuracy"])
    return score


def operating_point(y_true: np.ndarray, scores: np.ndarray) -> float:
    """The threshold on ``scores`` (N,) that maximizes balanced accuracy for binary ``y_true`` (N,),
    from the grid 0.01..0.99 (ties: the one nearest 0.5; 0.5 when one class is absent)."""
    y = np.asarray(y_true).astype(bool)
    if y.all() or not y.any():
        return 0.5
    grid = np.round(np.arange(1, 100) / 100, 2)
    pos = np.asarray(scores)[:, None] >= grid[None, :]
    balanced = (pos[y].mean(0) + (~pos[~y]).mean(0)) / 2
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    return float(grid[best[np.argmin(np.abs(grid[best] - 0.5))]])
