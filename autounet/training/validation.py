"""End-of-training validation: the fold's validation cases predicted like `autounet predict`
does (the same entry, :func:`autounet.inference.run.predict`, and settings), then scored.

Each case is written in its original geometry (and its probabilities with --save-probabilities;
for a stage that feeds a cascade, its labels at the next stage's resolution too). A case whose
files are complete is not predicted again, so an interrupted validation resumes where it stopped.
``summary.json`` gathers the Dice per case and class, read back from the written masks.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from autounet.errors import WorkspaceError
from autounet.inference.cases import TrainingCase
from autounet.inference.folds import FoldEnsemble
from autounet.inference.outputs import mask_file, prediction_done
from autounet.inference.run import predict
from autounet.inference.settings import PredictSettings
from autounet.io.atomic import write_json
from autounet.io.image_io import read_segmentation
from autounet.model.trained import TrainedModel
from autounet.postprocess.metrics import case_scores, foreground_mean, mean_per_class
from autounet.training.setup import FoldSetup

CaseScores = Callable[[np.ndarray, np.ndarray, Sequence, "int | None"], dict]  # (pred, ref, classes, ignore)


def cases_to_predict(setup: FoldSetup, save_probabilities: bool) -> list[TrainingCase]:
    """The fold's validation cases whose files (with the cascade's next-stage labels) are not complete."""
    ending, todo = setup.plans.file_ending, []
    for case_id in setup.val_ids:
        mask, next_file = mask_file(setup.output.validation, case_id, ending), setup.next_stage_file(case_id)
        if prediction_done(mask, ending, save_probabilities) and (next_file is None or next_file.is_file()):
            continue
        target = (setup.next_stage_shape(case_id), next_file) if next_file is not None else None
        todo.append(TrainingCase(case_id, setup.case_arrays(case_id), ending, mask, setup.previous_labels(case_id),
                                 target))
    return todo


SUMMARY_METRICS = ("lesion_f1", "pq", "aji", "object_f1")  # averaged in the summary beside Dice, where scored


def score(setup: FoldSetup, scores: CaseScores = case_scores) -> dict:
    """Dice and the lesion-wise figures (or what ``scores`` gives) per case and class of the
    written validation masks; written to summary.json."""
    plans, per_case = setup.plans, []
    for case_id in setup.val_ids:
        pred, _ = read_segmentation(mask_file(setup.output.validation, case_id, plans.file_ending), plans.reader)
        ref, _ = read_segmentation(setup.paths.reference(case_id, plans.file_ending), plans.reader)
        per_case.append({"case_id": case_id, "metrics": scores(pred, ref, plans.evaluation_classes, plans.ignore_label)})
    metrics = [c["metrics"] for c in per_case]
    means = mean_per_class(metrics)
    summary: dict = {"mean_dice": means, "foreground_mean_dice": foreground_mean(means)}
    for name in SUMMARY_METRICS:
        if any(name in m for case in metrics for m in case.values()):
            summary[f"mean_{name}"] = mean_per_class(metrics, name)
            summary[f"foreground_mean_{name}"] = foreground_mean(summary[f"mean_{name}"])
    summary["cases"] = per_case
    write_json(setup.output.validation_summary, summary)
    return summary


def validate(setup: FoldSetup, network: torch.nn.Module, settings: PredictSettings,
             scores: CaseScores = case_scores) -> dict:
    """Predict the fold's validation cases with ``network`` (on ``settings.device``) and score
    them with ``scores``; returns the summary."""
    todo = cases_to_predict(setup, settings.save_probabilities)
    if todo:
        model = TrainedModel(setup.plans, setup.configuration, {setup.fold: network.state_dict()})
        report = predict([FoldEnsemble(model, settings, network=network)], todo, settings, desc="validation")
        if report.failed:
            raise WorkspaceError(f"validation of {setup.configuration} fold {setup.fold}: "
                                 + "; ".join(report.failed.values()))
    return score(setup, scores)
