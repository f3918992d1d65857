"""Train one fold of one configuration, top to bottom.

Phases: check what the fold needs (:mod:`~autounet.training.setup`); pick the device and join
the data-parallel group, if any; open the fold's log; find the checkpoint to resume; fit the
schedule to a time budget (:mod:`~autounet.training.schedule`); build or restore the run
(:mod:`~autounet.training.state`); run the epochs (:mod:`~autounet.training.loop`); write the
final checkpoint; validate the fold (:mod:`~autounet.training.validation`).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import torch

from autounet.errors import WorkspaceError
from autounet.hardware import resolve_device
from autounet.locks import locked
from autounet.io.atomic import remove_stale_temporaries
from autounet.io.provenance import describe_stale, fold_inputs, record_inputs, stale_reasons
from autounet.model.checkpoint import load_checkpoint, save_checkpoint
from autounet.training.config import TrainingConfig
from autounet.training.distributed import DistInfo, barrier, check_replicas_identical, init_distributed
from autounet.training.loop import train_epochs
from autounet.training.budget import NetworkChoice
from autounet.training.schedule import fit_schedule
from autounet.training.setup import prepare_fold
from autounet.training.spending import write_spending
from autounet.training.state import Run, budget_used, checkpoint_state, new_run, restore
from autounet.training.threads import threads_restored
from autounet.training.tasks import task_for
from autounet.workspace import DatasetPaths, FoldPaths

log = logging.getLogger("autounet.training")


def train_fold(paths: DatasetPaths, configuration: str, fold: int | str, config: TrainingConfig = TrainingConfig(),
               device: str = "auto", resume: bool = False, network: NetworkChoice | None = None,
               wait: bool = False) -> Path:
    """Train (or resume) one fold and validate it; returns the fold's output folder.

    network : the network variant (and, with a time budget, its speed estimate) decided by
    ``autounet run`` for every fold of the configuration; None: the planned network, or with a
    time budget the variant this fold chooses for itself. The fold is locked while it trains
    (:mod:`autounet.locks`): another process training it raises LockedError, or with ``wait``
    this one waits for it."""
    started = time.monotonic()
    setup = prepare_fold(paths, configuration, fold)
    dev, dist = _devices(device)
    lock = locked(setup.output.lock, f"fold {fold} of {configuration} of {paths.name}", wait) if dist.is_main \
        else nullcontext()  # the other ranks of a distributed fold train it with rank 0
    with lock, _fold_log(setup.output, dist.is_main), threads_restored():
        source = _checkpoint_to_resume(setup.output, resume)
        if dist.is_main:
            remove_stale_temporaries(setup.output.root, recursive=True)  # a killed writer's, in this fold
            _check_inputs(paths, setup, fresh=source is None)
        state = _load_resume_state(setup.output, source, dev) if source is not None else None
        setup, config, budget = fit_schedule(setup, config, dev, dist, state, started, network)
        run = _start(setup, config, dev, dist, budget, started)
        if state is not None:
            _resume(run, state, source.name)
        _wrap_network(run)
        if source != setup.output.checkpoint("final"):
            train_epochs(run, check_first=budget is not None and state is None)
        _save_final(run)
        validation_s = 0.0
        if dist.is_main and run.config.final_validation and setup.validates:
            validation_s = _validate(run)
        if dist.is_main:
            write_spending(run, validation_s)
        if budget is not None and dist.is_main:
            log.info("time budget %.0f s, used %.0f s (%.0f s by this process)", budget["seconds"], budget_used(run),
                     time.monotonic() - started)
        barrier(dist)
    return setup.output.root


def _check_inputs(paths: DatasetPaths, setup, fresh: bool) -> None:
    """A fold starting afresh records what it trains on; one resuming warns when that changed."""
    if fresh:
        record_inputs(setup.output, fold_inputs(paths, setup.configuration, setup.fold))
        return
    reasons = stale_reasons(paths, setup.configuration, setup.fold)
    if reasons:
        log.warning("WARNING: %s; --continue goes on training the same model, so it will have seen both; to train "
                    "it on the data as it is now, move %s away (autounet run does that itself)",
                    describe_stale(setup.configuration, setup.fold, reasons), setup.output.root)


def _start(setup, config: TrainingConfig, device: torch.device, dist: DistInfo, budget: dict | None,
           started: float) -> Run:
    """A new run of the setup, its budget record and the time this process started."""
    run = new_run(setup, config, device, task_for(setup.plans), dist)
    run.budget, run.started = budget, started
    return run


def _devices(device: str) -> tuple[torch.device, DistInfo]:
    """The device to train on and the data-parallel group (torchrun), each process on its own GPU."""
    dev = resolve_device(device)
    dist = init_distributed(dev.type)
    if dist.enabled and dev.type == "cuda":
        dev = resolve_device("cuda", dist.local_rank)
        torch.cuda.set_device(dev)
    return dev, dist


@contextmanager
def _fold_log(folder: FoldPaths, is_main: bool) -> Iterator[None]:
    """The fold's training_log.txt receives autounet's log while the block runs (main process only)."""
    if not is_main:
        yield
        return
    folder.root.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder.training_log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("autounet")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # the training log records progress even when the console is quiet
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        handler.close()


def _checkpoint_to_resume(folder: FoldPaths, resume: bool) -> Path | None:
    """The checkpoint to continue from; refuses to overwrite an existing run without --continue."""
    latest, final = folder.checkpoint("latest"), folder.checkpoint("final")
    if not resume:
        if latest.is_file() or final.is_file():
            raise WorkspaceError(f"{folder.root} already holds a training run; use --continue to resume it, "
                                 "or delete the folder to start over")
        return None
    source = latest if latest.is_file() else final if final.is_file() else None
    if source is None:
        log.info("--continue: no checkpoint in %s, starting from scratch", folder.root)
    return source


def _load_resume_state(folder: FoldPaths, source: Path, device: torch.device) -> dict[str, Any]:
    """The checkpoint to continue from; a damaged one raises, saying the ways out."""
    try:
        return load_checkpoint(source, device)
    except ValueError as e:
        best, final = folder.checkpoint("best"), folder.checkpoint("final")
        ways = [f"delete {folder.root} to start over"]
        if source != final and best.is_file():
            ways.insert(0, f"replace it by {best.name} to continue from the best epoch so far")
        raise WorkspaceError(f"{e}; cannot continue from it: {', or '.join(ways)}") from e


def _resume(run: Run, state: dict[str, Any], name: str) -> None:
    restore(run, state)
    if run.budget is not None:
        run.used_before_s = float(run.budget["used_s"])
    log.info("resumed from %s at epoch %d", name, run.epoch)


def _wrap_network(run: Run) -> None:
    """The network as trained: compiled if asked, wrapped for data parallelism under torchrun."""
    network: torch.nn.Module = torch.compile(run.module) if run.config.compile else run.module
    if run.dist.enabled:
        network = torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[run.device.index] if run.device.type == "cuda" else None)
    run.network = network


def _save_final(run: Run) -> None:
    """checkpoint_final replaces checkpoint_latest, once every replica is known to be the same."""
    if run.dist.enabled:
        checksum = check_replicas_identical(run.module, run.dist)
        if run.dist.is_main:
            log.info("data-parallel replicas identical on %d processes (checksum %.6f)", run.dist.world_size, checksum)
    if run.dist.is_main:
        folder = run.setup.output
        save_checkpoint(folder.checkpoint("final"), checkpoint_state(run))
        folder.checkpoint("latest").unlink(missing_ok=True)
    barrier(run.dist)


def _validate(run: Run) -> float:
    """Predict and score the fold's validation cases; returns the seconds it took."""
    started = time.monotonic()
    figures = run.task.validate(run)
    log.info("validation of fold %s: %s (%.0f s)", run.setup.fold, figures, time.monotonic() - started)
    return time.monotonic() - started
