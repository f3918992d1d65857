"""Train several folds one after the other within one time budget.

The rule: each (configuration, fold) gets the time still left divided by the folds still to
train, so time a fold leaves unused passes on to the next. A fold whose share does not fit one
epoch (a slow or busy machine) gets the time one epoch needs instead, so that the whole job
always finishes. Finished folds are kept; started ones resume.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Sequence

from autounet.training.budget import BudgetTooSmall
from autounet.training.config import TrainingConfig
from autounet.training.fold import train_fold
from autounet.workspace import DatasetPaths

log = logging.getLogger("autounet.training")


def train_folds(paths: DatasetPaths, jobs: Sequence[tuple[str, int | str]], config: TrainingConfig,
                device: str = "auto", total_budget_s: float | None = None) -> list[Path]:
    """Train (or resume) each (configuration, fold) of ``jobs`` in order; with ``total_budget_s``
    the time is shared as the module docstring says (``config``'s own budget is then ignored)."""
    if total_budget_s is not None:
        log.info("%.0f s of training in all, shared over %d folds", total_budget_s, len(jobs))
    started, folders = time.monotonic(), []
    for i, (configuration, fold) in enumerate(jobs):
        fold_config = config
        if total_budget_s is not None:  # at least a second: a fold without time is given what one epoch needs
            share = max(0.0, total_budget_s - (time.monotonic() - started)) / (len(jobs) - i)
            fold_config = dataclasses.replace(config, time_budget_s=max(share, 1.0))
        try:
            folders.append(train_fold(paths, configuration, fold, fold_config, device, resume=True))
        except BudgetTooSmall as e:
            log.warning("%s fold %s: %s; giving it %.0f s instead", configuration, fold, e, e.needed_s)
            folders.append(train_fold(paths, configuration, fold,
                                      dataclasses.replace(fold_config, time_budget_s=e.needed_s), device, resume=True))
    return folders
