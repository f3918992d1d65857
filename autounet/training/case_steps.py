"""A case-level fold's validation: each epoch's score on every validation case, and the final
validation that writes the cross-validation predictions (with and without test-time mirroring,
so that selection can tell whether mirroring helps)."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from autounet.hardware import autocast_for
from autounet.inference.case_outputs import reference_values, write_predictions
from autounet.inference.case_predict import network_outputs, to_outputs
from autounet.io.atomic import write_json
from autounet.postprocess.case_metrics import case_metrics, validation_score
from autounet.training.batches import to_device
from autounet.training.case_batches import open_cases, unstandardized
from autounet.training.setup import FoldSetup
from autounet.training.state import Run
from autounet.workspace import case_predictions_file


def case_validation_epoch(run: Run, batches: Iterator) -> tuple[float, list[float]]:
    """Loss and the validation score (AUC, or -MAE for regression) over every validation case."""
    plan = run.setup.plans.case_task
    run.network.eval()
    losses, outputs, targets = [], [], []
    with torch.no_grad():
        for batch in batches:
            x, y = to_device(batch, run.device)
            with autocast_for(run.device, run.config.amp):
                logits = run.network(x)
            losses.append((run.loss(logits, y).item(), len(y)))
            outputs.append(to_outputs(logits, plan).cpu().numpy())
            targets.append(unstandardized(y.float().cpu().numpy(), plan))
    loss = sum(v * n for v, n in losses) / max(1, sum(n for _, n in losses))
    y_true = reference_values(np.concatenate(targets), plan.task)
    metrics = case_metrics(plan.task, y_true, np.concatenate(outputs).astype(np.float64), plan.names)
    return float(loss), [validation_score(plan.task, metrics)]


def validate_cases(setup: FoldSetup, network: torch.nn.Module, device: torch.device, amp: bool) -> dict:
    """Predict the fold's validation cases (mirrored copies averaged, and without), write both
    prediction CSVs and the summary with the metrics of each; returns the summary."""
    plan = setup.plans.case_task
    data, targets = open_cases(setup, setup.val_ids)
    y_true = reference_values(targets, plan.task)
    summary: dict = {"task": plan.task, "names": list(plan.names)}
    for mirror in (True, False):
        outputs = network_outputs(network, data, setup.stage, plan, device, mirror, amp)
        write_predictions(case_predictions_file(setup.output.validation, mirror), plan.task, plan.names,
                          setup.val_ids, outputs)
        metrics = case_metrics(plan.task, y_true, outputs, plan.names)
        summary["mirrored" if mirror else "plain"] = {**metrics, "score": validation_score(plan.task, metrics)}
    write_json(setup.output.validation_summary, summary)
    return summary
