"""A budgeted run's networks, decided before its folds.

Each candidate configuration's planned network is measured once on this machine (the real data
pipeline of fold 0, :func:`autounet.training.schedule.calibrate`); the rule of
:mod:`autounet.runner.share` then picks the configurations and one network variant each
(:mod:`autounet.autoplan.variants`). The choice and its speed estimate are recorded in the run's
record (``run.json``) and handed to every fold; each finished fold's real epochs replace the
estimate for the folds after it. A restarted run keeps what it recorded.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Sequence

from autounet.autoplan.variants import network_variants
from autounet.hardware import resolve_device
from autounet.runner.share import ConfigurationCost, plan_configurations
from autounet.training.budget import MEASUREMENT_SHARE, Calibration, NetworkChoice, VariantChoice
from autounet.training.config import TrainingConfig
from autounet.training.schedule import calibrate, validation_cases
from autounet.training.setup import prepare_fold
from autounet.training.spending import FoldSpending
from autounet.workspace import DatasetPaths

log = logging.getLogger("autounet")


def measure_cost(paths: DatasetPaths, configuration: str, config: TrainingConfig, device: str,
                 max_s: float | None = None) -> ConfigurationCost:
    """One configuration's variants and its planned network's speed, measured on fold 0's data
    (``max_s``: the timed steps stop after that long)."""
    setup = prepare_fold(paths, configuration, 0)
    planned = calibrate(setup, config, resolve_device(device), max_s=max_s)
    return ConfigurationCost(configuration, tuple(network_variants(setup.stage)), planned,
                             validation_cases(setup, config))


def decide_networks(paths: DatasetPaths, candidates: Sequence[str], config: TrainingConfig, device: str,
                    training_s: float, folds: int, keep_all: bool) -> tuple[dict[str, NetworkChoice], list[str]]:
    """The configurations to train among ``candidates`` (in their order), each one's network, and
    the decision in plain words (logged)."""
    cap = MEASUREMENT_SHARE * training_s / max(1, len(candidates))
    costs = [measure_cost(paths, c, config, device, cap) for c in candidates]
    plan = plan_configurations(costs, training_s, folds, config.validation.mirror, keep_all)
    lines = explain(plan, [c.configuration for c in costs], training_s, folds)
    for line in lines:
        log.info("run: %s", line)
    return {name: NetworkChoice(choice.variant.name, choice.calibration) for name, choice in plan}, lines


def explain(plan: Sequence[tuple[str, VariantChoice]], candidates: Sequence[str], training_s: float,
            folds: int) -> list[str]:
    """The decision in plain words: per configuration its network and expected iterations per fold."""
    share = training_s / (folds * max(1, len(plan)))
    lines = [f"{name}: {choice.variant.description}, about {choice.iterations} iterations per fold of "
             f"{share:.0f} s ({choice.calibration.seconds_per_iteration:.3f} s/iteration; a network needs "
             f"{choice.needed} to learn)" + ("" if choice.learns else ", BELOW the learning minimum")
             for name, choice in plan]
    dropped = [c for c in candidates if c not in dict(plan)]
    if dropped:
        lines.append(f"not trained: {', '.join(dropped)} (with the time shared, not every configuration could train "
                     "its folds to the learning minimum; a longer --time-budget trains them too)")
    return lines


def refined(network: NetworkChoice, spending: FoldSpending | None) -> NetworkChoice:
    """The speed estimate replaced by the real epochs of a finished fold."""
    measured = spending.seconds_per_iteration if spending is not None else None
    if measured is None or network.calibration is None or network.calibration.seconds_per_iteration <= 0:
        return network
    ratio = measured / network.calibration.seconds_per_iteration
    c = network.calibration
    return dataclasses.replace(network, calibration=Calibration(c.seconds_per_iteration * ratio,
                                                                c.seconds_per_val_iteration * ratio))
