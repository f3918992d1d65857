"""What prediction asks of a configuration's model, whatever runs it (torch, ONNX Runtime,
OpenVINO): the cases' preprocessing it needs and its probabilities for a case, with a cascade's
input assembled the same way for all."""

from __future__ import annotations

from typing import Optional, Protocol

import numpy as np

from autounet.autoplan.plans import Plans, StagePlan
from autounet.errors import WorkspaceError
from autounet.inference.cascade import labels_at, with_previous_stage
from autounet.inference.cases import Prepared, StageInput


class StageModel(Protocol):
    """A configuration's folds, ready to predict; ``previous`` is a cascade's previous stage."""

    configuration: str
    plans: Plans
    previous: Optional["StageModel"]

    @property
    def stage(self) -> StagePlan: ...

    def probabilities(self, data: np.ndarray) -> np.ndarray:
        """Mean probabilities over folds (K, z, y, x) for preprocessed data (C, z, y, x)."""


def stage_inputs(model: StageModel) -> list[StageInput]:
    """What a case must be preprocessed for: the model's stage, and the previous stages it needs."""
    own = StageInput(model.configuration, model.plans, model.stage)
    return [own] + (stage_inputs(model.previous) if model.previous is not None else [])


def network_input(model: StageModel, case: Prepared) -> np.ndarray:
    """The case's data for the model's stage; for a cascade with the previous stage's one-hot
    labels, taken from the case when known (validation), else predicted by the previous stage."""
    data = case.data[model.configuration]
    if not model.stage.previous_stage:
        return data
    previous = case.previous
    if previous is None:
        if model.previous is None:
            raise WorkspaceError(f"{model.configuration} is a cascade stage but its previous stage "
                                 f"{model.stage.previous_stage} was not loaded")
        probs = model.previous.probabilities(network_input(model.previous, case))
        previous = labels_at(probs, data.shape[1:], model.previous.plans)
    n_classes = model.stage.network.input_channels - len(model.plans.channel_names)
    return with_previous_stage(data, previous, n_classes)
