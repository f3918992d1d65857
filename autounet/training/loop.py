"""The epoch loop: learning rate, an epoch of training and one of validation patches, the log
line, the checkpoints and the progress plot; a budgeted run re-plans its epochs after each one."""

from __future__ import annotations

import logging
import math
import time

import numpy as np
import torch

from autounet.hardware import autocast_for
from autounet.load import other_cores, snapshot
from autounet.model.checkpoint import save_checkpoint
from autounet.training.batches import Inputs
from autounet.training.config import next_lr
from autounet.training.progress import format_epoch, plot_progress
from autounet.training.schedule import check_speed, replan
from autounet.training.state import Run, checkpoint_state
from autounet.training.steps import train_epoch
from autounet.training.threads import adapt_threads, fit_threads_to_load
from autounet.stopping import deferred_stop

log = logging.getLogger("autounet.training")
PLOT_INTERVAL_S = 60.0  # progress.png is redrawn at most this often (drawing takes ~0.5 s), and at the end


def _precision_note(run: Run) -> str:
    ctx = autocast_for(run.device, run.config.amp)
    return f", mixed precision ({ctx.fast_dtype})" if isinstance(ctx, torch.autocast) else ", float32"


def _log_start(run: Run, inputs: Inputs) -> None:
    setup, config, dist = run.setup, run.config, run.dist
    log.info("training %s fold %s: %d train / %d validation cases, patch %s, batch %d%s, %d epochs x %d iterations, "
             "%d augmentation worker(s), device %s%s", setup.configuration, setup.fold, len(setup.train_ids),
             len(setup.val_ids), setup.stage.patch_size, inputs.batch,
             f" x {dist.world_size} processes" if dist.enabled else "", config.epochs, config.iterations_per_epoch,
             inputs.workers, run.device, _precision_note(run))


def _one_epoch(run: Run, inputs: Inputs, seed: int) -> None:
    """Train and validate one epoch and append its numbers to the log."""
    config, start = run.config, time.perf_counter()
    lr = next_lr(config.initial_lr, run.log.lr[-1] if run.log.lr else None, run.epoch, config.epochs, config.lr_exponent)
    for g in run.optimizer.param_groups:
        g["lr"] = lr
    torch.manual_seed(config.seed * 100003 + run.epoch)
    batches, stop = inputs.training(seed, run.epoch)
    steps_start = time.perf_counter()
    try:
        train_loss = train_epoch(run, batches, config.iterations_per_epoch, run.dist.is_main)
        run.train_s += time.perf_counter() - steps_start
    finally:
        stop()
    run.iterations += config.iterations_per_epoch
    val_loss, dice = run.task.validation_epoch(run, inputs.validation(seed, run.epoch))
    finite = [d for d in dice if not math.isnan(d)]
    pseudo = float(np.mean(finite)) if finite else float("nan")
    prev_ema = run.log.pseudo_dice_ema[-1] if run.log.pseudo_dice_ema else None
    ema = pseudo if prev_ema is None or math.isnan(prev_ema) else (
        prev_ema if math.isnan(pseudo) else config.ema_momentum * prev_ema + (1 - config.ema_momentum) * pseudo)
    run.log.append(epoch=run.epoch, train_loss=train_loss, val_loss=val_loss, pseudo_dice=pseudo,
                   pseudo_dice_ema=ema, lr=lr, epoch_seconds=time.perf_counter() - start)
    run.epoch += 1


def _save_progress(run: Run, last_plot: float) -> float:
    """Log line, best and latest checkpoints, the plot (at most every PLOT_INTERVAL_S); returns
    when the plot was last drawn."""
    folder, config, ema = run.setup.output, run.config, run.log.pseudo_dice_ema[-1]
    metric = run.task.metric
    log.info("%s", format_epoch(run.log, config.epochs, metric))
    if not math.isnan(ema) and ema > run.best_ema:
        run.best_ema = ema
        save_checkpoint(folder.checkpoint("best"), checkpoint_state(run))
        log.info("new best %s EMA %.4f: %s saved", metric, ema, folder.checkpoint("best").stem)
    if run.epoch % config.checkpoint_every == 0 or run.epoch == config.epochs:
        save_checkpoint(folder.checkpoint("latest"), checkpoint_state(run))
    if time.monotonic() - last_plot > PLOT_INTERVAL_S or run.epoch == config.epochs:
        plot_progress(run.log, folder.progress_plot, metric)
        return time.monotonic()
    return last_plot


def train_epochs(run: Run, check_first: bool = False) -> None:
    """Run the remaining epochs; a budget may change their number (``run.config.epochs``) as it goes.

    check_first : a budgeted run that chose its schedule in this process checks its first
    epoch against the speed estimate (:func:`autounet.training.schedule.check_speed`)."""
    inputs = run.task.inputs(run.setup, run.config, run.device, run.dist)
    if run.epoch == 0 and run.dist.is_main:
        _log_start(run, inputs)
    seed = run.config.seed * 1000 + run.dist.rank
    last_plot = -math.inf
    epoch_walls: list[float] = []
    fit_threads_to_load(run.device)
    epoch_end = time.monotonic()
    while run.epoch < run.config.epochs:
        # a stop signal (autounet.stopping) ends the epoch after its current training step, the
        # epoch dropped; one arriving after the training steps waits until the epoch is saved
        with deferred_stop():
            last_plot, epoch_end = _epoch(run, inputs, seed, check_first, epoch_walls, (last_plot, epoch_end))


def _epoch(run: Run, inputs: Inputs, seed: int, check_first: bool, epoch_walls: list[float],
           clocks: tuple[float, float]) -> tuple[float, float]:
    """One epoch, the threads and (with a budget) the schedule adapted to it, its checkpoints;
    returns when the plot was last drawn and when the epoch ended."""
    last_plot, epoch_end = clocks
    on_cpu = run.device.type == "cpu"
    before = snapshot() if on_cpu else None  # the load over the epoch sets the next one's threads
    _one_epoch(run, inputs, seed)
    if on_cpu:
        adapt_threads(run.device, other_cores(before, snapshot()))
    if run.budget is not None:  # wall time since the previous epoch ended: last epoch's checkpoint included
        epoch_walls.append(time.monotonic() - epoch_end)
        epoch_end = time.monotonic()
        if check_first and len(epoch_walls) == 1 and run.epoch == 1:
            check_speed(run, epoch_walls[0], inputs.workers)
        replan(run, epoch_walls)
    if run.dist.is_main:
        last_plot = _save_progress(run, last_plot)
    return last_plot, epoch_end
