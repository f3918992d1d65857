"""Predict cases with one or several configurations: the one entry of inference.

`autounet predict` and training's final validation both call :func:`predict` with one
:class:`~autounet.inference.settings.PredictSettings`. For each case: prepare it (read, check
and preprocess it for every configuration, in worker processes when ``settings.processes`` > 0);
let each configuration's folds predict it (a cascade's previous stage first); average the
configurations, if several, at the original resolution; postprocess; write. While the networks
predict one case, workers prepare the next ones and a thread exports and writes the previous one.
A case that cannot be read or does not fit the model is reported and skipped; the others are
still predicted.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from autounet.progress import progress

from autounet.autoplan.plans import Plans, StagePlan
from autounet.inference.cascade import labels_at
from autounet.inference.cases import Case, Prepared, StageInput
from autounet.inference.original_space import labels_in_original_space
from autounet.inference.outputs import prediction_meta, write_prediction
from autounet.inference.settings import PredictionReport, PredictSettings
from autounet.inference.stage_model import StageModel, network_input, stage_inputs
from autounet.io.atomic import check_writable, write_npy
from autounet.io.geometry import Geometry
from autounet.io.image_io import ImageReadError

log = logging.getLogger("autounet.inference")
Postprocess = Callable[[np.ndarray], np.ndarray]
StageResult = tuple[np.ndarray, Plans, StagePlan]  # probabilities in a stage's preprocessed space


def _prepare(job: tuple[Case, list[StageInput]]) -> Prepared | str:
    """Worker: a case made ready for the networks, or the reason it cannot be."""
    case, stages = job
    try:
        return case.prepare(stages)
    except (ImageReadError, ValueError) as e:
        return str(e)


def _write(case: Case, results: list[StageResult], geometry: Geometry, save_probabilities: bool,
           postprocess: Postprocess | None) -> Path:
    """Writer thread: a case's outputs in its original geometry (and a cascade's next-stage input)."""
    if case.next_stage is not None:
        shape, path = case.next_stage
        probs, plans, _ = results[0]
        write_npy(path, labels_at(probs, shape, plans))
    seg, probabilities = labels_in_original_space(results, geometry, save_probabilities)
    if postprocess is not None:
        seg = postprocess(seg)
    meta = prediction_meta(case.case_id, geometry, case.ending, results[0][1]) if save_probabilities else None
    return write_prediction(case.output, case.ending, seg, geometry, probabilities, meta)


def _stage_inputs(models: Sequence[StageModel]) -> list[StageInput]:
    """Every configuration a case must be preprocessed for, once each."""
    unique: dict[str, StageInput] = {}
    for m in models:
        for s in stage_inputs(m):
            unique.setdefault(s.configuration, s)
    return list(unique.values())


def predict(models: Sequence[StageModel], cases: Sequence[Case], settings: PredictSettings,
            postprocess: Postprocess | None = None, desc: str = "predict") -> PredictionReport:
    """Predict every case with every configuration of ``models`` (averaged when several), each
    averaged over its folds; ``postprocess`` maps the final label map. See the module docstring."""
    report = PredictionReport()
    stages = _stage_inputs(models)
    jobs = [(c, stages) for c in cases]
    for folder in {c.output.parent for c in cases}:  # before any work: an output that cannot be written fails now
        check_writable(folder).mkdir(parents=True, exist_ok=True)
    prep = (ProcessPoolExecutor(settings.processes, mp_context=mp.get_context("spawn"))
            if settings.processes > 0 and len(cases) > 1 else None)
    writes: list[tuple[Case, Future]] = []
    ahead = max(1, settings.processes) + 1
    with ThreadPoolExecutor(1) as writer:
        try:
            pending = [prep.submit(_prepare, j) for j in jobs[:ahead]] if prep else []
            for i, case in enumerate(progress(cases, desc=desc, unit="case")):
                prepared = pending[i].result() if prep else _prepare(jobs[i])
                if prep and i + ahead < len(jobs):
                    pending.append(prep.submit(_prepare, jobs[i + ahead]))
                if isinstance(prepared, str):
                    report.failed[case.case_id] = prepared
                    log.error("skipped %s: %s", case.case_id, prepared)
                    continue
                results = [(m.probabilities(network_input(m, prepared)), m.plans, m.stage) for m in models]
                writes.append((case, writer.submit(_write, case, results, prepared.geometry,
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
