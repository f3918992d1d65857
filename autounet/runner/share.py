"""Which configurations a run trains, and how its time budget is shared among their folds.

The rules, in order:
1. Candidates, by priority: ``3d_fullres``, ``2d``, then the cascade (``3d_lowres`` and
   ``3d_cascade_fullres``, trained together or not at all). Only planned configurations count,
   so a 2D dataset has ``2d`` alone. (nnU-Net's experience: ``3d_fullres`` is the best single
   configuration on most 3D datasets, ``2d`` helps on some, the cascade on a few large ones.)
2. Without a budget (a GPU's full schedule) every candidate is trained, as nnU-Net does.
3. With a budget, preparation (verify, plan, preprocess) comes off it first and ``after_training``
   is kept for choosing the best and the report; the folds share the rest. Candidates are added in
   priority order while every fold still gets at least ``MIN_FOLD_S``; the first is always trained.
   With 20 minutes a 3D dataset trains ``3d_fullres`` alone; ``2d`` joins from about 55 minutes,
   the cascade from about 1 h 50 min.
4. Each fold, when it starts, gets the training time still left divided by the folds still to
   train (with ``concurrent`` devices, that many folds run at once, so each gets
   ``concurrent`` shares, at most all that is left): a fold that finishes early passes its
   leftover on. A fold whose share does not fit one epoch gets the time one epoch needs, so that
   the run always ends with every fold trained.
"""

from __future__ import annotations

import math
from typing import Sequence

PRIORITY = (("3d_fullres",), ("2d",), ("3d_lowres", "3d_cascade_fullres"))
MIN_FOLD_S = 300.0                # a fold shorter than this learns too little to be worth a configuration
AFTER_TRAINING = (0.04, 20.0)     # share of the budget (and at least these seconds) kept for selection and report
DEFAULT_CPU_BUDGET_S = 2 * 3600.0  # a run on a CPU without --time-budget trains this long, and says so


def after_training_s(budget_s: float) -> float:
    """Seconds a budgeted run keeps for find_best_configuration and the report."""
    share, floor = AFTER_TRAINING
    return max(floor, share * budget_s)


def worth_training(planned: Sequence[str], training_s: float | None, folds: int) -> list[str]:
    """The configurations to train, in training order (rules 1-3): ``training_s`` is the time the
    folds share (None: no budget, everything planned)."""
    groups = [g for g in PRIORITY if all(c in planned for c in g)]
    if not groups:
        raise ValueError(f"nothing to train: the plan has none of {[c for g in PRIORITY for c in g]}")
    if training_s is None:
        return [c for g in groups for c in g]
    chosen: list[str] = list(groups[0])
    for group in groups[1:]:
        if training_s / (folds * (len(chosen) + len(group))) < MIN_FOLD_S:
            break
        chosen += group
    return chosen


def fold_share(time_left_s: float, folds_left: int, concurrent: int = 1) -> float:
    """A starting fold's budget (rule 4): at least one second, at most everything left."""
    if folds_left < 1:
        raise ValueError("no fold left to share the time with")
    share = time_left_s * min(1.0, concurrent / folds_left)
    return max(1.0, share)


def equal_shares(training_s: float, jobs: int, concurrent: int = 1) -> float:
    """The budget of each fold when all are launched at once in rounds of ``concurrent`` (a cluster
    job array, ``run --dry-run``): the training time over the rounds."""
    return max(1.0, training_s / math.ceil(jobs / max(1, concurrent)))
