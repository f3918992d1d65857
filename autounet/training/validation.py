"""End-of-training validation: the fold's validation cases predicted like `autounet predict`
does (the same entry, :func:`autounet.inference.run.predict`, and settings), then scored.

Each case is written in its original geometry (and its probabilities with --save-probabilities;
for a stage that feeds a cascade, its labels at the next stage's resolution too). A case whose
files are complete is not predicted again, so an interrupted validation resumes where it stopped.
``summary.json`` gathers the Dice per case and class, read back from the written masks.
"""

from __future__ import annotations

import logging

import torch

from autounet.errors import WorkspaceError
from autounet.inference.cases import TrainingCase
from autounet.inference.folds import FoldEnsemble
from autounet.inference.outputs import prediction_done
from autounet.inference.run import predict
from autounet.inference.settings import PredictSettings
from autounet.io.atomic import write_json
from autounet.io.image_io import read_segmentation
from autounet.model.trained import TrainedModel
from autounet.postprocess.metrics import dice_per_class, foreground_mean, mean_per_class
from autounet.training.setup import FoldSetup

log = logging.getLogger("autounet.training")


def validation_cases(setup: FoldSetup, save_probabilities: bool) -> list[TrainingCase]:
    """The fold's validation cases still to predict."""
    ending, folder = setup.plans.file_ending, setup.folder.validation
    cases = [TrainingCase(c, setup.case_arrays(c), ending, folder / f"{c}{ending}", setup.previous_labels(c),
                          setup.next_stage_target(c)) for c in setup.val_ids]
    return [c for c in cases if not prediction_done(c.output, ending, save_probabilities)]


def score(setup: FoldSetup) -> dict:
    """Dice per case and class of the written validation masks; written to summary.json."""
    plans, per_case = setup.plans, []
    for case_id in setup.val_ids:
        pred, _ = read_segmentation(setup.folder.validation / f"{case_id}{plans.file_ending}", plans.reader)
        ref, _ = read_segmentation(setup.paths.reference(case_id, plans.file_ending), plans.reader)
        per_case.append({"case_id": case_id,
                         "metrics": dice_per_class(pred, ref, plans.evaluation_classes, plans.ignore_label)})
    means = mean_per_class([c["metrics"] for c in per_case])
    summary = {"mean_dice": means, "foreground_mean_dice": foreground_mean(means), "cases": per_case}
    write_json(setup.folder.validation_summary, summary)
    return summary


def validate(setup: FoldSetup, network: torch.nn.Module, settings: PredictSettings) -> dict:
    """Predict the fold's validation cases with ``network`` and score them; returns the summary."""
    model = TrainedModel(setup.plans, setup.configuration, {setup.fold: network.state_dict()})
    todo = validation_cases(setup, settings.save_probabilities)
    if todo:
        report = predict([FoldEnsemble(model, settings)], todo, settings, desc="validation")
        if report.failed:
            raise WorkspaceError(f"validation of {setup.configuration} fold {setup.fold}: "
                                 + "; ".join(report.failed.values()))
    return score(setup)
