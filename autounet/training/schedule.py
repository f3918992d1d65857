"""A time budget applied to a real fold: the rules of :mod:`autounet.training.budget` fed with
this machine's measured speed, the network shared by a configuration's folds, a resumed run's
accounting, and the epochs re-planned while training runs.

The first budgeted fold of a configuration chooses the network (recorded in its
``budget_variant.json``); the configuration's other folds keep that choice, so that they can be
ensembled, and choose only their schedule. A resumed run keeps its network, iterations per
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
from autounet.hardware import autocast_for
from autounet.io.atomic import read_json, write_json
from autounet.training.batches import make_inputs, to_device
from autounet.training.budget import (FINISH_S, REPLAN_WINDOW, SPEED_MISMATCH, SPEED_MISMATCH_UNDER_LOAD, BudgetDecision,
                                      Calibration, decide, epochs_that_fit, final_validation_seconds, speed_ratio)
from autounet.training.calibration import MEASURED_STEPS, cached, calibration_key, measure, store
from autounet.training.config import TrainingConfig
from autounet.training.distributed import DistInfo
from autounet.training.setup import FoldSetup
from autounet.training.state import Run, budget_used, new_run
from autounet.training.steps import train_epoch
from autounet.training.threads import fit_threads_to_load

log = logging.getLogger("autounet.training")
CALIBRATION_EPOCH = 10**6  # the epoch number calibration batches are drawn for: never a training epoch


def network_text(stage: StagePlan) -> str:
    """A stage's network in a few words, for the log."""
    return (f"patch {stage.patch_size}, batch {stage.batch_size}, {stage.network.num_stages} stages, "
            f"features {'-'.join(map(str, stage.network.features_per_stage))}")


def calibrate(setup: FoldSetup, config: TrainingConfig, device: torch.device, use_cache: bool = True) -> Calibration:
    """Seconds per training iteration (data loading included) and per forward pass of a batch,
    measured with the real pipeline, or read from the per-machine cache (``use_cache``)."""
    inputs = make_inputs(setup, config, device)
    key = calibration_key(setup.stage, device, config.amp, inputs.workers, config.augmentation)
    hit = cached(key) if use_cache else None
    if hit is not None:
        log.info("calibration (cached): %.3f s/iteration, %.3f s/forward for %s", hit.seconds_per_iteration,
                 hit.seconds_per_val_iteration, network_text(setup.stage))
        return hit
    fit_threads_to_load(device)  # measure with the threads training would use under this load
    run = new_run(setup, config, device)
    batches, stop = inputs.training(config.seed, CALIBRATION_EPOCH)
    x, _ = to_device(next(inputs.validation(config.seed, CALIBRATION_EPOCH)), device)

    def forwards(n: int) -> None:  # the network alone, as sliding-window prediction runs it (no data loading)
        run.network.eval()
        with torch.no_grad(), autocast_for(device, config.amp):
            for _ in range(n):
                run.network(x)

    try:
        calibration = measure(lambda n: train_epoch(run, batches, n, False), forwards)
    finally:
        stop()
    log.info("calibration: %.3f s/iteration (median of %d steps), %.3f s/forward for %s",
             calibration.seconds_per_iteration, MEASURED_STEPS, calibration.seconds_per_val_iteration,
             network_text(setup.stage))
    if calibration.under_load:
        busy = "" if calibration.other_cores is None else f"other processes kept {calibration.other_cores:.1f} cores busy, "
        log.warning("calibration under load (%ssteps varied %.1fx): the machine may be faster once they stop; not "
                    "cached, and checked against the first epoch", busy, calibration.spread)
    else:
        store(key, calibration)
    return calibration


def _stage_json(stage: StagePlan) -> str:
    return json.dumps(dataclasses.asdict(stage), sort_keys=True, default=list)


def _sibling_variant(setup: FoldSetup, planned: str) -> dict | None:
    """The variant another fold of this configuration chose for the same planned network, if any."""
    for fold in setup.paths.trained.folds(setup.configuration):
        if not fold.budget_variant.is_file():
            continue
        try:
            d = read_json(fold.budget_variant)
            if json.dumps(d["planned_stage"], sort_keys=True) == planned and isinstance(d["variant"], str):
                return d
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s: unreadable, ignored", fold.budget_variant)
    return None


def _decide(setup: FoldSetup, config: TrainingConfig, device: torch.device, elapsed, variant: str | None,
            use_cache: bool = True) -> BudgetDecision:
    n_val = len(setup.val_ids) if config.final_validation and setup.validates else 0
    return decide(config.time_budget_s, setup.stage,
                  lambda stage: calibrate(setup.with_stage(stage), config, device, use_cache), n_val,
                  config.validation.mirror, elapsed=elapsed, variant=variant)


def _apply(setup: FoldSetup, config: TrainingConfig, decision: BudgetDecision, chose: bool
           ) -> tuple[FoldSetup, TrainingConfig, dict]:
    """The stage, configuration and budget record of a decision for the planned ``setup``; the
    fold that chose the network records it for the configuration's other folds (``budget_variant.json``)."""
    if chose:
        write_json(setup.output.budget_variant, {"variant": decision.variant, "fold": setup.fold,
                                                 "planned_stage": json.loads(_stage_json(setup.stage))})
    s = decision.schedule
    config = dataclasses.replace(config, epochs=s.epochs, iterations_per_epoch=s.iterations_per_epoch,
                                 val_iterations_per_epoch=s.val_iterations_per_epoch)
    n_val = len(setup.val_ids) if config.final_validation and setup.validates else 0
    final_val = final_validation_seconds(decision.stage, decision.calibration, n_val, config.validation.mirror)
    log.info("%s; final validation expected to take %.0f s", decision.explanation, final_val)
    return setup.with_stage(decision.stage), config, {
        "seconds": config.time_budget_s, "decision": decision.explanation, "reserve_s": final_val + FINISH_S,
        "planned_epochs": s.epochs, "variant": decision.variant, "chose_variant": chose,
        "calibration": dataclasses.asdict(decision.calibration)}


def _new_budget(setup: FoldSetup, config: TrainingConfig, device: torch.device, started: float
                ) -> tuple[FoldSetup, TrainingConfig, dict]:
    """Choose schedule and network variant for the time budget (rules in training/budget.py)."""
    chosen = _sibling_variant(setup, _stage_json(setup.stage))
    if chosen is not None:
        log.info("network: %s, as fold %s of this configuration chose (folds must share a network to be ensembled)",
                 chosen["variant"], chosen["fold"])
    decision = _decide(setup, config, device, lambda: time.monotonic() - started,
                       chosen["variant"] if chosen is not None else None)
    return _apply(setup, config, decision, chose=chosen is None)


def check_speed(run: Run, planned: FoldSetup, epoch_wall: float, workers: int
                ) -> tuple[FoldSetup, TrainingConfig, dict] | None:
    """After a budgeted run's first epoch: compare its wall time with the calibration's prediction
    (rule 5 of training/budget.py). Returns the stage, configuration and budget to start over with
    when the network chosen again differs, else None (the epochs are re-planned as usual)."""
    b, config = run.budget or {}, run.config
    if "calibration" not in b:
        return None
    calibration = Calibration(**b["calibration"])
    ratio = speed_ratio(calibration, config.iterations_per_epoch, config.val_iterations_per_epoch, epoch_wall)
    limit = SPEED_MISMATCH_UNDER_LOAD if calibration.under_load else SPEED_MISMATCH
    if 1 / limit <= ratio <= limit:
        return None
    log.info("first epoch took %.1f s, %.1fx %s than the calibration predicted: calibration replaced", epoch_wall,
             max(ratio, 1 / ratio), "slower" if ratio > 1 else "faster")
    store(calibration_key(run.setup.stage, run.device, config.amp, workers, config.augmentation),
          calibration.scaled(ratio))
    if not b.get("chose_variant"):
        log.info("network kept: this configuration's folds share the network its first budgeted fold chose")
        return None
    decision = _decide(planned, dataclasses.replace(config, time_budget_s=b["seconds"]), run.device,
                       lambda: budget_used(run), None, use_cache=False)
    if decision.variant == b.get("variant"):
        log.info("measured again: %s still fits best; continuing", decision.variant)
        return None
    log.info("measured again: the speed now suits another network (%s instead of %s); starting over with it",
             decision.variant, b.get("variant"))
    return _apply(planned, config, decision, chose=True)


def _resumed_budget(state: dict[str, Any], setup: FoldSetup, config: TrainingConfig
                    ) -> tuple[FoldSetup, TrainingConfig, dict]:
    """A resumed budgeted run keeps the schedule and network it chose at the start."""
    stored = TrainingConfig.from_json(json.loads(state["training_config"]))
    config = dataclasses.replace(config, epochs=stored.epochs, iterations_per_epoch=stored.iterations_per_epoch,
                                 val_iterations_per_epoch=stored.val_iterations_per_epoch,
                                 time_budget_s=stored.time_budget_s)
    stage = Plans.from_json(json.loads(state["plans"])).configurations[setup.configuration]
    budget = dict(state["budget"])
    budget.setdefault("used_s", sum(state["log"]["epoch_seconds"]))  # checkpoints of older versions lack it
    log.info("budget %.0f s: %.0f s used by %d of %d epochs; continuing the same network and schedule, re-planned "
             "with the time left (%s)", budget["seconds"], budget["used_s"], int(state["epoch"]), config.epochs,
             budget["decision"])
    return setup.with_stage(stage), config, budget


def fit_schedule(setup: FoldSetup, config: TrainingConfig, device: torch.device, dist: DistInfo,
                 state: dict[str, Any] | None, started: float) -> tuple[FoldSetup, TrainingConfig, dict | None]:
    """The stage, configuration and budget record a fold trains with: a resumed budgeted run's
    own, a new budget's choice, or (no budget) those given."""
    if state is not None and "budget" in state:
        return _resumed_budget(state, setup, config)
    if config.time_budget_s and state is None:
        if dist.enabled:
            raise ValueError("--time-budget is not supported with torchrun yet; give --epochs and "
                             "--iterations-per-epoch instead")
        return _new_budget(setup, config, device, started)
    if config.time_budget_s:
        log.warning("--time-budget ignored: resuming a run with a fixed schedule")
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
