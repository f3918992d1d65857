"""Choose the best configuration (or pair ensemble) of a case-level task from the cross-validation.

Each configuration's five folds predicted their validation cases twice: with test-time
mirroring (the mirrored copies' outputs averaged) and without. Both are scored over all cases
together; mirroring is kept only when it scores higher, so it is used where it helps. Pairs of
configurations are scored as ensembles (outputs averaged). The score is the validation score of
:func:`autounet.postprocess.case_metrics.validation_score` (AUC, or -MAE for regression); within
``TIE_TOLERANCE`` the simpler choice wins. The decision threshold of a two-class or multi-label
model is then chosen on the same predictions (:func:`operating_points`); accuracy and the
confusion matrix are reported at it. Case-level tasks have no postprocessing.
"""

from __future__ import annotations

import itertools
import logging
from typing import Sequence

import numpy as np

from autounet.autoplan.plans import Plans
from autounet.errors import WorkspaceError
from autounet.inference.case_outputs import predicted_labels, read_predictions, reference_values, write_predictions
from autounet.io.atomic import read_json
from autounet.postprocess.case_metrics import case_metrics, operating_point, validation_score
from autounet.postprocess.candidates import TIE_TOLERANCE, candidates, simplest_best
from autounet.postprocess.selections import CaseSelection
from autounet.workspace import DatasetPaths, PreprocessedCase, case_predictions_file

log = logging.getLogger("autounet")
def cv_outputs(paths: DatasetPaths, configuration: str, splits: list[dict], mirrored: bool) -> dict[str, np.ndarray]:
    """case id -> the cross-validation outputs of a configuration (each case from the fold that
    did not train on it)."""
    out: dict[str, np.ndarray] = {}
    for k in range(len(splits)):
        _, _, outputs = read_predictions(case_predictions_file(paths.trained.fold(configuration, k).validation, mirrored))
        out.update({c: outputs[c] for c in splits[k]["val"] if c in outputs})
    return out


def reference_targets(paths: DatasetPaths, plans: Plans, case_ids: Sequence[str]) -> np.ndarray:
    """The targets (N, K) of training cases, as preprocessing recorded them."""
    folder = paths.data_folder(next(iter(plans.configurations.values())).data_identifier)
    return np.array([read_json(PreprocessedCase(folder, c).meta)["target"] for c in case_ids], dtype=np.float64)


def operating_points(task: str, y_true: np.ndarray, outputs: np.ndarray) -> list[float] | None:
    """The decision thresholds that maximize balanced accuracy on the cross-validation: on class
    1's probability for two classes, on each target's for multi-label; None otherwise (argmax,
    values). Networks trained on balanced batches or with augmentation need not be calibrated at
    0.5; the cross-validation predictions are out-of-fold, so choosing the threshold on them does
    not look at the cases it is then judged on."""
    if task == "classification" and outputs.shape[1] == 2:
        return [operating_point(y_true == 1, outputs[:, 1])]
    if task == "multilabel":
        return [operating_point(y_true[:, j], outputs[:, j]) for j in range(outputs.shape[1])]
    return None


def _entry(plans: Plans, y_true: np.ndarray, outputs: np.ndarray, members: list[str], mirror: list[bool],
           splits: list[dict]) -> dict:
    plan = plans.case_task
    thresholds = operating_points(plan.task, y_true, outputs)
    metrics = case_metrics(plan.task, y_true, outputs, plan.names, predicted_labels(plan.task, outputs, thresholds))
    at_default = case_metrics(plan.task, y_true, outputs, plan.names)
    return {"kind": "configuration" if len(members) == 1 else "ensemble", "members": members, "mirror": mirror,
            "folds": [str(k) for k in range(len(splits))], "score": validation_score(plan.task, metrics),
            "thresholds": thresholds, "metrics": metrics,
            **({"accuracy_at_default_threshold": at_default["accuracy"]} if thresholds else {})}


def score_configurations(paths: DatasetPaths, plans: Plans, configs: Sequence[str], splits: list[dict],
                         ensembles: bool) -> tuple[dict[str, dict], dict[str, np.ndarray], list[str]]:
    """Every configuration (mirroring on or off, whichever scores higher) and pair ensemble:
    the entries, each entry's CV outputs (N, K), and the case ids in their order."""
    task = plans.case_task.task
    ids = sorted(cv_outputs(paths, configs[0], splits, True))
    y_true = reference_values(reference_targets(paths, plans, ids), task)
    entries, outputs = {}, {}
    for c in configs:
        scored = []
        for mirror in (False, True):
            o = cv_outputs(paths, c, splits, mirror)
            if sorted(o) != ids:
                raise WorkspaceError(f"{c}: the cross-validation predictions do not cover the same cases as {configs[0]}")
            stacked = np.stack([o[i] for i in ids])
            scored.append((_entry(plans, y_true, stacked, [c], [mirror], splits), stacked))
        (plain, o_plain), (mirrored, o_mirrored) = scored
        use_mirror = mirrored["score"] > plain["score"] + TIE_TOLERANCE  # mirroring only where it helps
        entries[c] = {**(mirrored if use_mirror else plain), "score_without_mirroring": plain["score"],
                      "score_with_mirroring": mirrored["score"]}
        outputs[c] = o_mirrored if use_mirror else o_plain
    if ensembles:
        for a, b in itertools.combinations(configs, 2):
            o = (outputs[a] + outputs[b]) / 2
            entries[f"{a}+{b}"] = _entry(plans, y_true, o, [a, b], entries[a]["mirror"] + entries[b]["mirror"], splits)
            outputs[f"{a}+{b}"] = o
    return entries, outputs, ids


def select_case_level(paths: DatasetPaths, plans: Plans, splits: list[dict],
                      configurations: Sequence[str] | None = None, ensembles: bool = True) -> CaseSelection:
    """Score and choose; writes the winner's cross-validation predictions (for the report)."""
    configs = candidates(paths, plans, splits, configurations, f"autounet run {paths.name}")
    entries, outputs, ids = score_configurations(paths, plans, configs, splits, ensembles)
    best = simplest_best(entries, "score")
    plan = plans.case_task
    write_predictions(case_predictions_file(paths.trained.cross_validation_predictions(best)), plan.task, plan.names,
                      ids, outputs[best], entries[best]["thresholds"])
    return CaseSelection(plan.task, list(plan.names), entries, best,
                         f"autounet predict -i INPUT_FOLDER -o predictions.csv -d {paths.name}")
