"""What prediction asks of a task: what a prediction is and how it is written.

Chosen once from the model's plans (:func:`task_for`); ``predict`` calls it instead of testing
whether the model is case-level. See docs/tasks.md for what a new task provides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

from autounet.autoplan.plans import Plans
from autounet.errors import WorkspaceError
from autounet.inference.case_predict import csv_output, predict_to_csv
from autounet.inference.cases import ImageCase
from autounet.inference.run import Postprocess, predict as run_prediction
from autounet.inference.settings import ONNX_BACKENDS, PredictionReport, PredictSettings
from autounet.inference.source import ModelSource, load_models

class PredictionTask(Protocol):
    """Prediction's part of a task."""

    def predict(self, source: ModelSource, cases: Sequence[ImageCase], settings: PredictSettings, output: Path,
                overwrite: bool, postprocessor: Postprocess | None) -> PredictionReport:
        """Predict ``cases`` with the source's model and write the results under ``output``."""


class SegmentationPrediction:
    """A mask per case (and probabilities on request) in the case's own geometry, postprocessed."""

    def predict(self, source: ModelSource, cases: Sequence[ImageCase], settings: PredictSettings, output: Path,
                overwrite: bool, postprocessor: Postprocess | None) -> PredictionReport:
        return run_prediction(load_models(source, settings), cases, settings, postprocessor)


class CasePrediction:
    """A row per case (label or values, and probabilities) in one predictions CSV."""

    def predict(self, source: ModelSource, cases: Sequence[ImageCase], settings: PredictSettings, output: Path,
                overwrite: bool, postprocessor: Postprocess | None) -> PredictionReport:
        if settings.backend in ONNX_BACKENDS:
            raise WorkspaceError(f"--backend {settings.backend}: a case-level model runs with torch (it has no ONNX "
                                 "export); leave out --backend or pass --backend torch")
        failed = predict_to_csv(source, cases, settings, output, overwrite)
        return PredictionReport(written=[csv_output(output)] if len(failed) < len(cases) else [], failed=failed)


def task_for(plans: Plans | None) -> PredictionTask:
    """Prediction's part of the task the plans describe (segmentation when unknown: a model
    without a readable checkpoint fails there with its own message)."""
    return CasePrediction() if plans is not None and plans.case_task is not None else SegmentationPrediction()
