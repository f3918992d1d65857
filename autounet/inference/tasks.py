"""What prediction asks of a task: what a prediction is, how it is written, and how one case
handed over in memory is answered.

Chosen once from the model's plans (:func:`task_for`); ``predict`` calls it instead of testing
whether the model is case-level. The folder (``autounet predict``) and the in-memory
(:class:`autounet.Predictor`) paths share each step: the same loaded networks, the same case
preparation, the same export to the original geometry. See docs/tasks.md for what a new task
provides.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

from autounet.autoplan.plans import Plans
from autounet.errors import WorkspaceError
from autounet.inference.case_outputs import predicted_labels
from autounet.inference.cases import ArrayCase, NewCase
from autounet.inference.run import Postprocess, final_labels, network_results, stage_inputs_of
from autounet.inference.run import predict as run_prediction
from autounet.inference.settings import ONNX_BACKENDS, OutputOptions, PredictionReport, PredictSettings
from autounet.io.geometry import Geometry
from autounet.io.image_io import to_sitk

if TYPE_CHECKING:  # torch is imported only where a checkpoint is loaded: the ONNX path runs without it
    from autounet.inference.source import ModelSource


@dataclass(frozen=True)
class Prediction:
    """One case predicted in memory.

    mask : the label map (Z, Y, X) in the case's own geometry, postprocessed (segmentation).
    probabilities : per class (K, Z, Y, X) in that geometry when asked for (segmentation); per
        class or target (K,) for a case-level classifier.
    label : the predicted class value, or 0/1 per target (case-level, not regression).
    values : the predicted values (regression).
    names : the case-level classes or targets, in the order of ``probabilities`` or ``values``.
    geometry : the case's geometry (segmentation), for :meth:`mask_image`.
    """

    mask: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    label: int | np.ndarray | None = None
    values: np.ndarray | None = None
    names: tuple[str, ...] = ()
    geometry: Geometry | None = None

    def mask_image(self):
        """The mask as a SimpleITK image with the input's spacing, origin and direction."""
        if self.mask is None or self.geometry is None:
            raise ValueError("a case-level prediction has no mask")
        return to_sitk(self.mask.reshape(self.geometry.shape), self.geometry)


class PredictionTask(Protocol):
    """Prediction's part of a task."""

    def load(self, source: ModelSource, settings: PredictSettings) -> Any:
        """The source's networks, loaded once for every case that follows."""

    def predict(self, loaded: Any, source: ModelSource | None, cases: Sequence[NewCase], settings: PredictSettings,
                options: OutputOptions, postprocessor: Postprocess | None) -> PredictionReport:
        """Predict ``cases`` and write the results under ``options.output``."""

    def predict_one(self, loaded: Any, source: ModelSource | None, case: ArrayCase, settings: PredictSettings,
                    postprocessor: Postprocess | None, probabilities: bool) -> Prediction:
        """Predict one case in memory, exactly as :meth:`predict` would write it."""


class SegmentationPrediction:
    """A mask per case (and probabilities on request) in the case's own geometry, postprocessed."""

    def load(self, source: ModelSource, settings: PredictSettings) -> Any:
        from autounet.inference.source import load_models

        return load_models(source, settings)

    def predict(self, loaded: Any, source: ModelSource | None, cases: Sequence[NewCase], settings: PredictSettings,
                options: OutputOptions, postprocessor: Postprocess | None) -> PredictionReport:
        return run_prediction(loaded, cases, settings, postprocessor)

    def predict_one(self, loaded: Any, source: ModelSource | None, case: ArrayCase, settings: PredictSettings,
                    postprocessor: Postprocess | None, probabilities: bool) -> Prediction:
        prepared = case.prepare(stage_inputs_of(loaded))
        mask, probs = final_labels(network_results(loaded, prepared), prepared.geometry, postprocessor, probabilities)
        return Prediction(mask=mask, probabilities=probs)


class CasePrediction:
    """A row per case (label or values, and probabilities) in one predictions CSV."""

    def load(self, source: ModelSource, settings: PredictSettings) -> Any:
        if settings.runtime in ONNX_BACKENDS:
            asked = "--int8" if settings.int8 else f"--backend {settings.backend}"
            raise WorkspaceError(f"{asked}: a case-level model runs with torch (it has no ONNX export); leave out "
                                 f"{asked.split()[0]}, or pass --backend torch")
        from autounet.inference.case_predict import load_case_models

        return load_case_models(source, settings)

    def predict(self, loaded: Any, source: ModelSource | None, cases: Sequence[NewCase], settings: PredictSettings,
                options: OutputOptions, postprocessor: Postprocess | None) -> PredictionReport:
        from autounet.inference.case_predict import predict_to_csv

        return predict_to_csv(loaded, source, cases, settings, options)

    def predict_one(self, loaded: Any, source: ModelSource | None, case: ArrayCase, settings: PredictSettings,
                    postprocessor: Postprocess | None, probabilities: bool) -> Prediction:
        from autounet.inference.case_predict import predict_case_level

        _, outputs, failed, _ = predict_case_level(loaded, [case], settings)
        if failed:
            raise ValueError(failed[case.case_id])
        plan, thresholds = loaded.plan, source.thresholds if source is not None else None
        names = tuple(plan.names)
        if plan.task == "regression":
            return Prediction(values=outputs[0], names=names)
        labels = predicted_labels(plan.task, outputs, thresholds)
        label = int(labels[0]) if plan.task == "classification" else labels[0]
        return Prediction(probabilities=outputs[0], label=label, names=names)


def task_for(plans: Plans | None) -> PredictionTask:
    """Prediction's part of the task the plans describe (segmentation when unknown: a model
    without a readable checkpoint fails there with its own message)."""
    return CasePrediction() if plans is not None and plans.case_task is not None else SegmentationPrediction()
