"""``find_best_configuration``: score what was trained on the cross-validation and choose, the
way the dataset's task chooses (:mod:`autounet.postprocess.tasks`); write cross_validation.json
and best_configuration.json from the typed result."""

from __future__ import annotations

import logging
from typing import Sequence

from autounet.autoplan.plans import load_plans
from autounet.io.atomic import read_json, write_json
from autounet.io.provenance import stale_folds
from autounet.postprocess.selections import Selection
from autounet.postprocess.tasks import task_for
from autounet.workspace import DatasetPaths

log = logging.getLogger("autounet")


def find_best_configuration(paths: DatasetPaths, configurations: Sequence[str] | None = None,
                            ensembles: bool = True, processes: int = 1) -> Selection:
    """Score configurations and pair ensembles on the CV and pick the best (and, for a
    segmentation, its postprocessing); writes cross_validation.json and best_configuration.json."""
    plans = load_plans(paths.plans)
    splits = read_json(paths.splits)
    for _, _, line in stale_folds(paths, configurations or paths.trained.configurations_with_folds(),
                                  range(len(splits))):
        log.warning("WARNING: %s; its validation predictions come from a model of the old data: train it again "
                    "(autounet run does) before trusting this choice", line)
    selection = task_for(plans).select(paths, plans, splits, configurations, ensembles, processes)
    write_json(paths.trained.cross_validation, selection.to_json())
    write_json(paths.trained.best_configuration, selection.best_configuration(paths.trained.postprocessing.name))
    return selection
