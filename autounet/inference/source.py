"""Which trained model to predict with: a dataset's results or an exported model, the
configurations (several form an ensemble), folds, checkpoint, and the postprocessing chosen."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from autounet.autoplan.plans import Plans, load_plans
from autounet.errors import WorkspaceError
from autounet.inference.folds import FoldEnsemble
from autounet.inference.portable import PortableFolds
from autounet.inference.runtimes import open_session
from autounet.inference.settings import ONNX_BACKENDS, PredictSettings
from autounet.inference.stage_model import StageModel
from autounet.io.atomic import read_json
from autounet.io.provenance import stale_folds
from autounet.model.archive import unpacked_model
from autounet.model.checkpoint import peek_checkpoint, plans_of
from autounet.model.trained import TrainedModel, load_trained_model
from autounet.workspace import DatasetPaths, ResultsPaths, name_problem

log = logging.getLogger("autounet.inference")


@dataclass(frozen=True)
class ModelSource:
    """Where a model's configurations live, which to use, and its postprocessing rules file.

    folds : None takes every fold trained with ``checkpoint``.
    """

    results: ResultsPaths
    configurations: tuple[str, ...]
    folds: tuple[str, ...] | None = None
    checkpoint: str = "final"
    postprocessing: Path | None = None
    mirror: tuple[bool, ...] | None = None  # a case-level choice: test-time mirroring per configuration
    thresholds: tuple[float, ...] | None = None  # ... and the decision thresholds chosen on the cross-validation
    data: DatasetPaths | None = None  # the dataset's workspace (its preprocessed cases calibrate an int8 network)

    def fold_names(self, configuration: str) -> list[str]:
        """The folds a configuration predicts with: those named, else every one with the checkpoint."""
        return list(self.folds or self.results.trained_folds(configuration, self.checkpoint))

    def plans(self) -> Plans | None:
        """The plans the model was trained with (from one checkpoint), None without a checkpoint."""
        c = self.configurations[0]
        folds = self.fold_names(c)
        path = self.results.fold(c, folds[0]).checkpoint(self.checkpoint) if folds else None
        if path is None or not path.is_file():
            return None
        return plans_of(peek_checkpoint(path))


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def dataset_model(paths: DatasetPaths, configurations: Sequence[str] | None = None,
                  folds: Sequence[str] | None = None, checkpoint: str = "final") -> ModelSource:
    """A dataset's trained model: the configurations asked for (no postprocessing), else the
    chosen best configuration or ensemble with its postprocessing."""
    folds = tuple(str(f) for f in folds) if folds else None
    if configurations:
        _check_trained(paths, configurations, checkpoint)
        return _warn_stale(paths, ModelSource(paths.trained, tuple(configurations), folds, checkpoint, data=paths))
    best = paths.trained.best_configuration
    if not best.is_file():
        trained = [c for c in paths.trained.configurations_with_folds() if paths.trained.trained_folds(c, checkpoint)]
        if not trained:
            raise WorkspaceError(f"nothing is trained yet for {paths.name}: `autounet run {paths.name} --time-budget "
                                 "1h` trains it and chooses the model predict uses")
        raise WorkspaceError(f"no model chosen yet for {paths.name} (trained: {', '.join(trained)}): run `autounet "
                             f"find_best_configuration {paths.name}`, or pass -c {trained[0]}")
    chosen = read_json(best)
    problems = [name_problem(c, "configuration") for c in chosen.get("configurations") or [None]]
    if any(problems):
        raise WorkspaceError(f"{best}: {'; '.join(p for p in problems if p)}")
    return _warn_stale(paths, ModelSource(paths.trained, tuple(chosen["configurations"]), folds, checkpoint,
                                          _existing(paths.trained.postprocessing), *case_level_choice(chosen),
                                          data=paths))


def _warn_stale(paths: DatasetPaths, source: ModelSource) -> ModelSource:
    """Warn about each fold of the model trained on other data than the dataset's now."""
    for c in source.configurations:
        for _, _, line in stale_folds(paths, [c], source.folds or paths.trained.trained_folds(c, source.checkpoint)):
            log.warning("WARNING: %s; this model predicts as it learnt from the old data: `autounet run %s` trains "
                        "it again", line, paths.name)
    return source


def case_level_choice(chosen: dict) -> tuple[tuple[bool, ...] | None, tuple[float, ...] | None]:
    """A case-level model's test-time mirroring and decision thresholds, as the selection chose
    them (None where it did not: a segmentation model, or thresholds of a multi-class model)."""
    mirror, thresholds = chosen.get("mirror"), chosen.get("thresholds")
    return (tuple(bool(m) for m in mirror) if isinstance(mirror, list) else None,
            tuple(float(t) for t in thresholds) if isinstance(thresholds, list) else None)


def _check_trained(paths: DatasetPaths, configurations: Sequence[str], checkpoint: str) -> None:
    """Each configuration asked for is planned and has a trained fold; else what would work."""
    planned = sorted(load_plans(paths.plans).configurations) if paths.plans.is_file() else None
    for c in configurations:
        if planned is not None and c not in planned:
            trained = [p for p in planned if paths.trained.trained_folds(p, checkpoint)]
            raise WorkspaceError(f"configuration {c!r} is not planned for {paths.name}; planned: {', '.join(planned)}"
                                 + (f"; trained: {', '.join(trained)} (e.g. -c {trained[0]})" if trained else
                                    f"; none trained yet (autounet run {paths.name})"))
        if name_problem(c, "configuration") is None and not paths.trained.trained_folds(c, checkpoint):
            raise WorkspaceError(f"{paths.name}: {c} has no fold with a {checkpoint} checkpoint yet; train it with "
                                 f"`autounet train {paths.name} {c} 0 1 2 3 4 --save-probabilities`, or "
                                 f"`autounet run {paths.name}`")


@contextmanager
def archived_model(zip_path: Path, configurations: Sequence[str] | None = None, folds: Sequence[str] | None = None,
                   checkpoint: str = "final") -> Iterator[ModelSource]:
    """An exported model zip, unpacked for the duration of the block: the configurations asked
    for, else those it was exported with, and the postprocessing it carries."""
    with unpacked_model(zip_path) as (results, manifest):
        held = manifest.get("stages") or manifest["configurations"]
        missing = sorted(set(configurations or ()) - set(held))
        if missing:
            raise WorkspaceError(f"{zip_path}: holds the configuration(s) {', '.join(held)}, not {', '.join(missing)}")
        yield ModelSource(results, tuple(configurations or manifest["configurations"]),
                          tuple(str(f) for f in folds) if folds else tuple(manifest["folds"]), checkpoint,
                          _existing(results.postprocessing), *case_level_choice({} if configurations else manifest))


def _runtime_folds(trained: TrainedModel, settings: PredictSettings, previous: StageModel | None,
                   data: DatasetPaths | None) -> PortableFolds:
    """A configuration's folds exported to ONNX in memory and run by ``settings.runtime``
    (quantized to int8 first with ``settings.int8``, calibrated on ``data``'s preprocessed cases)."""
    import torch

    from autounet.hardware import cpu_int8_may_saturate, user_cache
    from autounet.inference.quantize import calibration_patch, calibration_windows, cached_int8, fold_training_cases
    from autounet.model.onnx_export import network_onnx

    stage = trained.stage
    if settings.int8 and data is None:
        raise WorkspaceError("--int8 calibrates on the dataset's preprocessed training cases: predict with -d "
                             "DATASET (not an exported model), or without --int8")
    network = trained.network(torch.device("cpu"))
    sessions = {}
    for fold, weights in trained.fold_weights.items():
        network.load_state_dict(weights)
        graph = network_onnx(network, stage, any_size=settings.int8)
        if settings.int8:
            windows = calibration_windows(data.data_folder(stage.data_identifier),
                                          calibration_patch(stage.patch_size, stage.network.strides),
                                          stage.network.dims, fold_training_cases(data.splits, fold))
            graph = cached_int8(graph, windows, user_cache() / "int8", cpu_int8_may_saturate())
        sessions[fold] = open_session(graph, settings.runtime, settings.cpu_bfloat16())
    return PortableFolds(trained.configuration, trained.plans, sessions, settings, previous)


def _stage_model(trained: TrainedModel, settings: PredictSettings, previous: StageModel | None,
                 data: DatasetPaths | None) -> StageModel:
    if settings.runtime in ONNX_BACKENDS:
        return _runtime_folds(trained, settings, previous, data)
    return FoldEnsemble(trained, settings, previous)


def load_models(source: ModelSource, settings: PredictSettings) -> list[StageModel]:
    """Each configuration's folds (with a cascade's previous stage), run by torch on the settings'
    device, or by the ONNX backend they name on the CPU."""
    if settings.runtime in ONNX_BACKENDS:
        settings.check_cpu_only("--int8" if settings.int8 else f"--backend {settings.backend}")
    models = []
    for configuration in source.configurations:
        trained = load_trained_model(source.results, configuration, source.folds, source.checkpoint)
        previous = None
        if trained.stage.previous_stage:
            earlier = load_trained_model(source.results, trained.stage.previous_stage, list(trained.fold_weights),
                                         source.checkpoint)
            previous = _stage_model(earlier, settings, None, source.data)
        models.append(_stage_model(trained, settings, previous, source.data))
        log.info("%s: folds %s (%s%s)", configuration, " ".join(trained.fold_weights),
                 settings.runtime if settings.runtime in ONNX_BACKENDS else "torch", ", int8" if settings.int8 else "")
    return models
