"""Outputs of case-level networks as files: the predictions CSV (written and read back), and the
labels it holds (torch-free: the ONNX path's postprocessing imports it).

The CSV (``predict -o predictions.csv``) has a header row and one row per case:
- classification: ``case,label,prob_<class>...``: the predicted class value, then the
  probability of each class in value order (so the file is also a valid labels CSV);
- multilabel: ``case,<target>...,prob_<target>...``: 0/1 per target (probability >= 0.5), then
  the probabilities;
- regression: ``case,<target>...``: the predicted values.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.errors import DatasetError
from autounet.io.atomic import write_text

PROBABILITY_PREFIX = "prob_"


def reference_values(targets: np.ndarray, task: str) -> np.ndarray:
    """Targets (N, K) as the metrics take them: class values (N,) for classification."""
    return targets[:, 0].astype(int) if task == "classification" else targets


def predicted_labels(task: str, outputs: np.ndarray, thresholds: Sequence[float] | None = None) -> np.ndarray | None:
    """The predicted classes (N,) or 0/1 targets (N, K) of probabilities (N, K): the argmax (class 1
    where its probability reaches ``thresholds[0]``, for two classes) or each target's probability
    reaching 0.5 (or its own threshold); None for regression."""
    outputs = np.asarray(outputs, dtype=np.float64)
    if task == "classification":
        if thresholds and outputs.shape[1] == 2:
            return (outputs[:, 1] >= thresholds[0]).astype(int)
        return np.argmax(outputs, axis=1)
    if task == "multilabel":
        return (outputs >= np.asarray(thresholds if thresholds else [0.5] * outputs.shape[1])).astype(int)
    return None


def _rows(task: str, names: Sequence[str], outputs: np.ndarray, thresholds: Sequence[float] | None
          ) -> tuple[list[str], list[list[str]]]:
    probs = [f"{PROBABILITY_PREFIX}{n}" for n in names]
    labels = predicted_labels(task, outputs, thresholds)
    if task == "classification":
        return ["label"] + probs, [[str(int(c))] + [f"{p:.6f}" for p in o] for c, o in zip(labels, outputs)]
    if task == "multilabel":
        return list(names) + probs, [[str(int(v)) for v in c] + [f"{p:.6f}" for p in o] for c, o in zip(labels, outputs)]
    return list(names), [[f"{v:.6g}" for v in o] for o in outputs]


def write_predictions(path: Path, task: str, names: Sequence[str], case_ids: Sequence[str],
                      outputs: np.ndarray, thresholds: Sequence[float] | None = None) -> None:
    """Write the predictions CSV (format in the module docstring) atomically, rows by case id;
    ``thresholds``: the operating point chosen on the cross-validation (:func:`predicted_labels`)."""
    header, rows = _rows(task, names, np.asarray(outputs, dtype=np.float64), thresholds)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["case"] + header)
    for case_id, row in sorted(zip(case_ids, rows)):
        writer.writerow([case_id] + row)
    write_text(Path(path), buf.getvalue())


def read_predictions(path: Path) -> tuple[str, list[str], dict[str, np.ndarray]]:
    """A predictions CSV: (task, class or target names, case id -> outputs (K,)): probabilities
    for classification and multilabel, values for regression. DatasetError naming the file."""
    task, names, outputs, _ = read_prediction_table(path)
    return task, names, outputs


def read_prediction_table(path: Path) -> tuple[str, list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """:func:`read_predictions`, and also case id -> the predicted class (1,) or 0/1 targets (K,)
    as written (empty for regression)."""
    path = Path(path)
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot read the predictions ({e})") from e
    rows = [r for r in rows if r]
    if not rows or rows[0][:1] != ["case"]:
        raise DatasetError(f"{path}: not a predictions CSV (the header must start with 'case')")
    header = rows[0]
    probs = [i for i, h in enumerate(header) if h.startswith(PROBABILITY_PREFIX)]
    names = [header[i][len(PROBABILITY_PREFIX):] for i in probs]
    others = [h for i, h in enumerate(header[1:], 1) if i not in probs]
    if probs and others == names:  # a 0/1 column and a probability column per target
        task = "multilabel"
    elif probs and others == ["label"]:
        task = "classification"
    else:  # the values themselves (a target may be named anything, "prob_x" included)
        task, names, probs = "regression", header[1:], list(range(1, len(header)))
    label_columns = [] if task == "regression" else [i for i in range(1, len(header)) if i not in probs]
    out: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for line, r in enumerate(rows[1:], start=2):
        try:
            out[r[0]] = np.array([float(r[i]) for i in probs])
            labels[r[0]] = np.array([int(float(r[i])) for i in label_columns])
        except (ValueError, IndexError) as e:
            raise DatasetError(f"{path}:{line}: {e}") from e
    return task, names, out, labels
