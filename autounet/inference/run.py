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
import time
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
from autounet.inference.records import CaseTiming, peak_memory_mb, reset_device_peak
from autounet.inference.settings import PredictionReport, PredictSettings
from autounet.inference.stage_model import StageModel, network_input, stage_inputs
from autounet.io.atomic import check_writable, write_npy
from autounet.io.geometry import Geometry
from autounet.io.image_io import ImageReadError

log = logging.getLogger("autounet.inference")
Postprocess = Callable[[np.ndarray], np.ndarray]
StageResult = tuple[np.ndarray, Plans, StagePlan]  # probabilities in a stage's preprocessed space


def _prepare(job: tuple[Case, list[StageInput]]) -> tuple[Prepared | str, float]:
    """Worker: a case made ready for the networks, or the reason it cannot be; and the seconds it took."""
    case, stages = job
    start = time.perf_counter()
    try:
        return case.prepare(stages), time.perf_counter() - start
    except (ImageReadError, ValueError) as e:
        return str(e), time.perf_counter() - start


def network_results(models: Sequence[StageModel], prepared: Prepared) -> list[StageResult]:
    """Each configuration's probabilities for a prepared case, in its preprocessed space."""
    return [(m.probabilities(network_input(m, prepared)), m.plans, m.stage) for m in models]


def final_labels(results: list[StageResult], geometry: Geometry, postprocess: Postprocess | None,
                 with_probabilities: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The label map (Z, Y, X) in the case's original geometry, postprocessed, and (on request)
    the probabilities (K, Z, Y, X) there: what is written for a case, or handed back in memory."""
    seg, probabilities = labels_in_original_space(results, geometry, with_probabilities)
    return (postprocess(seg) if postprocess is not None else seg), probabilities


def _write(case: Case, results: list[StageResult], geometry: Geometry, save_probabilities: bool,
           postprocess: Postprocess | None) -> tuple[Path, float, float | None]:
    """Writer thread: a case's outputs in its original geometry (and a cascade's next-stage
    input); the file written, the seconds it took and the process's peak memory by then."""
    start = time.perf_counter()
    if case.next_stage is not None:
        shape, path = case.next_stage
        probs, plans, _ = results[0]
        write_npy(path, labels_at(probs, shape, plans))
    seg, probabilities = final_labels(results, geometry, postprocess, save_probabilities)
    meta = prediction_meta(case.case_id, geometry, case.ending, results[0][1]) if save_probabilities else None
    labels = results[0][1].labels
    written = write_prediction(case.output, case.ending, seg, geometry, probabilities, meta,
                               lambda s, g, path: case.write_mask(s, g, labels, path))
    return written, time.perf_counter() - start, peak_memory_mb()


def stage_inputs_of(models: Sequence[StageModel]) -> list[StageInput]:
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
    stages = stage_inputs_of(models)
    jobs = [(c, stages) for c in cases]
    for folder in {c.output.parent for c in cases}:  # before any work: an output that cannot be written fails now
        check_writable(folder).mkdir(parents=True, exist_ok=True)
    prep = (ProcessPoolExecutor(settings.processes, mp_context=mp.get_context("spawn"))
            if settings.processes > 0 and len(cases) > 1 else None)
    writes: list[tuple[Case, CaseTiming, Future]] = []
    ahead = max(1, settings.processes) + 1
    with ThreadPoolExecutor(1) as writer:
        try:
            pending = [prep.submit(_prepare, j) for j in jobs[:ahead]] if prep else []
            for i, case in enumerate(progress(cases, desc=desc, unit="case")):
                prepared, prepare_s = pending[i].result() if prep else _prepare(jobs[i])
                if prep and i + ahead < len(jobs):
                    pending.append(prep.submit(_prepare, jobs[i + ahead]))
                if isinstance(prepared, str):
                    report.failed[case.case_id] = prepared
                    log.error("skipped %s: %s", case.case_id, prepared)
                    continue
                start, device_peak = time.perf_counter(), reset_device_peak()
                results = network_results(models, prepared)
                timing = CaseTiming(prepare_s, time.perf_counter() - start, device_peak())
                writes.append((case, timing, writer.submit(_write, case, results, prepared.geometry,
                                                           settings.save_probabilities, postprocess)))
        finally:
            if prep is not None:
                prep.shutdown(cancel_futures=True)
    for case, timing, fut in writes:
        try:
            written, write_s, peak = fut.result()
        except (OSError, ValueError, RuntimeError) as e:
            report.failed[case.case_id] = f"{case.output}: could not be written ({e})"
            log.error("failed to write %s: %s", case.output, e)
            continue
        report.written.append(written)
        report.cases[case.case_id] = timing.record(case, written, write_s, peak)
    return report
