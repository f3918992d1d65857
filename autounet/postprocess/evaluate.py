"""Evaluate a folder of predicted label maps against a folder of reference label maps.

Cases are matched by file name (``CASE.nii.gz`` with ``CASE.nii.gz``, ``CASE.png`` with
``CASE.png``); every ending of :data:`autounet.io.image_io.SUPPORTED_ENDINGS` is recognized.
The metrics and their NaN rules are those of :mod:`autounet.postprocess.metrics`.

Results go to ``summary.json`` (per case, means per class, mean over classes) and ``metrics.csv``
(one row per case), both written atomically. NaN values are written as JSON ``NaN`` (what
Python's json reads back, as in the training summaries) and as ``nan`` in the CSV.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from autounet.errors import AutounetError
from autounet.io.atomic import check_writable, read_json, write_json, write_text
from autounet.io.image_io import SUPPORTED_ENDINGS, file_ending, read_segmentation, reader_for
from autounet.io.geometry import Geometry, geometry_mismatches
from autounet.parallel import map_parallel
from autounet.postprocess.metrics import (
    DEFAULT_NSD_TOLERANCE_MM, METRICS, Class, absent_class_metrics, case_metrics, class_name, summarize,
)
from autounet.workspace import RawPaths

log = logging.getLogger("autounet.postprocess")

IGNORE_LABEL_NAME = "ignore"
BACKGROUND_LABEL_NAME = "background"


class EvaluationError(AutounetError, ValueError):
    """The folders cannot be evaluated as they are; the message names the files."""


def _label_files(folder: Path) -> dict[str, Path]:
    """Supported label files of a folder by file name (hidden files, e.g. temporaries, skipped)."""
    if not folder.is_dir():
        raise EvaluationError(f"{folder}: folder not found")
    return {p.name: p for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".") and file_ending(p) in SUPPORTED_ENDINGS}


def _case_id(name: str) -> str:
    return name[: -len(file_ending(Path(name)))]


def match_cases(reference_folder: Path, prediction_folder: Path) -> list[tuple[str, Path, Path]]:
    """``(case_id, reference, prediction)`` for every reference file, sorted by case id.

    Raises EvaluationError naming every reference without a prediction; predictions without a
    reference are left out with a warning.
    """
    refs, preds = _label_files(Path(reference_folder)), _label_files(Path(prediction_folder))
    if not refs:
        raise EvaluationError(f"{reference_folder}: no reference label files (endings {', '.join(SUPPORTED_ENDINGS)})")
    ids: dict[str, str] = {}
    for name in refs:
        if (case_id := _case_id(name)) in ids:
            raise EvaluationError(f"{reference_folder}: case '{case_id}' has two reference files, "
                                  f"{ids[case_id]} and {name}")
        ids[case_id] = name
    missing = [name for name in refs if name not in preds]
    if missing:
        pred_by_id = {_case_id(n): n for n in preds}
        hints = [n + (f" (found {pred_by_id[_case_id(n)]}: the ending differs)" if _case_id(n) in pred_by_id else "")
                 for n in missing]
        raise EvaluationError(f"{prediction_folder}: no prediction for {len(missing)} of {len(refs)} reference "
                              f"case(s): {', '.join(hints)}")
    extra = sorted(set(preds) - set(refs))
    if extra:
        log.warning("%s: %d prediction(s) without a reference in %s are ignored: %s",
                    prediction_folder, len(extra), reference_folder, ", ".join(extra))
    return sorted((_case_id(name), refs[name], preds[name]) for name in refs)


def classes_from_dataset_json(path: Path) -> tuple[list[Class], int | None]:
    """Classes and ignore label declared by a dataset.json's ``labels``.

    With regions (any value a list), every label but background and ignore is a region tuple;
    otherwise the classes are the label values other than background (0) and ignore.
    """
    raw = read_json(path)
    labels = raw.get("labels") if isinstance(raw, dict) else None
    if not isinstance(labels, dict) or not all(
            isinstance(v, int) or (isinstance(v, list) and v and all(isinstance(x, int) for x in v))
            for v in labels.values()):
        raise EvaluationError(f"{path}: 'labels' must be an object of name -> integer or list of integers")
    ignore = labels.get(IGNORE_LABEL_NAME)
    ignore = ignore if isinstance(ignore, int) else None
    named = {k: v for k, v in labels.items() if k not in (BACKGROUND_LABEL_NAME, IGNORE_LABEL_NAME)}
    if any(isinstance(v, list) for v in named.values()):
        return [tuple(v) if isinstance(v, list) else (v,) for v in named.values()], ignore
    return sorted(v for v in named.values() if v != 0), ignore


def read_pair(ref_path: Path, pred_path: Path) -> tuple[np.ndarray, Geometry, np.ndarray, Geometry]:
    """A reference and its prediction with their geometries; an EvaluationError names both files
    when their shapes differ."""
    reader = reader_for(file_ending(ref_path))
    ref, ref_geo = read_segmentation(ref_path, reader)
    pred, pred_geo = read_segmentation(pred_path, reader)
    if pred.shape != ref.shape:
        raise EvaluationError(f"{pred_path}: prediction shape {pred.shape} (z, y, x) differs from "
                              f"reference {ref_path} shape {ref.shape}")
    return ref, ref_geo, pred, pred_geo


def _evaluate_case(args: tuple[str, Path, Path, Sequence[Class] | None, int | None, float]) -> dict[str, Any]:
    """Metrics of one case; with ``classes`` None, of every foreground value in either file."""
    case_id, ref_path, pred_path, classes, ignore_label, tolerance = args
    ref, ref_geo, pred, pred_geo = read_pair(ref_path, pred_path)
    mismatches = geometry_mismatches(pred_geo, ref_geo)
    warning = None if not mismatches else (
        f"{pred_path}: its geometry differs from the reference {ref_path} ({'; '.join(mismatches)}): the two do not "
        "cover the same physical grid, so the voxel-by-voxel comparison may be wrong; distances use the reference's "
        "spacing")
    ref_values = sorted(int(v) for v in np.unique(ref) if v > 0 and v != ignore_label)
    if classes is None:
        classes = sorted(set(ref_values) | {int(v) for v in np.unique(pred) if v > 0 and v != ignore_label})
    metrics = case_metrics(pred, ref, classes, ref_geo.spacing, ignore_label, tolerance)
    return {"case_id": case_id, "metrics": metrics, "ref_values": ref_values, "warning": warning}


def _csv_text(cases: list[dict[str, Any]], names: list[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["case_id"] + [f"{c}_{m}" for c in names for m in METRICS])
    for case in cases:
        writer.writerow([case["case_id"]] + [case["metrics"][c][m] for c in names for m in METRICS])
    return out.getvalue()


def evaluate_folders(reference_folder: Path, prediction_folder: Path, classes: Sequence[Class] | None = None,
                     ignore_label: int | None = None, nsd_tolerance: float = DEFAULT_NSD_TOLERANCE_MM,
                     processes: int = 1, output: Path | None = None) -> dict[str, Any]:
    """Compare every reference label map with the prediction of the same file name.

    classes : label values and/or regions (tuples); when None, the labels of a dataset.json in
        the reference folder's parent (nnU-Net layout ``labelsTs/../dataset.json``), else every
        value > 0 found in the references (ignore label excluded).
    ignore_label : reference value excluded from every metric; when None, the dataset.json's
        "ignore" label if there is one.
    nsd_tolerance : surface Dice tolerance in physical units (mm).
    output : folder for summary.json and metrics.csv (default: the prediction folder).

    Returns the summary written to summary.json. Raises EvaluationError naming the files when a
    prediction is missing or its shape differs from the reference's.
    """
    reference_folder, prediction_folder = Path(reference_folder), Path(prediction_folder)
    cases = match_cases(reference_folder, prediction_folder)
    output = check_writable(prediction_folder if output is None else Path(output))
    dataset_json = RawPaths(reference_folder.parent).dataset_json
    if dataset_json.is_file() and (classes is None or ignore_label is None):
        declared, declared_ignore = classes_from_dataset_json(dataset_json)
        log.info("labels from %s: classes %s, ignore label %s", dataset_json, declared, declared_ignore)
        classes = declared if classes is None else classes
        ignore_label = declared_ignore if ignore_label is None else ignore_label
    fixed = None if classes is None else list(classes)
    results = map_parallel(_evaluate_case,
                           [(cid, ref, pred, fixed, ignore_label, nsd_tolerance) for cid, ref, pred in cases],
                           processes, desc="evaluation")
    for r in results:
        if r["warning"]:
            log.warning(r["warning"])
    if fixed is None:  # every value found in some reference; absent from a case means absent there
        fixed = sorted({v for r in results for v in r["ref_values"]})
    names = [class_name(c) for c in fixed]
    per_case = [{"case_id": r["case_id"], "metrics": {n: r["metrics"].get(n, absent_class_metrics()) for n in names},
                 **({"warning": r["warning"]} if r["warning"] else {})} for r in results]
    summary = {"cases": per_case, **summarize([c["metrics"] for c in per_case]),
               "classes": [list(c) if isinstance(c, tuple) else c for c in fixed],
               "ignore_label": ignore_label, "nsd_tolerance_mm": float(nsd_tolerance)}
    write_json(output / "summary.json", summary)
    text = _csv_text(per_case, names)
    write_text(output / "metrics.csv", text)
    return summary
