"""A fold's training in progress: one object holding what it trains, how, where, and how far
it got, and the checkpoint that saves and restores it."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from autounet.training.config import TrainingConfig
from autounet.training.distributed import DistInfo
from autounet.training.progress import EpochLog
from autounet.training.setup import FoldSetup
from autounet.model.build import build_network

if TYPE_CHECKING:
    from autounet.training.tasks import TrainingTask


@dataclass
class Run:
    """One fold's training: its setup and configuration (the schedule may be re-planned while
    it runs), device and process group, network, optimiser and loss, and its progress."""

    setup: FoldSetup
    config: TrainingConfig
    device: torch.device
    dist: DistInfo
    network: torch.nn.Module        # as trained (maybe wrapped by DDP / torch.compile)
    module: torch.nn.Module         # the plain network, for checkpoints
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss: torch.nn.Module
    log: EpochLog
    task: "TrainingTask"               # what differs between segmentation and case-level training
    epoch: int = 0
    best_ema: float = -math.inf
    budget: dict | None = None      # --time-budget: {"seconds", "decision", "reserve_s", "planned_epochs", "used_s"}
    started: float = dataclasses.field(default_factory=time.monotonic)  # this process's start, for the budget
    used_before_s: float = 0.0      # budget seconds used by earlier processes of a resumed run
    train_s: float = 0.0            # seconds spent in training steps (data waits included), all processes
    iterations: int = 0             # training steps taken, all processes


def new_run(setup: FoldSetup, config: TrainingConfig, device: torch.device, task: "TrainingTask",
            dist: DistInfo = DistInfo()) -> Run:
    """A freshly initialised network (the same on every rank), SGD with Nesterov momentum, the task's loss."""
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    module = build_network(setup.stage.network, deep_supervision=config.deep_supervision).to(device)
    optimizer = torch.optim.SGD(module.parameters(), lr=config.initial_lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda" and config.amp)
    loss = task.loss(setup.plans, setup.stage, config.deep_supervision)
    return Run(setup, config, device, dist, module, module, optimizer, scaler, loss, EpochLog(), task)


def budget_used(run: Run) -> float:
    """Seconds of the budget spent so far, earlier processes of a resumed run included."""
    return run.used_before_s + time.monotonic() - run.started


def rng_state() -> dict[str, Any]:
    """Torch RNG states (CPU and CUDA) as tensors."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def checkpoint_state(run: Run) -> dict[str, Any]:
    """What a checkpoint holds: tensors, numbers, strings, lists and dicts only (weights_only)."""
    setup = run.setup
    return {
        "network": run.module.state_dict(), "optimizer": run.optimizer.state_dict(), "scaler": run.scaler.state_dict(),
        "epoch": run.epoch, "best_ema": run.best_ema, "rng": rng_state(), "log": run.log.to_json(),
        "plans": json.dumps(setup.plans.to_json()), "configuration": setup.configuration, "fold": setup.fold,
        "training_config": json.dumps(run.config.to_json()), "train_s": run.train_s, "iterations": run.iterations,
        **({"budget": {**run.budget, "used_s": budget_used(run)}} if run.budget else {}),
    }


def restore(run: Run, state: dict[str, Any]) -> None:
    """Continue a run from a checkpoint: weights, optimiser, scaler, progress and RNG state."""
    run.module.load_state_dict(state["network"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scaler.load_state_dict(state["scaler"])
    run.epoch, run.best_ema = int(state["epoch"]), float(state["best_ema"])
    run.log = EpochLog.from_json(state["log"])
    run.train_s = float(state.get("train_s", sum(run.log.epoch_seconds)))  # older checkpoints: whole epochs
    run.iterations = int(state.get("iterations", run.epoch * run.config.iterations_per_epoch))
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
