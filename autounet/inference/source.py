"""Which trained model to predict with: a dataset's results or an exported model, the
configurations (several form an ensemble), folds, checkpoint, and the postprocessing chosen."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from autounet.errors import WorkspaceError
from autounet.inference.folds import FoldEnsemble
from autounet.inference.settings import PredictSettings
from autounet.io.atomic import read_json
from autounet.model.archive import unpacked_model
from autounet.model.trained import load_trained_model
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


def _existing(path: Path) -> Path | None:
    return path if path.is_file() else None


def dataset_model(paths: DatasetPaths, configurations: Sequence[str] | None = None,
                  folds: Sequence[str] | None = None, checkpoint: str = "final") -> ModelSource:
    """A dataset's trained model: the configurations asked for (no postprocessing), else the
    chosen best configuration or ensemble with its postprocessing."""
    folds = tuple(str(f) for f in folds) if folds else None
    if configurations:
        return ModelSource(paths.trained, tuple(configurations), folds, checkpoint)
    best = paths.trained.best_configuration
    if not best.is_file():
        raise WorkspaceError(f"no {best}: run `autounet find_best_configuration {paths.name}` or pass -c CONFIG")
    chosen = read_json(best)
    problems = [name_problem(c, "configuration") for c in chosen.get("configurations") or [None]]
    if any(problems):
        raise WorkspaceError(f"{best}: {'; '.join(p for p in problems if p)}")
    return ModelSource(paths.trained, tuple(chosen["configurations"]), folds, checkpoint,
                       _existing(paths.trained.postprocessing))


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
                          _existing(results.postprocessing))


def load_models(source: ModelSource, settings: PredictSettings) -> list[FoldEnsemble]:
    """Each configuration's folds (with a cascade's previous stage), on the settings' device."""
    models = []
    for configuration in source.configurations:
        trained = load_trained_model(source.results, configuration, source.folds, source.checkpoint)
        previous = None
        if trained.stage.previous_stage:
            earlier = load_trained_model(source.results, trained.stage.previous_stage, list(trained.fold_weights),
                                         source.checkpoint)
            previous = FoldEnsemble(earlier, settings)
        models.append(FoldEnsemble(trained, settings, previous))
        log.info("%s: folds %s", configuration, " ".join(trained.fold_weights))
    return models
