"""Outputs of case-level networks: from logits to probabilities or values, and the predictions CSV.

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
import torch

from autounet.autoplan.plans import CaseTaskPlan
from autounet.errors import DatasetError
from autounet.io.atomic import write_text

PROBABILITY_PREFIX = "prob_"


def to_outputs(logits: torch.Tensor, plan: CaseTaskPlan) -> torch.Tensor:
    """Logits (B, K) -> class probabilities (softmax), target probabilities (sigmoid) or values
    in the targets' units (regression: the standardization undone)."""
    logits = logits.float()
    if plan.task == "classification":
        return torch.softmax(logits, 1)
    if plan.task == "multilabel":
        return torch.sigmoid(logits)
    mean = torch.tensor(plan.target_mean, dtype=torch.float32, device=logits.device)
    std = torch.tensor(plan.target_std, dtype=torch.float32, device=logits.device)
    return logits * std + mean


def reference_values(targets: np.ndarray, task: str) -> np.ndarray:
    """Targets (N, K) as the metrics take them: class values (N,) for classification."""
    return targets[:, 0].astype(int) if task == "classification" else targets


def _rows(task: str, names: Sequence[str], outputs: np.ndarray) -> tuple[list[str], list[list[str]]]:
    probs = [f"{PROBABILITY_PREFIX}{n}" for n in names]
    if task == "classification":
        return ["label"] + probs, [[str(int(np.argmax(o)))] + [f"{p:.6f}" for p in o] for o in outputs]
    if task == "multilabel":
        return list(names) + probs, [[str(int(p >= 0.5)) for p in o] + [f"{p:.6f}" for p in o] for o in outputs]
    return list(names), [[f"{v:.6g}" for v in o] for o in outputs]


def write_predictions(path: Path, task: str, names: Sequence[str], case_ids: Sequence[str],
                      outputs: np.ndarray) -> None:
    """Write the predictions CSV (format in the module docstring) atomically, rows by case id."""
    header, rows = _rows(task, names, np.asarray(outputs, dtype=np.float64))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["case"] + header)
    for case_id, row in sorted(zip(case_ids, rows)):
        writer.writerow([case_id] + row)
    write_text(Path(path), buf.getvalue())


def read_predictions(path: Path) -> tuple[str, list[str], dict[str, np.ndarray]]:
    """A predictions CSV: (task, class or target names, case id -> outputs (K,)): probabilities
    for classification and multilabel, values for regression. DatasetError naming the file."""
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
    if probs and header[1] == "label":
        task = "classification"
    elif probs:
        task = "multilabel"
    else:
        task, names, probs = "regression", header[1:], list(range(1, len(header)))
    out: dict[str, np.ndarray] = {}
    for line, r in enumerate(rows[1:], start=2):
        try:
            out[r[0]] = np.array([float(r[i]) for i in probs])
        except (ValueError, IndexError) as e:
            raise DatasetError(f"{path}:{line}: {e}") from e
    return task, names, out
