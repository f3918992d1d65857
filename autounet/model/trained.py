"""A trained configuration, loaded from its checkpoints alone (weights_only), ready to predict."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import torch

from autounet.autoplan.plans import Plans, StagePlan
from autounet.errors import WorkspaceError
from autounet.model.checkpoint import load_checkpoint
from autounet.model.build import build_network
from autounet.workspace import ResultsPaths


@dataclass
class TrainedModel:
    """The folds of one configuration: their shared plans and each fold's weights."""

    plans: Plans
    configuration: str
    fold_weights: dict[str, dict[str, torch.Tensor]]

    @property
    def stage(self) -> StagePlan:
        return self.plans.configurations[self.configuration]

    def network(self, device: torch.device) -> torch.nn.Module:
        """One network to load each fold's weights into in turn (saves memory over one per fold)."""
        net = build_network(self.stage.network, deep_supervision=False)
        return net.to(device).eval()


def load_trained_model(results: ResultsPaths, configuration: str, folds: Sequence[str | int] | None = None,
                       checkpoint: str = "final") -> TrainedModel:
    """Load the folds of a configuration (every fold with the checkpoint when ``folds`` is None)."""
    folder = results.configuration(configuration)
    folds = [str(f) for f in folds] if folds else results.trained_folds(configuration, checkpoint)
    if not folds:
        raise WorkspaceError(f"{folder}: no fold has a {checkpoint} checkpoint; train first "
                             f"(autounet train {results.root.name} {configuration} 0 1 2 3 4)")
    weights, plans_json, name = {}, None, None
    for fold in folds:
        path = results.fold(configuration, fold).checkpoint(checkpoint)
        if not path.is_file():
            raise WorkspaceError(f"{path}: missing; train fold {fold} first or choose other folds with -f")
        ckpt = load_checkpoint(path)
        if plans_json is None:
            plans_json, name = ckpt["plans"], ckpt["configuration"]
        elif json.loads(ckpt["plans"]) != json.loads(plans_json):
            raise WorkspaceError(f"{path}: trained with different plans than fold {folds[0]}; cannot ensemble them")
        weights[fold] = ckpt["network"]
    return TrainedModel(Plans.from_json(json.loads(plans_json)), name, weights)
