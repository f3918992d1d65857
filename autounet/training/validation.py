"""End-of-training validation: full sliding-window prediction of the fold's validation cases.

Each case's segmentation is written in the original geometry (and its probabilities with
--save-probabilities), then compared with the reference; ``summary.json`` gathers the Dice
per case and class. A case counts as done once its ``.json`` (written last) exists, so an
interrupted validation resumes where it stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from autounet.autoplan.plans import Plans, StagePlan
from autounet.inference.export import (export_prediction, logits_to_probabilities, prediction_meta,
                                       probabilities_to_labels)
from autounet.inference.predictor import predict_logits, with_previous_stage
from autounet.io.atomic import read_json, write_json, write_npy, write_npz
from autounet.io.geometry import Geometry
from autounet.io.image_io import read_segmentation, write_segmentation
from autounet.postprocess.metrics import dice_per_class, foreground_mean, mean_per_class
from autounet.preprocess.resample import resample_to_shape
from autounet.training.data import case_meta

log = logging.getLogger(__name__)


def next_stage_labels(logits: torch.Tensor, shape: tuple[int, ...], plans: Plans) -> np.ndarray:
    """Low-resolution logits -> labels at the next stage's preprocessed shape (for the cascade)."""
    probs = logits_to_probabilities(logits.float(), plans.regions_class_order is not None).numpy()
    probs = resample_to_shape(probs, shape, None, "linear")
    return probabilities_to_labels(probs, plans.regions_class_order).astype(np.int16)


def validate(network: torch.nn.Module, plans: Plans, stage: StagePlan, case_ids: list[str], data_folder: Path,
             gt_folder: Path, out_folder: Path, device: torch.device, *, mirror: bool = True, step: float = 0.5,
             save_probabilities: bool = False, previous_stage_folder: Path | None = None,
             next_stage: tuple[Path, Path] | None = None, amp: bool = True) -> dict:
    """Predict, export and evaluate every validation case; returns the summary written to summary.json.

    next_stage : (next stage's data folder, folder for this stage's predictions at its resolution).
    """
    out_folder.mkdir(parents=True, exist_ok=True)
    classes = plans.evaluation_classes
    n_prev = stage.network.input_channels - len(plans.channel_names)
    per_case = []
    for case_id in tqdm(case_ids, desc="validation", unit="case"):
        marker = out_folder / f"{case_id}.json"
        if marker.is_file():
            per_case.append(read_json(marker))
            continue
        data = np.load(data_folder / f"{case_id}_data.npy", mmap_mode="r")
        prev = np.load(previous_stage_folder / f"{case_id}.npy") if previous_stage_folder else None
        logits = predict_logits(network, with_previous_stage(data, prev, n_prev), stage, device, mirror, step, amp=amp)
        geometry = Geometry.from_json(case_meta(data_folder, case_id)["geometry"])
        seg, probs = export_prediction(logits, geometry, plans, stage)
        write_segmentation(seg, geometry, out_folder / f"{case_id}{plans.file_ending}")
        if save_probabilities:
            write_npz(out_folder / f"{case_id}.npz", {"probabilities": probs.astype(np.float16)})
        if next_stage is not None:
            shape = tuple(case_meta(next_stage[0], case_id)["shape"])
            write_npy(next_stage[1] / f"{case_id}.npy", next_stage_labels(logits, shape, plans))
        ref, _ = read_segmentation(gt_folder / f"{case_id}{plans.file_ending}", plans.reader)
        result = {**prediction_meta(case_id, geometry, plans.file_ending, plans),
                  "metrics": dice_per_class(seg, ref, classes, plans.ignore_label)}
        write_json(marker, result)
        per_case.append(result)
    means = mean_per_class([c["metrics"] for c in per_case])
    summary = {"mean_dice": means, "foreground_mean_dice": foreground_mean(means),
               "cases": [{"case_id": c["case_id"], "metrics": c["metrics"]} for c in per_case]}
    write_json(out_folder / "summary.json", summary)
    return summary
