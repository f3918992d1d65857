"""Evaluate a folder of predicted instance maps against reference instance maps (an instance
dataset: dataset.json's ``"task": "instance"``): per case the instance metrics of
:mod:`autounet.postprocess.instance_metrics` and the foreground Dice; their means. Written, like
:mod:`autounet.postprocess.evaluate`, to ``summary.json`` and ``metrics.csv``."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any


from autounet.io.atomic import check_writable, read_json, write_json, write_text
from autounet.parallel import map_parallel
from autounet.postprocess.evaluate import match_cases, read_pair
from autounet.postprocess.instance_metrics import INSTANCE_METRICS, instance_metrics
from autounet.postprocess.metrics import foreground_dice, nanmean
from autounet.workspace import RawPaths

METRICS = ("dice",) + INSTANCE_METRICS


def instance_dataset(reference_folder: Path) -> bool:
    """Whether the references belong to an instance dataset (its dataset.json beside them says so)."""
    dataset_json = RawPaths(Path(reference_folder).parent).dataset_json
    if not dataset_json.is_file():
        return False
    raw = read_json(dataset_json)
    return isinstance(raw, dict) and raw.get("task") == "instance"


def _evaluate_case(args: tuple[str, Path, Path]) -> dict[str, Any]:
    case_id, ref_path, pred_path = args
    ref, _, pred, _ = read_pair(ref_path, pred_path)
    return {"case_id": case_id, "metrics": {"dice": foreground_dice(pred, ref), **instance_metrics(pred, ref)}}


def evaluate_instance_folders(reference_folder: Path, prediction_folder: Path, processes: int = 1,
                              output: Path | None = None) -> dict[str, Any]:
    """Instance metrics of every predicted instance map against the reference of the same file
    name; writes and returns the summary (``mean`` and ``foreground_mean`` over cases, NaN skipped)."""
    cases = match_cases(Path(reference_folder), Path(prediction_folder))
    output = check_writable(Path(prediction_folder) if output is None else Path(output))
    per_case = map_parallel(_evaluate_case, [(c, r, p) for c, r, p in cases], processes, desc="evaluation")
    means = {m: nanmean([c["metrics"][m] for c in per_case]) for m in METRICS}
    summary = {"cases": [{"case_id": c["case_id"], "metrics": {"1": c["metrics"]}} for c in per_case],
               "mean": {"1": means}, "foreground_mean": means, "objects": "instances"}
    write_json(output / "summary.json", summary)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["case_id"] + list(METRICS))
    for c in per_case:
        writer.writerow([c["case_id"]] + [c["metrics"][m] for m in METRICS])
    write_text(output / "metrics.csv", text.getvalue())
    return summary
