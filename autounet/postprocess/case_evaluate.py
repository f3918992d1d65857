"""Evaluate case-level predictions (a predictions CSV) against reference targets (a labels CSV).

The task and the class or target names come from the predictions file's header (see
:mod:`autounet.inference.case_outputs`); the reference file is read and checked as a dataset's
labelsTr.csv is (:func:`autounet.io.targets.read_targets`). Every reference case needs a
prediction. Accuracy, sensitivity and the confusion matrix use the classes the file states (the
operating point ``predict`` applied); AUC uses the probabilities. The metrics are those of :mod:`autounet.postprocess.case_metrics`; they are written
as JSON, with each case's reference and prediction.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from autounet.errors import DatasetError
from autounet.inference.case_outputs import read_prediction_table, reference_values
from autounet.io.atomic import check_writable, write_json
from autounet.io.targets import read_targets
from autounet.postprocess.case_metrics import case_metrics


def is_case_level(prediction: Path) -> bool:
    """Whether ``prediction`` is a case-level predictions CSV (not a folder of label maps)."""
    return Path(prediction).suffix.lower() == ".csv"


def evaluation_file(prediction: Path, output: Path | None) -> Path:
    """Where the evaluation goes: ``output`` when it names a .json file, ``output/summary.json``
    for a folder, else ``summary.json`` beside the predictions."""
    if output is None:
        return Path(prediction).parent / "summary.json"
    output = Path(output)
    return output if output.suffix.lower() == ".json" else output / "summary.json"


def evaluate_case_files(reference: Path, prediction: Path, output: Path | None = None) -> dict:
    """Metrics of a predictions CSV against a labels CSV; written to :func:`evaluation_file`."""
    task, names, predicted, stated = read_prediction_table(Path(prediction))
    labels = {n: i for i, n in enumerate(names)}
    targets = read_targets(Path(reference), task, labels)
    missing = sorted(set(targets) - set(predicted))
    if missing:
        raise DatasetError(f"{prediction}: no prediction for {len(missing)} reference case(s) of {reference}: "
                           f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    ids = sorted(targets)
    y_true = reference_values(np.stack([targets[c] for c in ids]), task)
    outputs = np.stack([predicted[c] for c in ids])
    written = np.stack([stated[c] for c in ids]) if task != "regression" else None  # the classes predict wrote
    if written is not None and task == "classification":
        written = written[:, 0]
    result = {"task": task, "names": names, "reference": str(reference), "prediction": str(prediction),
              **case_metrics(task, y_true, outputs, names, written),
              "cases": [{"case": c, "reference": targets[c].tolist(), "output": predicted[c].tolist()} for c in ids]}
    target = evaluation_file(Path(prediction), output)
    check_writable(target.parent)
    write_json(target, result)
    return result
