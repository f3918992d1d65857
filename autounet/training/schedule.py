"""A time budget applied to a real fold: the rules of :mod:`autounet.training.budget` fed with
this machine's measured speed, a resumed run's accounting, and the epochs re-planned while
training runs.

A fold of ``autounet run`` receives its network decided (a :class:`NetworkChoice`: the
planner's variant and its speed estimate) and chooses only its schedule; ``autounet train
--time-budget`` alone measures the planned network once and chooses the variant for its fold
with the same function (:func:`autounet.training.budget.choose_variant`), recorded in its
checkpoint. No fold reads another fold's files. A resumed run keeps its network, iterations per
epoch and budget; the time its earlier processes used counts.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import torch

from autounet.autoplan.plans import Plans, StagePlan
from autounet.autoplan.variants import network_variants, variant
from autounet.hardware import autocast_for
from autounet.training.batches import to_device
from autounet.training.budget import (FINISH_S, MEASUREMENT_SHARE, REPLAN_WINDOW, SPEED_MISMATCH,
                                      SPEED_MISMATCH_UNDER_LOAD, BudgetDecision, Calibration, NetworkChoice,
                                      VariantChoice, choose_variant, decide, epochs_that_fit,
                                      final_validation_seconds, speed_ratio)
from autounet.training.calibration import cached, calibration_key, measure, store
from autounet.training.config import TrainingConfig
from autounet.training.distributed import DistInfo
from autounet.training.setup import FoldSetup
from autounet.training.state import Run, budget_used, new_run
from autounet.training.steps import train_epoch
from autounet.training.tasks import task_for
from autounet.training.threads import fit_threads_to_load

log = logging.getLogger("autounet.training")
CALIBRATION_EPOCH = 10**6  # the epoch number calibration batches are drawn for: never a training epoch


def network_text(stage: StagePlan) -> str:
    """A stage's network in a few words, for the log."""
    return (f"patch {stage.patch_size}, batch {stage.batch_size}, {stage.network.num_stages} stages, "
            f"features {'-'.join(map(str, stage.network.features_per_stage))}")


def calibrate(setup: FoldSetup, config: TrainingConfig, device: torch.device, use_cache: bool = True,
              max_s: float | None = None) -> Calibration:
    """Seconds per training iteration (data loading included) and per forward pass of a batch,
    measured with the real pipeline, or read from the per-machine cache (``use_cache``);
    ``max_s`` bounds the timed steps (:func:`autounet.training.calibration.measure`)."""
    task = task_for(setup.plans)
    inputs = task.inputs(setup, config, device)
    key = calibration_key(setup.stage, device, config.amp, inputs.workers, config.augmentation)
    hit = cached(key) if use_cache else None
    if hit is not None:
        log.info("calibration (cached): %.3f s/iteration, %.3f s/forward for %s", hit.seconds_per_iteration,
                 hit.seconds_per_val_iteration, network_text(setup.stage))
        return hit
    fit_threads_to_load(device)  # measure with the threads training would use under this load
    run = new_run(setup, config, device, task)
    batches, stop = inputs.training(config.seed, CALIBRATION_EPOCH)
    x, _ = to_device(next(inputs.validation(config.seed, CALIBRATION_EPOCH)), device)

    def forwards(n: int) -> None:  # the network alone, as sliding-window prediction runs it (no data loading)
        run.network.eval()
        with torch.no_grad(), autocast_for(device, config.amp):
            for _ in range(n):
                run.network(x)

    try:
        calibration = measure(lambda n: train_epoch(run, batches, n, False), forwards, max_s)
    finally:
        stop()
    log.info("calibration: %.3f s/iteration (median of the timed steps), %.3f s/forward for %s",
             calibration.seconds_per_iteration, calibration.seconds_per_val_iteration,
             network_text(setup.stage))
    if calibration.under_load:
        busy = "" if calibration.other_cores is None else f"other processes kept {calibration.other_cores:.1f} cores busy, "
        log.warning("calibration under load (%ssteps varied %.1fx): the machine may be faster once they stop; not "
                    "cached, and checked against the first epoch", busy, calibration.spread)
    else:
        store(key, calibration)
    return calibration


def validation_cases(setup: FoldSetup, config: TrainingConfig) -> int:
    """How many cases the fold's final validation predicts."""
    return len(setup.val_ids) if config.final_validation and setup.validates else 0


def own_choice(setup: FoldSetup, config: TrainingConfig, device: torch.device, budget_s: float) -> VariantChoice:
    """``autounet train --time-budget`` alone: the planned network measured once, the variant
    for a fold of ``budget_s`` chosen by the rule ``autounet run`` uses for its folds."""
    planned = calibrate(setup, config, device, max_s=MEASUREMENT_SHARE * budget_s)
    return choose_variant(network_variants(setup.stage), planned, budget_s, validation_cases(setup, config),
                          config.validation.mirror)


def given_choice(setup: FoldSetup, config: TrainingConfig, device: torch.device, network: NetworkChoice
                 ) -> VariantChoice:
    """The network decided for the fold's configuration (by ``autounet run``, or ``--variant``),
    at its speed estimate (measured here when it comes without one)."""
    chosen = variant(setup.stage, network.variant)
    speed = network.calibration or calibrate(setup.with_stage(chosen.stage), config, device)
    log.info("network: %s (decided before the fold), estimated %.3f s/iteration", chosen.description,
             speed.seconds_per_iteration)
    return VariantChoice(chosen, speed, None, True)


def _apply(setup: FoldSetup, config: TrainingConfig, decision: BudgetDecision) -> tuple[FoldSetup, TrainingConfig, dict]:
    """The stage, configuration and budget record of a decision for the planned ``setup``."""
    s = decision.schedule
    validation = dataclasses.replace(config.validation, mirror=config.validation.mirror and decision.mirror)
    config = dataclasses.replace(config, epochs=s.epochs, iterations_per_epoch=s.iterations_per_epoch,
                                 val_iterations_per_epoch=s.val_iterations_per_epoch, validation=validation)
    n_val = validation_cases(setup, config)
    final_val = final_validation_seconds(decision.stage, decision.calibration, n_val, validation.mirror)
    log.info("%s; final validation expected to take %.0f s", decision.explanation, final_val)
    return setup.with_stage(decision.stage), config, {
        "seconds": config.time_budget_s, "decision": decision.explanation, "reserve_s": final_val + FINISH_S,
        "planned_epochs": s.epochs, "variant": decision.variant,
        "calibration": dataclasses.asdict(decision.calibration)}


def _new_budget(setup: FoldSetup, config: TrainingConfig, device: torch.device, started: float,
                network: NetworkChoice | None) -> tuple[FoldSetup, TrainingConfig, dict]:
    """Schedule (and, for a fold on its own, network variant) for the time budget (training/budget.py)."""
    budget = config.time_budget_s
    choice = given_choice(setup, config, device, network) if network is not None else own_choice(setup, config, device, budget)
    decision = decide(budget, choice, time.monotonic() - started, validation_cases(setup, config),
                      config.validation.mirror)
    return _apply(setup, config, decision)


def check_speed(run: Run, epoch_wall: float, workers: int) -> None:
    """After a budgeted run's first epoch: compare its wall time with the speed estimate's
    prediction (rule 5 of training/budget.py); beyond the tolerance, the estimate is replaced by
    the speed the epoch showed (in the cache and in the fold's budget record)."""
    b, config = run.budget or {}, run.config
    if "calibration" not in b:
        return
    calibration = Calibration(**b["calibration"])
    ratio = speed_ratio(calibration, config.iterations_per_epoch, config.val_iterations_per_epoch, epoch_wall)
    limit = SPEED_MISMATCH_UNDER_LOAD if calibration.under_load else SPEED_MISMATCH
    if 1 / limit <= ratio <= limit:
        return
    log.info("first epoch took %.1f s, %.1fx %s than estimated: estimate replaced, epochs re-planned", epoch_wall,
             max(ratio, 1 / ratio), "slower" if ratio > 1 else "faster")
    measured = calibration.scaled(ratio)
    store(calibration_key(run.setup.stage, run.device, config.amp, workers, config.augmentation), measured)
    b["calibration"] = dataclasses.asdict(measured)


def _resumed_budget(state: dict[str, Any], setup: FoldSetup, config: TrainingConfig
                    ) -> tuple[FoldSetup, TrainingConfig, dict]:
    """A resumed budgeted run keeps the schedule and network it chose at the start."""
    stored = TrainingConfig.from_json(json.loads(state["training_config"]))
    config = dataclasses.replace(config, epochs=stored.epochs, iterations_per_epoch=stored.iterations_per_epoch,
                                 val_iterations_per_epoch=stored.val_iterations_per_epoch,
                                 time_budget_s=stored.time_budget_s,
                                 validation=dataclasses.replace(config.validation, mirror=config.validation.mirror
                                                                and stored.validation.mirror))
    stage = Plans.from_json(json.loads(state["plans"])).configurations[setup.configuration]
    budget = dict(state["budget"])
    budget.setdefault("used_s", sum(state["log"]["epoch_seconds"]))  # checkpoints of older versions lack it
    log.info("budget %.0f s: %.0f s used by %d of %d epochs; continuing the same network and schedule, re-planned "
             "with the time left (%s)", budget["seconds"], budget["used_s"], int(state["epoch"]), config.epochs,
             budget["decision"])
    return setup.with_stage(stage), config, budget


def fit_schedule(setup: FoldSetup, config: TrainingConfig, device: torch.device, dist: DistInfo,
                 state: dict[str, Any] | None, started: float, network: NetworkChoice | None = None
                 ) -> tuple[FoldSetup, TrainingConfig, dict | None]:
    """The stage, configuration and budget record a fold trains with: a resumed budgeted run's
    own, a new budget's choice (with ``network`` decided by the run, or chosen here), or (no
    budget) those given (``network``'s variant, if any)."""
    if state is not None:
        if "budget" in state:
            return _resumed_budget(state, setup, config)
        if config.time_budget_s:
            log.warning("--time-budget ignored: resuming a run with a fixed schedule")
        return setup.with_stage(Plans.from_json(json.loads(state["plans"])).configurations[setup.configuration]), \
            config, None
    if config.time_budget_s:
        if dist.enabled:
            raise ValueError("--time-budget is not supported with torchrun yet; give --epochs and "
                             "--iterations-per-epoch instead")
        return _new_budget(setup, config, device, started, network)
    if network is not None:
        return setup.with_stage(variant(setup.stage, network.variant).stage), config, None
    return setup, config, None


def replan(run: Run, epoch_walls: list[float]) -> None:
    """A budgeted run's total epochs re-planned from the epochs' measured wall time
    (:func:`autounet.training.budget.epochs_that_fit`)."""
    b, used, config = run.budget, budget_used(run), run.config
    total = epochs_that_fit(b["seconds"], used, run.epoch, epoch_walls, b.get("reserve_s", FINISH_S),
                            b.get("planned_epochs", config.epochs), config.epochs)
    if total != config.epochs:
        recent = epoch_walls[-REPLAN_WINDOW:]
        log.info("budget: %.0f s used, epochs take %.1f s -> %d epochs instead of %d", used,
                 sum(recent) / len(recent), total, config.epochs)
        run.config = dataclasses.replace(config, epochs=total)
