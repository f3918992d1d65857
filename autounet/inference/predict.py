"""Predict new images: preprocess as in training, sliding windows over every fold, back to the
original geometry, written in the input's format.

Throughput: while the network predicts one case, a worker process reads and preprocesses the
next ones and a thread exports and writes the previous one. A bad input (unreadable, wrong
channel count, wrong dimensionality) is reported and skipped; the others are still predicted.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import re
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from autounet.autoplan.plans import Plans, StagePlan
from autounet.inference.export import (export_probabilities, logits_to_probabilities, prediction_meta,
                                       probabilities_to_labels)
from autounet.inference.model import TrainedModel
from autounet.inference.predictor import predict_logits, with_previous_stage
from autounet.io.atomic import write_json, write_npz
from autounet.io.geometry import Geometry
from autounet.io.image_io import SUPPORTED_ENDINGS, ImageReadError, read_channels, reader_for, write_segmentation
from autounet.preprocess.pipeline import preprocess_for_prediction
from autounet.preprocess.resample import resample_to_shape

log = logging.getLogger("autounet.inference")
_ENDINGS = "|".join(re.escape(e) for e in sorted(SUPPORTED_ENDINGS, key=len, reverse=True))
_CHANNEL_FILE = re.compile(rf"^(.+)_(\d{{4}})({_ENDINGS})$", re.IGNORECASE)


@dataclass(frozen=True)
class PredictSettings:
    """How to predict: test-time mirroring, window step, outputs, preprocessing workers."""

    mirror: bool = True
    step: float = 0.5
    save_probabilities: bool = False
    amp: bool = True  # float16 on CUDA (a CPU predicts in float32)
    processes: int = 1  # preprocessing worker processes (0: in the main process)


@dataclass
class PredictionReport:
    """What happened to each case."""

    written: list[Path] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CaseInput:
    case_id: str
    files: tuple[Path, ...]
    ending: str
    output: Path


def find_inputs(folder: Path, output_folder: Path) -> tuple[list[CaseInput], dict[str, str]]:
    """Group CASE_XXXX.ext files by case; files that do not fit are returned as problems."""
    groups: dict[tuple[str, str], dict[int, Path]] = {}
    problems = {}
    for p in sorted(Path(folder).iterdir()):
        if p.name.startswith(".") or p.is_dir():
            continue
        m = _CHANNEL_FILE.match(p.name)
        if m is None:
            problems[p.name] = f"{p}: not an input image named CASE_XXXX.ext ({', '.join(SUPPORTED_ENDINGS)})"
            continue
        groups.setdefault((m.group(1), m.group(3)), {})[int(m.group(2))] = p
    cases = []
    for (case_id, ending), files in sorted(groups.items()):
        ordered = tuple(files[i] for i in sorted(files))
        cases.append(CaseInput(case_id, ordered, ending, Path(output_folder) / f"{case_id}{ending}"))
    return cases, problems


def check_input(images: np.ndarray, geometry: Geometry, plans: Plans, source: Path) -> None:
    """Reject inputs the model cannot take: wrong channel count or dimensionality."""
    if images.shape[0] != len(plans.channel_names):
        raise ImageReadError(f"{source}: {images.shape[0]} channel(s), the model takes {len(plans.channel_names)} "
                             f"({', '.join(plans.channel_names)}); missing or extra _XXXX files?")
    flat = geometry.file_dims == 2 or geometry.shape[0] == 1
    if plans.file_dims == 3 and flat:
        raise ImageReadError(f"{source}: a 2D image, but the model was trained on 3D volumes")
    if plans.file_dims == 2 and not flat:
        raise ImageReadError(f"{source}: a 3D volume of shape {geometry.shape}, but the model was trained on 2D images")


def _prepare(args: tuple[CaseInput, Plans, StagePlan]):
    """Worker: read, check and preprocess one case; returns (data, geometry, raw) or an error text."""
    case, plans, stage = args
    try:
        images, geometry = read_channels(list(case.files), reader_for(case.ending))
        check_input(images, geometry, plans, case.files[0])
        data, geo = preprocess_for_prediction(images, geometry, plans, stage)
        return data, geo, (images, geometry)
    except (ImageReadError, ValueError) as e:
        return str(e)


class Predictor:
    """Predicts with every fold of a configuration (and its previous stage, for the cascade)."""

    def __init__(self, model: TrainedModel, device: torch.device, settings: PredictSettings,
                 previous: "Predictor | None" = None):
        self.model, self.device, self.settings, self.previous = model, device, settings, previous
        self.network = model.network(device)
        self.regions = model.plans.regions_class_order is not None

    @property
    def plans(self) -> Plans:
        return self.model.plans

    def probabilities(self, data: np.ndarray) -> np.ndarray:
        """Mean probabilities over folds (K, z, y, x) for preprocessed data."""
        total = None
        for weights in self.model.fold_weights.values():
            self.network.load_state_dict(weights)
            logits = predict_logits(self.network, data, self.model.stage, self.device, self.settings.mirror,
                                    self.settings.step, amp=self.settings.amp)
            p = logits_to_probabilities(logits, self.regions).numpy()
            total = p if total is None else total + p
        return total / len(self.model.fold_weights)

    def cascade_input(self, data: np.ndarray, raw: tuple[np.ndarray, Geometry]) -> np.ndarray:
        """Append the previous stage's one-hot prediction, upsampled to this stage's data."""
        if self.previous is None:
            return data
        prev_data, _ = preprocess_for_prediction(raw[0], raw[1], self.previous.plans, self.previous.model.stage)
        probs = resample_to_shape(self.previous.probabilities(prev_data), data.shape[1:], None, "linear")
        n_prev = self.model.stage.network.input_channels - len(self.plans.channel_names)
        return with_previous_stage(data, probabilities_to_labels(probs, self.previous.plans.regions_class_order), n_prev)


def _write(case: CaseInput, probs: np.ndarray, geometry: Geometry, plans: Plans, stage: StagePlan,
           save_probabilities: bool, postprocess: Callable[[np.ndarray], np.ndarray] | None) -> Path:
    seg, full_probs = export_probabilities(probs, geometry, plans, stage)
    if postprocess is not None:
        seg = postprocess(seg)
    write_segmentation(seg, geometry, case.output)
    if save_probabilities:
        stem = case.output.name[: -len(case.ending)]
        write_npz(case.output.with_name(f"{stem}.npz"), {"probabilities": full_probs.astype(np.float16)})
        write_json(case.output.with_name(f"{stem}.json"), prediction_meta(case.case_id, geometry, case.ending, plans))
    return case.output


def predict_cases(predictor: Predictor, cases: list[CaseInput],
                  postprocess: Callable[[np.ndarray], np.ndarray] | None = None) -> PredictionReport:
    """Predict every case, overlapping preprocessing, prediction and writing."""
    report = PredictionReport()
    plans, stage, settings = predictor.plans, predictor.model.stage, predictor.settings
    jobs = [(c, plans, stage) for c in cases]
    prep = (ProcessPoolExecutor(settings.processes, mp_context=mp.get_context("spawn"))
            if settings.processes > 0 and len(cases) > 1 else None)
    writes: list[tuple[CaseInput, Future]] = []
    ahead = max(1, settings.processes) + 1
    with ThreadPoolExecutor(1) as writer:
        try:
            pending = [prep.submit(_prepare, j) if prep else None for j in jobs[:ahead]]
            for i, case in enumerate(tqdm(cases, desc="predict", unit="case")):
                prepared = pending[i].result() if prep else _prepare(jobs[i])
                if prep and i + ahead < len(jobs):
                    pending.append(prep.submit(_prepare, jobs[i + ahead]))
                if isinstance(prepared, str):
                    report.failed[case.case_id] = prepared
                    log.error("skipped %s: %s", case.case_id, prepared)
                    continue
                data, geometry, raw = prepared
                probs = predictor.probabilities(predictor.cascade_input(data, raw))
                writes.append((case, writer.submit(_write, case, probs, geometry, plans, stage,
                                                   settings.save_probabilities, postprocess)))
        finally:
            if prep is not None:
                prep.shutdown(cancel_futures=True)
    for case, fut in writes:
        try:
            report.written.append(fut.result())
        except (OSError, ValueError, RuntimeError) as e:
            report.failed[case.case_id] = f"{case.output}: could not be written ({e})"
            log.error("failed to write %s: %s", case.output, e)
    return report
