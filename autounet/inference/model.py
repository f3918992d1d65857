"""A trained configuration, loaded from its checkpoints alone (weights_only), ready to predict."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from autounet.autoplan.plans import Plans, StagePlan
from autounet.errors import WorkspaceError
from autounet.training.checkpoint import load_checkpoint
from autounet.training.network import build_network

CHECKPOINTS = {"final": "checkpoint_final.pt", "best": "checkpoint_best.pt", "latest": "checkpoint_latest.pt"}


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


def available_folds(config_folder: Path, checkpoint: str = "final") -> list[str]:
    """Folds of a configuration folder that have the checkpoint."""
    name = CHECKPOINTS[checkpoint]
    return sorted(p.parent.name.removeprefix("fold_") for p in Path(config_folder).glob(f"fold_*/{name}"))


def load_trained_model(config_folder: Path, folds: Sequence[str | int] | None = None,
                       checkpoint: str = "final") -> TrainedModel:
    """Load the folds of ``results/DATASET/CONFIG`` (all trained folds when ``folds`` is None)."""
    config_folder = Path(config_folder)
    name = CHECKPOINTS[checkpoint]
    folds = [str(f) for f in folds] if folds else available_folds(config_folder, checkpoint)
    if not folds:
        raise WorkspaceError(f"{config_folder}: no fold has a {name}; train first "
                             f"(autounet train DATASET {config_folder.name} FOLD)")
    weights, plans_json, configuration = {}, None, None
    for fold in folds:
        path = config_folder / f"fold_{fold}" / name
        if not path.is_file():
            raise WorkspaceError(f"{path}: missing; train fold {fold} first or choose other folds with -f")
        ckpt = load_checkpoint(path)
        if plans_json is None:
            plans_json, configuration = ckpt["plans"], ckpt["configuration"]
        elif json.loads(ckpt["plans"]) != json.loads(plans_json):
            raise WorkspaceError(f"{path}: trained with different plans than fold {folds[0]}; cannot ensemble them")
        weights[fold] = ckpt["network"]
    return TrainedModel(Plans.from_json(json.loads(plans_json)), configuration, weights)
