"""A configuration's folds on one device: their probabilities averaged, the cascade's input added."""

from __future__ import annotations

import numpy as np
import torch

from autounet.autoplan.plans import Plans, StagePlan
from autounet.errors import WorkspaceError
from autounet.hardware import resolve_device
from autounet.inference.cascade import labels_at, with_previous_stage
from autounet.inference.cases import Prepared, StageInput
from autounet.inference.logits import predict_logits
from autounet.inference.probabilities import average_probabilities, logits_to_probabilities
from autounet.inference.settings import PredictSettings
from autounet.model.trained import TrainedModel


class FoldEnsemble:
    """Predicts with every fold of a configuration; ``previous`` is a cascade's previous stage.

    One network holds each fold's weights in turn (one network in memory, however many folds).
    """

    def __init__(self, model: TrainedModel, settings: PredictSettings, previous: "FoldEnsemble | None" = None,
                 network: torch.nn.Module | None = None):
        """network : a network of the model's topology already on the device (training's own, for
        its validation) instead of a new one."""
        self.model, self.settings, self.previous = model, settings, previous
        self.device = resolve_device(settings.device)
        self.network = network if network is not None else model.network(self.device)

    @property
    def configuration(self) -> str:
        return self.model.configuration

    @property
    def plans(self) -> Plans:
        return self.model.plans

    @property
    def stage(self) -> StagePlan:
        return self.model.stage

    @property
    def stage_inputs(self) -> list[StageInput]:
        """What a case must be preprocessed for: this stage, and the previous stages it needs."""
        own = StageInput(self.configuration, self.plans, self.stage)
        return [own] + (self.previous.stage_inputs if self.previous is not None else [])

    def probabilities(self, data: np.ndarray) -> np.ndarray:
        """Mean probabilities over folds (K, z, y, x) for preprocessed data (C, z, y, x)."""
        regions = self.plans.regions_class_order is not None

        def per_fold():
            for weights in self.model.fold_weights.values():
                self.network.load_state_dict(weights)
                logits = predict_logits(self.network, data, self.stage, self.device, self.settings)
                yield logits_to_probabilities(logits, regions).numpy()

        return average_probabilities(per_fold())

    def network_input(self, case: Prepared) -> np.ndarray:
        """The case's data for this stage; for a cascade with the previous stage's one-hot labels,
        taken from the case when known (validation), else predicted by the previous stage."""
        data = case.data[self.configuration]
        if not self.stage.previous_stage:
            return data
        previous = case.previous
        if previous is None:
            if self.previous is None:
                raise WorkspaceError(f"{self.configuration} is a cascade stage but its previous stage "
                                     f"{self.stage.previous_stage} was not loaded")
            probs = self.previous.probabilities(self.previous.network_input(case))
            previous = labels_at(probs, data.shape[1:], self.previous.plans)
        n_classes = self.stage.network.input_channels - len(self.plans.channel_names)
        return with_previous_stage(data, previous, n_classes)

