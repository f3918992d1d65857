"""Case-level prediction: whole inputs through each fold's network (and its mirrored copies),
outputs averaged; new images read and prepared exactly as the training cases were."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from autounet.autoplan.plans import CaseTaskPlan, StagePlan
from autounet.errors import WorkspaceError
from autounet.hardware import autocast_for, resolve_device
from autounet.inference.cases import ImageCase, check_input
from autounet.inference.settings import PredictSettings
from autounet.inference.windows import mirror_flips
from autounet.io.image_io import ImageReadError, read_channels, reader_for
from autounet.model.trained import TrainedModel
from autounet.preprocess.case_level import case_input
from autounet.progress import progress

log = logging.getLogger("autounet.inference")
CASE_BATCH = 64  # inputs per forward pass at prediction


def to_outputs(logits: torch.Tensor, plan: CaseTaskPlan) -> torch.Tensor:
    """Logits (B, K) -> class probabilities (softmax), target probabilities (sigmoid) or values
    in the targets' units (regression: the standardization undone)."""
    logits = logits.float()
    if plan.task == "classification":
        return torch.softmax(logits, 1)
    if plan.task == "multilabel":
        return torch.sigmoid(logits)
    mean = torch.tensor(plan.target_mean, dtype=torch.float32, device=logits.device)
    std = torch.tensor(plan.target_std, dtype=torch.float32, device=logits.device)
    return logits * std + mean


def network_outputs(network: torch.nn.Module, data: Sequence[np.ndarray], stage: StagePlan, plan: CaseTaskPlan,
                    device: torch.device, mirror: bool, amp: bool = True) -> np.ndarray:
    """Outputs (N, K) of one network for inputs (C, Z, Y, X) each (Z = 1 for 2D), averaged over
    the mirrored copies when ``mirror``: probabilities, or values for regression."""
    network.eval()
    dims = len(stage.patch_size)
    flips = mirror_flips(stage.mirror_axes) if mirror else [()]
    out = []
    with torch.no_grad(), autocast_for(device, amp):
        for start in range(0, len(data), CASE_BATCH):
            x = torch.from_numpy(np.stack([np.asarray(d, dtype=np.float32) for d in data[start:start + CASE_BATCH]]))
            x = (x[:, :, 0] if dims == 2 else x).to(device)
            total = sum(to_outputs(network(torch.flip(x, f) if f else x), plan) for f in flips)
            out.append((total / len(flips)).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def ensemble_outputs(model: TrainedModel, network: torch.nn.Module, data: Sequence[np.ndarray],
                     device: torch.device, mirror: bool, amp: bool = True) -> np.ndarray:
    """Outputs (N, K) of a configuration's folds (loaded into ``network`` in turn), averaged."""
    plan = model.plans.case_task
    assert plan is not None
    total = None
    for weights in model.fold_weights.values():
        network.load_state_dict(weights)
        o = network_outputs(network, data, model.stage, plan, device, mirror, amp)
        total = o if total is None else total + o
    return total / len(model.fold_weights)


def read_inputs(cases: Sequence[ImageCase], models: Sequence[TrainedModel]
                ) -> tuple[list[str], list[list[np.ndarray]], dict[str, str]]:
    """Read new cases and prepare each for every model (their input sizes may differ): the case
    ids read, the inputs per model, and the cases that could not be read (as problems)."""
    ids, data, failed = [], [[] for _ in models], {}
    for case in cases:
        try:
            images, geometry = read_channels(list(case.files), reader_for(case.ending))
            check_input(images, geometry, models[0].plans, case.files[0])
            prepared = [case_input(images, m.plans, m.stage) for m in models]
        except (ImageReadError, ValueError) as e:
            failed[case.case_id] = str(e)
            continue
        ids.append(case.case_id)
        for inputs, x in zip(data, prepared):
            inputs.append(x)
    return ids, data, failed


def predict_case_level(models: Sequence[TrainedModel], cases: Sequence[ImageCase], settings: PredictSettings,
                       mirror: Sequence[bool] | None = None) -> tuple[list[str], np.ndarray, dict[str, str]]:
    """Case ids, outputs (N, K) averaged over the models (configurations) and their folds, and the
    cases that failed. ``mirror`` per model (default: ``settings.mirror``). Cases are read
    ``CASE_BATCH`` at a time, so memory holds one chunk of inputs, not the whole folder."""
    device = resolve_device(settings.device)
    mirror = list(mirror) if mirror is not None else [settings.mirror] * len(models)
    networks = [m.network(device) for m in models]
    ids, outputs, failed = [], [], {}
    for start in progress(range(0, len(cases), CASE_BATCH), desc="predict", unit="batch"):
        chunk_ids, data, chunk_failed = read_inputs(cases[start:start + CASE_BATCH], models)
        failed.update(chunk_failed)
        if chunk_ids:
            per_model = [ensemble_outputs(m, net, d, device, mi, settings.amp)
                         for m, net, d, mi in zip(models, networks, data, mirror)]
            ids += chunk_ids
            outputs.append(sum(per_model) / len(models))
    for m, mi in zip(models, mirror):
        log.info("%s: folds %s%s", m.configuration, " ".join(m.fold_weights), ", mirrored copies averaged" if mi else "")
    return ids, np.concatenate(outputs) if outputs else np.zeros((0, 0)), failed


def csv_output(output: Path) -> Path:
    """Where the predictions CSV goes: ``output`` itself when it ends in .csv, else
    ``output/predictions.csv``."""
    output = Path(output)
    return output if output.suffix.lower() == ".csv" else output / "predictions.csv"


def predict_to_csv(source, cases: Sequence[ImageCase], settings: PredictSettings, output: Path,
                   overwrite: bool = False) -> dict[str, str]:
    """Predict new cases with a case-level ``source`` (:class:`autounet.inference.source.ModelSource`)
    and write the predictions CSV; returns the cases that failed. An existing CSV (``-o
    labelsTs.csv``: the reference table) is replaced only with ``overwrite``."""
    from autounet.inference.case_outputs import write_predictions
    from autounet.model.trained import load_trained_model

    if csv_output(output).exists() and not overwrite:
        raise WorkspaceError(f"{csv_output(output)}: exists already; predict does not replace it (pass --overwrite, "
                             "or choose another -o)")

    models = [load_trained_model(source.results, c, source.folds, source.checkpoint) for c in source.configurations]
    mirror = list(source.mirror) if source.mirror is not None and settings.mirror else None
    ids, outputs, failed = predict_case_level(models, cases, settings, mirror)
    plan = models[0].plans.case_task
    if ids:
        write_predictions(csv_output(output), plan.task, plan.names, ids, outputs, source.thresholds)
    return failed
