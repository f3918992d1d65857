"""What training asks of a task: the inputs a batch holds, the loss, the per-epoch validation
score and its name, and the final validation of a fold.

A task is chosen once from the plans (:func:`task_for`); the loop, the fold and the calibration call
its methods instead of testing which task they train. A new task is one new class here (and
its parts in the other stages' ``tasks`` modules; see docs/tasks.md).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Iterator, Protocol

import torch
from torch import nn

from autounet.autoplan.plans import Plans, StagePlan
from autounet.training.batches import Inputs, make_inputs
from autounet.training.case_batches import make_case_inputs
from autounet.training.case_losses import CaseLoss
from autounet.training.case_steps import case_validation_epoch, validate_cases
from autounet.training.config import TrainingConfig
from autounet.training.distributed import DistInfo
from autounet.training.losses import build_loss
from autounet.training.setup import FoldSetup
from autounet.training.steps import validation_epoch
from autounet.training.validation import CaseScores, validate
from autounet.postprocess.instances import instance_scores
from autounet.postprocess.metrics import case_scores

if TYPE_CHECKING:
    from autounet.training.state import Run


class TrainingTask(Protocol):
    """Training's part of a task."""

    metric: str  # what the per-epoch validation score is called in the log and the plots

    def inputs(self, setup: FoldSetup, config: TrainingConfig, device: torch.device,
               dist: DistInfo = DistInfo()) -> Inputs:
        """The fold's samplers and transforms."""

    def loss(self, plans: Plans, stage: StagePlan, deep_supervision: bool) -> nn.Module:
        """The loss the network is trained with."""

    def validation_epoch(self, run: Run, batches: Iterator) -> tuple[float, list[float]]:
        """An epoch's validation loss and scores (their mean is the tracked score)."""

    def validate(self, run: Run) -> str:
        """Predict and score the fold's validation cases, write them; returns the figures in words."""

    def summary_score(self, summary: dict) -> tuple[str, float]:
        """The fold's validation score, named, from the summary :meth:`validate` wrote."""


class SegmentationTraining:
    """Patches with voxel labels, Dice + cross-entropy, the pseudo-Dice, sliding-window validation."""

    metric = "pseudo Dice"

    def inputs(self, setup: FoldSetup, config: TrainingConfig, device: torch.device,
               dist: DistInfo = DistInfo()) -> Inputs:
        return make_inputs(setup, config, device, dist)

    def loss(self, plans: Plans, stage: StagePlan, deep_supervision: bool) -> nn.Module:
        return build_loss(plans, stage, deep_supervision)

    def validation_epoch(self, run: Run, batches: Iterator) -> tuple[float, list[float]]:
        return validation_epoch(run, batches)

    def validate(self, run: Run) -> str:
        summary = _predict_and_score(run, case_scores)
        return (f"mean Dice per class {({k: round(v, 4) for k, v in summary['mean_dice'].items()})}, "
                f"foreground mean {summary['foreground_mean_dice']:.4f}")

    def summary_score(self, summary: dict) -> tuple[str, float]:
        return "validation foreground Dice", summary["foreground_mean_dice"]


class InstanceTraining(SegmentationTraining):
    """Interior and boundary classes learnt like a segmentation; validated by the objects seeded
    from them (PQ, AJI, object F1 with the default rules; selection tunes the rules)."""

    def validate(self, run: Run) -> str:
        summary = _predict_and_score(run, instance_scores)
        return " ".join(f"{name} {summary.get(f'foreground_mean_{key}', float('nan')):.4f}," for key, name in (
            ("dice", "foreground Dice"), ("pq", "PQ"), ("aji", "AJI"), ("object_f1", "object F1"))).rstrip(",")

    def summary_score(self, summary: dict) -> tuple[str, float]:
        return "validation PQ", summary["foreground_mean_pq"]


@dataclasses.dataclass(frozen=True)
class CaseTraining:
    """Whole cases with a label or values per case, the plan's case loss, the AUC or -MAE over
    every validation case, and a final validation with and without test-time mirroring."""

    metric: str

    def inputs(self, setup: FoldSetup, config: TrainingConfig, device: torch.device,
               dist: DistInfo = DistInfo()) -> Inputs:
        return make_case_inputs(setup, config, device, dist)

    def loss(self, plans: Plans, stage: StagePlan, deep_supervision: bool) -> nn.Module:
        return CaseLoss(plans.case_task)

    def validation_epoch(self, run: Run, batches: Iterator) -> tuple[float, list[float]]:
        return case_validation_epoch(run, batches)

    def validate(self, run: Run) -> str:
        summary = validate_cases(run.setup, run.module, run.device, run.config.amp)
        return ", ".join(f"{k} {summary['mirrored'][k]:.4f}" for k in ("auc", "accuracy", "balanced_accuracy", "mae", "r2")
                         if k in summary["mirrored"])

    def summary_score(self, summary: dict) -> tuple[str, float]:
        return "validation score", summary["mirrored"]["score"]  # with test-time mirroring


def _predict_and_score(run: Run, scores: CaseScores) -> dict:
    """The fold's validation cases predicted as the run's settings say, scored by ``scores``."""
    settings = dataclasses.replace(run.config.validation, device=str(run.device), amp=run.config.amp)
    return validate(run.setup, run.module, settings, scores)


def task_for(plans: Plans) -> TrainingTask:
    """Training's part of the task the plans describe."""
    if plans.case_task is None:
        return InstanceTraining() if plans.instance_task is not None else SegmentationTraining()
    return CaseTraining("val -MAE" if plans.case_task.task == "regression" else "val AUC")
