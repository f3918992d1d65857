"""Which configurations a run trains, and how its time budget is shared among their folds.

The rules, in order:
1. ``2d`` and ``3d_fullres`` are the candidates whenever planned (a 2D dataset has ``2d`` alone).
   Measured on the main job's anisotropic 3D example with a 5-minute budget on a CPU with native
   bfloat16: ``3d_fullres`` alone reached a cross-validated foreground Dice of 0.761, while ``2d`` +
   ``3d_fullres`` sharing the same time reached 0.843 (``2d``) and 0.856 (their ensemble); which one
   wins depends on the dataset, and the cross-validation decides.
2. The cascade (``3d_lowres`` and ``3d_cascade_fullres``, trained together or not at all) joins
   when every fold of every configuration still gets at least ``MIN_FOLD_S``: a fold shorter
   than that would leave the cascade's low-resolution stage barely trained (about 1 h 50 min of
   budget for a dataset with all four configurations). Without a budget (a GPU's full schedule)
   it always joins, as in nnU-Net.
3. With a budget, preparation (verify, plan, preprocess) comes off it first and ``after_training``
   is kept for choosing the best and the report; the folds share the rest.
4. A short budget is spent on what can learn (:func:`plan_configurations`): each configuration's
   planned network is measured once, and its folds' network is the heaviest variant that reaches
   the learning minimum in a fold's share (:func:`autounet.training.budget.choose_variant`). When
   not every candidate can learn with the time shared among all of them, the run trains fewer:
   the ones that come closest to their minimum with the time to themselves, as many as still
   learn; when none learns even alone, the one that comes closest, and the run says so.
   Measured on the main job's 3D example, float32, 2-core AMD EPYC, 5-minute budget: sharing
   the time between both configurations (25 s a fold) trained every fold's lightest variant below
   its minimum, test Dice 0.708; one fold of 60 s reached a validation Dice of 0.84-0.86 with
   ``2d``'s planned or half-feature network, 0.31-0.56 with any ``3d_fullres`` variant, whose
   batch of 2 needs 1000 iterations.
5. Each fold, when it starts, gets the training time still left divided by the folds still to
   train (with ``concurrent`` devices, that many folds run at once, so each gets
   ``concurrent`` shares, at most all that is left): a fold that finishes early passes its
   leftover on, and its real speed replaces the estimate for the folds after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from autounet.autoplan.variants import Variant
from autounet.training.budget import Calibration, VariantChoice, choose_variant

ALWAYS = ("3d_fullres", "2d")                # trained whenever planned
CASCADE = ("3d_lowres", "3d_cascade_fullres")  # together or not at all
MIN_FOLD_S = 300.0                # the cascade only when every fold gets at least this
AFTER_TRAINING = (0.03, 10.0)     # share of the budget (and at least these seconds) kept for selection and report
DEFAULT_CPU_BUDGET_S = 2 * 3600.0  # a run on a CPU without --time-budget trains this long, and says so


def after_training_s(budget_s: float) -> float:
    """Seconds a budgeted run keeps for find_best_configuration and the report."""
    share, floor = AFTER_TRAINING
    return max(floor, share * budget_s)


def worth_training(planned: Sequence[str], training_s: float | None, folds: int) -> list[str]:
    """The configurations to train, in training order (rules 1-2): ``training_s`` is the time the
    folds share (None: no budget, everything planned)."""
    base = [c for c in ALWAYS if c in planned]
    if not base:
        raise ValueError(f"nothing to train: the plan has neither of {list(ALWAYS)}")
    cascade = list(CASCADE) if all(c in planned for c in CASCADE) else []
    if cascade and (training_s is None or training_s / (folds * (len(base) + len(cascade))) >= MIN_FOLD_S):
        return base + cascade
    return base


def fold_share(time_left_s: float, folds_left: int, concurrent: int = 1) -> float:
    """A starting fold's budget (rule 4): at least one second, at most everything left."""
    if folds_left < 1:
        raise ValueError("no fold left to share the time with")
    share = time_left_s * min(1.0, concurrent / folds_left)
    return max(1.0, share)


@dataclass(frozen=True)
class ConfigurationCost:
    """What a configuration's folds cost on this machine: its network variants, the planned
    network's measured speed, and how many cases a fold validates."""

    configuration: str
    variants: tuple[Variant, ...]
    planned: Calibration
    validation_cases: int


def plan_configurations(costs: Sequence[ConfigurationCost], training_s: float, folds: int, mirror: bool = True,
                        keep_all: bool = False) -> list[tuple[str, VariantChoice]]:
    """The configurations to train and each one's network (rule 4), in the order of ``costs``.

    keep_all : the user named the configurations: all are trained, only their networks chosen."""
    def choices(members: Sequence[ConfigurationCost]) -> list[tuple[str, VariantChoice]]:
        share = training_s / (folds * len(members))
        return [(c.configuration, choose_variant(c.variants, c.planned, share, c.validation_cases, mirror))
                for c in members]

    everything = choices(costs)
    if keep_all or all(choice.learns for _, choice in everything):
        return everything
    alone = {name: choice.iterations / choice.needed for name, choice in choices_alone(costs, training_s, folds, mirror)}
    ranked = sorted(costs, key=lambda c: -alone[c.configuration])
    for k in range(len(costs) - 1, 0, -1):
        subset = [c for c in costs if c in ranked[:k]]
        planned = choices(subset)
        if all(choice.learns for _, choice in planned):
            return planned
    return choices(ranked[:1])


def choices_alone(costs: Sequence[ConfigurationCost], training_s: float, folds: int, mirror: bool = True
                  ) -> list[tuple[str, VariantChoice]]:
    """Each configuration's network if it had the whole training time to itself."""
    return [(c.configuration, choose_variant(c.variants, c.planned, training_s / folds, c.validation_cases, mirror))
            for c in costs]
