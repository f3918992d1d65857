"""A configuration's folds run by torch on one device, their probabilities averaged."""

from __future__ import annotations

import copy

import numpy as np
import torch

from autounet.autoplan.plans import Plans, StagePlan
from autounet.hardware import resolve_device
from autounet.inference.logits import cpu_bfloat16, for_cpu, logits_to_probabilities, predict_logits
from autounet.inference.probabilities import average_probabilities
from autounet.inference.settings import PredictSettings
from autounet.model.trained import TrainedModel


class FoldEnsemble:
    """Predicts with every fold of a configuration; ``previous`` is a cascade's previous stage.

    One network holds each fold's weights in turn (one network in memory, however many folds).
    """

    def __init__(self, model: TrainedModel, settings: PredictSettings, previous: "FoldEnsemble | None" = None,
                 network: torch.nn.Module | None = None):
        """network : a network of the model's topology already on the device (training's own, for
        its validation) instead of a new one; on a CPU a copy of it, laid out (and cast) for the CPU."""
        self.model, self.settings, self.previous = model, settings, previous
        self.device = resolve_device(settings.device)
        self.network = network if network is not None else model.network(self.device)
        if self.device.type == "cpu":
            own = copy.deepcopy(self.network) if network is not None else self.network
            self.network = for_cpu(own, self.stage.network.dims, cpu_bfloat16(self.device, settings))

    @property
    def configuration(self) -> str:
        return self.model.configuration

    @property
    def plans(self) -> Plans:
        return self.model.plans

    @property
    def stage(self) -> StagePlan:
        return self.model.stage

    def probabilities(self, data: np.ndarray) -> np.ndarray:
        """Mean probabilities over folds (K, z, y, x) for preprocessed data (C, z, y, x)."""
        regions = self.plans.regions_class_order is not None

        def per_fold():
            for weights in self.model.fold_weights.values():
                self.network.load_state_dict(weights)
                logits = predict_logits(self.network, data, self.stage, self.device, self.settings)
                yield logits_to_probabilities(logits, regions).numpy()

        return average_probabilities(per_fold())
