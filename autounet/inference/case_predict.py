"""Case-level prediction: whole inputs through each fold's network (and its mirrored copies),
outputs averaged; new images read and prepared exactly as the training cases were."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from autounet.autoplan.plans import CaseTaskPlan, StagePlan
from autounet.errors import WorkspaceError
from autounet.hardware import autocast_for, resolve_device
from autounet.inference.cases import NewCase, check_input
from autounet.inference.records import CaseRecord, peak_memory_mb
from autounet.inference.settings import OutputOptions, PredictionReport, PredictSettings
from autounet.inference.windows import mirror_flips
from autounet.io.image_io import ImageReadError
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


def read_inputs(cases: Sequence[NewCase], models: Sequence[TrainedModel]
                ) -> tuple[list[str], list[list[np.ndarray]], dict[str, str]]:
    """Read new cases and prepare each for every model (their input sizes may differ): the case
    ids read, the inputs per model, and the cases that could not be read (as problems)."""
    ids, data, failed = [], [[] for _ in models], {}
    for case in cases:
        try:
            images, geometry = case.read()
            check_input(images, geometry, models[0].plans, case.source)
            prepared = [case_input(images, m.plans, m.stage) for m in models]
        except (ImageReadError, ValueError) as e:
            failed[case.case_id] = str(e)
            continue
        ids.append(case.case_id)
        for inputs, x in zip(data, prepared):
            inputs.append(x)
    return ids, data, failed


@dataclass
class CaseModels:
    """A case-level model loaded once: each configuration's folds, a network per configuration to
    load them into, the device, and test-time mirroring per configuration."""

    models: list[TrainedModel]
    networks: list[torch.nn.Module]
    device: torch.device
    mirror: list[bool]

    @property
    def plan(self) -> CaseTaskPlan:
        plan = self.models[0].plans.case_task
        assert plan is not None
        return plan


def load_case_models(source, settings: PredictSettings) -> CaseModels:
    """A case-level ``source``'s (:class:`autounet.inference.source.ModelSource`) folds on the
    settings' device, mirrored as the selection chose (``settings.mirror`` off: never)."""
    from autounet.model.trained import load_trained_model

    device = resolve_device(settings.device)
    models = [load_trained_model(source.results, c, source.folds, source.checkpoint) for c in source.configurations]
    mirror = ([bool(m) and settings.mirror for m in source.mirror] if source.mirror is not None
              else [settings.mirror] * len(models))
    for m, mi in zip(models, mirror):
        log.info("%s: folds %s%s", m.configuration, " ".join(m.fold_weights), ", mirrored copies averaged" if mi else "")
    return CaseModels(models, [m.network(device) for m in models], device, mirror)


def predict_case_level(loaded: CaseModels, cases: Sequence[NewCase], settings: PredictSettings
                       ) -> tuple[list[str], np.ndarray, dict[str, str], float]:
    """Case ids, outputs (N, K) averaged over the configurations and their folds, the cases that
    failed, and the seconds spent. Cases are read ``CASE_BATCH`` at a time, so memory holds one
    chunk of inputs, not the whole folder."""
    ids, outputs, failed, start = [], [], {}, time.perf_counter()
    batches = range(0, len(cases), CASE_BATCH)
    for first in (progress(batches, desc="predict", unit="batch") if len(cases) > 1 else batches):
        chunk_ids, data, chunk_failed = read_inputs(cases[first:first + CASE_BATCH], loaded.models)
        failed.update(chunk_failed)
        if chunk_ids:
            per_model = [ensemble_outputs(m, net, d, loaded.device, mi, settings.amp)
                         for m, net, d, mi in zip(loaded.models, loaded.networks, data, loaded.mirror)]
            ids += chunk_ids
            outputs.append(sum(per_model) / len(loaded.models))
    return ids, np.concatenate(outputs) if outputs else np.zeros((0, 0)), failed, time.perf_counter() - start


def csv_output(output: Path, part: tuple[int, int] | None = None) -> Path:
    """Where the predictions CSV goes: ``output`` itself when it ends in .csv, else
    ``output/predictions.csv``; one part of a split run (``--part K --parts N``) writes
    ``<name>_partKofN.csv`` beside it."""
    output = Path(output)
    path = output if output.suffix.lower() == ".csv" else output / "predictions.csv"
    return path.with_name(f"{path.stem}_part{part[0]}of{part[1]}.csv") if part is not None else path


def kept_rows(path: Path, resume: bool, overwrite: bool) -> dict[str, np.ndarray]:
    """The rows of an existing predictions CSV that a resumed run keeps (case id -> outputs);
    without ``resume`` or ``overwrite`` an existing CSV is refused: ``-o labelsTs.csv`` is the
    reference table."""
    from autounet.inference.case_outputs import read_predictions

    if not path.exists() or overwrite:
        return {}
    if not resume:
        raise WorkspaceError(f"{path}: exists already; predict does not replace it (pass --continue to add the "
                             "missing cases to it, --overwrite to replace it, or choose another -o)")
    return read_predictions(path)[2]


def predict_to_csv(loaded: CaseModels, source, cases: Sequence[NewCase], settings: PredictSettings,
                   options: OutputOptions) -> PredictionReport:
    """Predict new cases with a loaded case-level model and write the predictions CSV (with
    ``options.resume``, the rows of a partial CSV are kept and its cases not predicted again)."""
    from autounet.inference.case_outputs import write_predictions

    path = csv_output(options.output, options.part)
    kept = kept_rows(path, options.resume, options.overwrite)
    todo = [c for c in cases if c.case_id not in kept]
    ids, outputs, failed, seconds = predict_case_level(loaded, todo, settings) if todo else ([], None, {}, 0.0)
    report = PredictionReport(failed=failed, skipped=sorted(c.case_id for c in cases if c.case_id in kept))
    if ids or kept:
        all_ids = list(kept) + ids
        rows = np.array([*kept.values(), *(outputs if ids else [])])
        write_predictions(path, loaded.plan.task, loaded.plan.names, all_ids, rows, source.thresholds)
        report.written.append(path)
    for case in todo:
        if case.case_id in ids:
            report.cases[case.case_id] = CaseRecord(tuple(str(f) for f in case.inputs), str(path), 0.0,
                                                    round(seconds / len(ids), 3), 0.0, peak_memory_mb())
    return report
