"""Train one fold of one configuration.

Phases, top to bottom: find the data and the split (``prepare_fold``), build network,
optimiser and loss, resume if asked, loop over epochs (train iterations with augmentation in
background workers, validation iterations for the pseudo-Dice, log, plot, checkpoint), then
write the final checkpoint and validate the fold with full sliding-window inference.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from tqdm import tqdm

from autounet.autoplan.plans import Plans, StagePlan, load_plans
from autounet.errors import WorkspaceError
from autounet.hardware import autocast_for, data_loading, detect_hardware
from autounet.io.atomic import read_json, write_json
from autounet.preprocess.pipeline import GT_FOLDER
from autounet.training import checkpoint as ckpt
from autounet.training.budget import (FINISH_S, REPLAN_WINDOW, Calibration, decide, epochs_that_fit,
                                      final_validation_seconds)
from autounet.training.calibration import cached, calibration_key, measure, store
from autounet.training.augmentation import (augmentation_params, enlarged_patch_size, training_transforms,
                                            validation_transforms)
from autounet.training.config import TrainingConfig, poly_lr
from autounet.training.data import BatchStream, PatchSampler, case_ids_in, open_case
from autounet.training.distributed import (DistInfo, all_reduce_sum, barrier, check_replicas_identical,
                                           init_distributed, split_batch)
from autounet.training.losses import DeepSupervisionLoss, DiceCELoss, RegionDiceBCELoss, deep_supervision_weights
from autounet.training.network import build_network
from autounet.training.progress import EpochLog, format_epoch, plot_progress
from autounet.training.validation import validate
from autounet.workspace import DatasetPaths

log = logging.getLogger("autounet.training")
NEXT_STAGE_FOLDER = "predicted_next_stage"
BUDGET_VARIANT_FILE = "budget_variant.json"  # the network a budgeted fold chose; the configuration's other folds follow
PLOT_INTERVAL_S = 30.0  # progress.png is redrawn at most this often (drawing takes ~0.5 s), and at the end


@dataclass(frozen=True)
class FoldSetup:
    """Everything a fold's training reads, found and checked before any work starts."""

    plans: Plans
    configuration: str
    stage: StagePlan
    fold: str
    train_ids: list[str]
    val_ids: list[str]
    data_folder: Path
    gt_folder: Path
    output_folder: Path
    previous_stage_folder: Path | None
    next_stage: tuple[Path, Path] | None


def fold_folder(paths: DatasetPaths, configuration: str, fold: int | str) -> Path:
    return paths.results / configuration / f"fold_{fold}"


def _folds_missing(splits: list[dict], cases: list[str]) -> list[int]:
    return sorted({i for i, s in enumerate(splits) for c in cases if c in s["val"]})


def prepare_fold(paths: DatasetPaths, configuration: str, fold: int | str) -> FoldSetup:
    """Check plans, preprocessed data, split and (for the cascade) previous-stage predictions."""
    plans = load_plans(paths.plans)
    if configuration not in plans.configurations:
        raise WorkspaceError(f"configuration '{configuration}' is not in {paths.plans}; "
                             f"planned: {', '.join(plans.configurations)}")
    stage = plans.configurations[configuration]
    data_folder = paths.preprocessed / stage.data_identifier
    available = set(case_ids_in(data_folder)) if data_folder.is_dir() else set()
    splits = read_json(paths.splits)
    if str(fold) == "all":
        train_ids = val_ids = sorted({c for s in splits for c in s["train"] + s["val"]})
    else:
        k = int(fold)
        if not 0 <= k < len(splits):
            raise WorkspaceError(f"fold {fold} does not exist: {paths.splits} has folds 0..{len(splits) - 1}")
        train_ids, val_ids = list(splits[k]["train"]), list(splits[k]["val"])
    missing = sorted(set(train_ids + val_ids) - available)
    if missing:
        raise WorkspaceError(f"{data_folder}: {len(missing)} case(s) not preprocessed (e.g. {missing[:3]}); "
                             f"run: autounet plan_and_preprocess {paths.name} -c {configuration}")
    previous = None
    if stage.previous_stage:
        previous = paths.results / stage.previous_stage / NEXT_STAGE_FOLDER
        lacking = [c for c in train_ids + val_ids if not (previous / f"{c}.npy").is_file()]
        if lacking:
            folds = " ".join(map(str, _folds_missing(splits, lacking)))
            raise WorkspaceError(
                f"{configuration} needs the cross-validation predictions of {stage.previous_stage} for every case; "
                f"{len(lacking)} are missing in {previous}. Run first: "
                f"autounet train {paths.name} {stage.previous_stage} FOLD   for FOLD in {folds}")
    next_stage = None
    for name, other in plans.configurations.items():
        if other.previous_stage == configuration:
            next_stage = (paths.preprocessed / other.data_identifier, paths.results / configuration / NEXT_STAGE_FOLDER)
    return FoldSetup(plans, configuration, stage, str(fold), train_ids, val_ids, data_folder,
                     paths.preprocessed / GT_FOLDER, fold_folder(paths, configuration, fold), previous, next_stage)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """"auto" picks CUDA, then MPS, then the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise ValueError("--device cuda: no CUDA device is available")
        return torch.device("cuda", local_rank)
    if name == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps: MPS is not available")
    return torch.device(name)


def build_loss(plans: Plans, stage: StagePlan, deep_supervision: bool) -> torch.nn.Module:
    """Dice + CE (or Dice + BCE for regions), weighted over the deep-supervision outputs."""
    if plans.regions is not None:
        base: torch.nn.Module = RegionDiceBCELoss(plans.regions, stage.batch_dice, plans.ignore_label)
    else:
        base = DiceCELoss(stage.batch_dice, plans.ignore_label)
    n = stage.network.num_stages - 1 if deep_supervision else 1
    return DeepSupervisionLoss(base, deep_supervision_weights(n))


def confusion(logits: torch.Tensor, target: torch.Tensor, plans: Plans) -> torch.Tensor:
    """(3, n_classes) TP/FP/FN of the full-resolution output on a batch (for the pseudo-Dice)."""
    valid = (target != plans.ignore_label) if plans.ignore_label is not None else torch.ones_like(target, dtype=torch.bool)
    if plans.regions is not None:
        pred = torch.sigmoid(logits.float()) > 0.5
        ref = torch.cat([torch.isin(target, torch.tensor(r, device=target.device)) for r in plans.regions], 1)
    else:
        k = logits.shape[1]
        labels = torch.arange(1, k, device=logits.device).view(1, -1, *([1] * (logits.ndim - 2)))
        pred = logits.argmax(1, keepdim=True) == labels
        ref = target == labels
    pred, ref = pred & valid, ref & valid
    axes = [0] + list(range(2, logits.ndim))
    tp = (pred & ref).sum(axes)
    return torch.stack([tp, pred.sum(axes) - tp, ref.sum(axes) - tp]).double()


def _loader(sampler: PatchSampler, transform, seed: int, epoch: int, workers: int, pin: bool):
    """An epoch's batch iterator and the function that stops its workers."""
    from batchgenerators.dataloading.multi_threaded_augmenter import MultiThreadedAugmenter
    from batchgenerators.dataloading.single_threaded_augmenter import SingleThreadedAugmenter

    stream = BatchStream(sampler, seed, epoch)
    seeds = [int(s) for s in np.random.SeedSequence([seed, epoch]).generate_state(max(workers, 1))]
    if workers == 0:
        np.random.seed(seeds[0])  # batchgenerators' transforms draw from numpy's global generator
        return SingleThreadedAugmenter(stream, transform), lambda: None
    mta = MultiThreadedAugmenter(stream, transform, workers, num_cached_per_queue=2, seeds=seeds, pin_memory=pin)
    return mta, lambda: mta._finish()


def _to_device(batch: dict, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    x = batch["data"] if isinstance(batch["data"], torch.Tensor) else torch.from_numpy(batch["data"])
    y = batch["seg"] if isinstance(batch["seg"], torch.Tensor) else torch.from_numpy(batch["seg"])
    non_blocking = device.type == "cuda"
    return x.to(device, torch.float32, non_blocking=non_blocking), y.to(device, torch.long, non_blocking=non_blocking)


@dataclass
class Run:
    """The mutable state of one training run."""

    network: torch.nn.Module        # as trained (maybe wrapped by DDP / torch.compile)
    module: torch.nn.Module         # the plain network, for checkpoints
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loss: torch.nn.Module
    log: EpochLog
    epoch: int = 0
    best_ema: float = -math.inf
    budget: dict | None = None      # --time-budget: {"seconds", "decision", "reserve_s", "planned_epochs", "used_s"}
    started: float = dataclasses.field(default_factory=time.monotonic)  # this process's start, for the budget
    used_before_s: float = 0.0      # budget seconds used by earlier processes of a resumed run


def budget_used(run: Run) -> float:
    """Seconds of the budget spent so far, earlier processes of a resumed run included."""
    return run.used_before_s + time.monotonic() - run.started


def _checkpoint(run: Run, setup: FoldSetup, config: TrainingConfig, epoch: int) -> dict:
    return {
        "network": run.module.state_dict(), "optimizer": run.optimizer.state_dict(), "scaler": run.scaler.state_dict(),
        "epoch": epoch, "best_ema": run.best_ema, "rng": ckpt.rng_state(), "log": run.log.to_json(),
        "plans": json.dumps(setup.plans.to_json()), "configuration": setup.configuration, "fold": setup.fold,
        "training_config": json.dumps(config.to_json()),
        **({"budget": {**run.budget, "used_s": budget_used(run)}} if run.budget else {}),
    }


def _precision_note(device: torch.device, config: TrainingConfig) -> str:
    ctx = autocast_for(device, config.amp)
    return f", mixed precision ({ctx.fast_dtype})" if isinstance(ctx, torch.autocast) else ", float32"


def _amp(device: torch.device, config: TrainingConfig):
    return autocast_for(device, config.amp)


def train_epoch(run: Run, batches: Iterator, config: TrainingConfig, device: torch.device, show_bar: bool) -> float:
    """One epoch of SGD steps; returns the mean loss."""
    run.network.train()
    losses = []
    bar = tqdm(range(config.iterations_per_epoch), desc=f"epoch {run.epoch}", unit="it", leave=False,
               disable=None if show_bar else True, dynamic_ncols=True)  # None: no bar when not a terminal
    for _ in bar:
        x, y = _to_device(next(batches), device)
        run.optimizer.zero_grad(set_to_none=True)
        with _amp(device, config):
            loss = run.loss(run.network(x), y)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.network.parameters(), config.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        losses.append(loss.detach().item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return float(np.mean(losses))


def validation_epoch(run: Run, batches: Iterator, setup: FoldSetup, config: TrainingConfig,
                     device: torch.device, dist: DistInfo) -> tuple[float, list[float]]:
    """Loss and per-class pseudo-Dice on validation patches (no augmentation), summed over ranks."""
    run.network.eval()
    totals = torch.zeros(2, dtype=torch.float64)
    counts = None
    with torch.no_grad():
        for _ in range(config.val_iterations_per_epoch):
            x, y = _to_device(next(batches), device)
            with _amp(device, config):
                out = run.network(x)
                loss = run.loss(out, y)
            full = out[0] if isinstance(out, (list, tuple)) else out
            c = confusion(full, y, setup.plans).cpu()
            counts = c if counts is None else counts + c
            totals += torch.tensor([loss.item(), 1.0], dtype=torch.float64)
    all_reduce_sum(totals, dist)
    all_reduce_sum(counts, dist)
    tp, fp, fn = counts
    dice = [float(2 * a / (2 * a + b + c)) if (a + b + c) > 0 else float("nan") for a, b, c in zip(tp, fp, fn)]
    return float(totals[0] / max(totals[1], 1)), dice


def _setup_logging(folder: Path) -> logging.Handler:
    folder.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(folder / "training_log.txt")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    handler.setLevel(logging.INFO)
    logger = logging.getLogger("autounet")
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)  # the training log records progress even when the console is quiet
    logger.addHandler(handler)
    return handler


def _checkpoint_to_resume(folder: Path, resume: bool) -> Path | None:
    """The checkpoint to continue from; refuses to overwrite an existing run without --continue."""
    latest, final = folder / ckpt.LATEST, folder / ckpt.FINAL
    if not resume:
        if latest.is_file() or final.is_file():
            raise WorkspaceError(f"{folder} already holds a training run; use --continue to resume it, "
                                 "or delete the folder to start over")
        return None
    source = latest if latest.is_file() else final if final.is_file() else None
    if source is None:
        log.info("--continue: no checkpoint in %s, starting from scratch", folder)
    return source


def _restore(run: Run, state: dict) -> None:
    run.module.load_state_dict(state["network"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scaler.load_state_dict(state["scaler"])
    run.epoch, run.best_ema = int(state["epoch"]), float(state["best_ema"])
    run.log = EpochLog.from_json(state["log"])
    ckpt.restore_rng_state(state["rng"])


def _with_stage(setup: FoldSetup, stage: StagePlan) -> FoldSetup:
    """The fold's setup with another version of its configuration (a budget's lighter variant)."""
    plans = dataclasses.replace(setup.plans, configurations={**setup.plans.configurations, setup.configuration: stage})
    return dataclasses.replace(setup, plans=plans, stage=stage)


def _new_run(setup: FoldSetup, config: TrainingConfig, dev: torch.device) -> Run:
    torch.manual_seed(config.seed)  # identical initial weights on every rank
    module = build_network(setup.stage.network, deep_supervision=config.deep_supervision).to(dev)
    optimizer = torch.optim.SGD(module.parameters(), lr=config.initial_lr, momentum=config.momentum,
                                weight_decay=config.weight_decay, nesterov=True)
    scaler = torch.amp.GradScaler("cuda", enabled=dev.type == "cuda" and config.amp)
    return Run(module, module, optimizer, scaler, build_loss(setup.plans, setup.stage, config.deep_supervision),
               EpochLog())


@dataclass
class Inputs:
    """Where a run's batches come from."""

    train_sampler: PatchSampler
    train_transform: object
    val_sampler: PatchSampler
    val_transform: object
    workers: int
    pin_memory: bool
    batch: int


def _inputs(setup: FoldSetup, config: TrainingConfig, dev: torch.device, dist: DistInfo) -> Inputs:
    stage = setup.stage
    batch = split_batch(config.batch_size or stage.batch_size, dist)
    params = augmentation_params(stage.patch_size, stage.mirror_axes)
    n_prev = stage.network.input_channels - len(setup.plans.channel_names)
    open_all = lambda ids: [open_case(setup.data_folder, c, setup.previous_stage_folder) for c in ids]  # noqa: E731
    if config.augmentation:
        train_sampler = PatchSampler(open_all(setup.train_ids), enlarged_patch_size(stage.patch_size, params), batch,
                                     config.oversample_foreground)
        train_transform = training_transforms(stage.patch_size, params, n_prev)
    else:
        train_sampler = PatchSampler(open_all(setup.train_ids), stage.patch_size, batch, config.oversample_foreground)
        train_transform = validation_transforms(n_prev)
    val_sampler = PatchSampler(open_all(setup.val_ids), stage.patch_size, batch, config.oversample_foreground)
    workers, pin = data_loading(detect_hardware(dev.type))
    workers = workers if config.num_workers is None else config.num_workers
    return Inputs(train_sampler, train_transform, val_sampler, validation_transforms(n_prev), workers, pin, batch)


def _calibrate(setup: FoldSetup, config: TrainingConfig, dev: torch.device) -> Calibration:
    """Seconds per training iteration (data loading included) and per forward pass of a batch,
    measured with the real pipeline, or read from the per-machine cache."""
    inputs = _inputs(setup, config, dev, DistInfo())
    key = calibration_key(setup.stage, dev, config.amp, inputs.workers, config.augmentation)
    hit = cached(key)
    if hit is not None:
        log.info("calibration (cached): %.3f s/iteration, %.3f s/forward for %s", hit.seconds_per_iteration,
                 hit.seconds_per_val_iteration, _network_text(setup.stage))
        return hit
    run = _new_run(setup, config, dev)
    batches, stop = _loader(inputs.train_sampler, inputs.train_transform, config.seed, 10**6, inputs.workers,
                            inputs.pin_memory)
    val_batches, _ = _loader(inputs.val_sampler, inputs.val_transform, config.seed + 500, 10**6, 0, False)
    x, _ = _to_device(next(val_batches), dev)

    def forwards(n: int) -> None:  # the network alone, as sliding-window prediction runs it (no data loading)
        run.network.eval()
        with torch.no_grad(), _amp(dev, config):
            for _ in range(n):
                run.network(x)

    try:
        calibration = measure(
            lambda n: train_epoch(run, batches, dataclasses.replace(config, iterations_per_epoch=n), dev, False),
            forwards)
    finally:
        stop()
    store(key, calibration)
    log.info("calibration: %.3f s/iteration, %.3f s/forward for %s", calibration.seconds_per_iteration,
             calibration.seconds_per_val_iteration, _network_text(setup.stage))
    return calibration


def _network_text(stage: StagePlan) -> str:
    return (f"patch {stage.patch_size}, batch {stage.batch_size}, {stage.network.num_stages} stages, "
            f"features {'-'.join(map(str, stage.network.features_per_stage))}")


def _apply_budget(setup: FoldSetup, config: TrainingConfig, dev: torch.device, started: float
                  ) -> tuple[FoldSetup, TrainingConfig, dict]:
    """Choose schedule and network variant for the time budget (rules in training/budget.py). The
    first fold of a configuration chooses the network; its other folds keep that choice, so that
    they can be ensembled, and choose only their schedule."""
    n_val = len(setup.val_ids) if config.final_validation and setup.fold != "all" else 0
    planned = json.dumps(dataclasses.asdict(setup.stage), sort_keys=True, default=list)
    chosen = _sibling_variant(setup.output_folder, planned)
    if chosen is not None:
        log.info("network: %s, as fold %s of this configuration chose (folds must share a network to be ensembled)",
                 chosen["variant"], chosen["fold"])
    decision = decide(config.time_budget_s, setup.stage,
                      lambda stage: _calibrate(_with_stage(setup, stage), config, dev), n_val, config.validation_tta,
                      elapsed=lambda: time.monotonic() - started,
                      variant=chosen["variant"] if chosen is not None else None)
    if chosen is None:
        write_json(setup.output_folder / BUDGET_VARIANT_FILE,
                   {"variant": decision.variant, "fold": setup.fold, "planned_stage": json.loads(planned)})
    s = decision.schedule
    config = dataclasses.replace(config, epochs=s.epochs, iterations_per_epoch=s.iterations_per_epoch,
                                 val_iterations_per_epoch=s.val_iterations_per_epoch)
    final_val = final_validation_seconds(decision.stage, decision.calibration, n_val, config.validation_tta)
    log.info("%s; final validation expected to take %.0f s", decision.explanation, final_val)
    return _with_stage(setup, decision.stage), config, {
        "seconds": config.time_budget_s, "decision": decision.explanation, "reserve_s": final_val + FINISH_S,
        "planned_epochs": s.epochs}


def _sibling_variant(folder: Path, planned: str) -> dict | None:
    """The variant another fold of this configuration chose for the same planned network, if any."""
    for f in sorted(folder.parent.glob(f"fold_*/{BUDGET_VARIANT_FILE}")):
        try:
            d = read_json(f)
            if json.dumps(d["planned_stage"], sort_keys=True) == planned and isinstance(d["variant"], str):
                return d
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("%s: unreadable, ignored", f)
    return None


def _budget_from_checkpoint(state: dict, setup: FoldSetup, config: TrainingConfig
                            ) -> tuple[FoldSetup, TrainingConfig, dict]:
    """A resumed budgeted run keeps the schedule and network it chose at the start."""
    stored = TrainingConfig.from_json(json.loads(state["training_config"]))
    config = dataclasses.replace(config, epochs=stored.epochs, iterations_per_epoch=stored.iterations_per_epoch,
                                 val_iterations_per_epoch=stored.val_iterations_per_epoch,
                                 time_budget_s=stored.time_budget_s)
    stage = Plans.from_json(json.loads(state["plans"])).configurations[setup.configuration]
    budget = dict(state["budget"])
    budget.setdefault("used_s", sum(state["log"]["epoch_seconds"]))  # checkpoints of older versions lack it
    used = budget["used_s"]
    log.info("budget %.0f s: %.0f s used by %d of %d epochs; continuing the same network and schedule, re-planned "
             "with the time left (%s)", budget["seconds"], used, int(state["epoch"]), config.epochs, budget["decision"])
    return _with_stage(setup, stage), config, budget


def train_fold(paths: DatasetPaths, configuration: str, fold: int | str, config: TrainingConfig = TrainingConfig(),
               device: str = "auto", resume: bool = False) -> Path:
    """Train (or resume) one fold and validate it; returns the fold's output folder."""
    started = time.monotonic()
    setup = prepare_fold(paths, configuration, fold)
    dev = resolve_device(device)
    dist = init_distributed(dev.type)
    if dist.enabled and dev.type == "cuda":
        dev = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(dev)
    folder = setup.output_folder
    handler = _setup_logging(folder) if dist.is_main else None
    try:
        source = _checkpoint_to_resume(folder, resume)
        state = ckpt.load_checkpoint(source, dev) if source is not None else None
        budget = None
        if state is not None and "budget" in state:
            setup, config, budget = _budget_from_checkpoint(state, setup, config)
        elif config.time_budget_s and state is None:
            if dist.enabled:
                raise ValueError("--time-budget is not supported with torchrun yet; give --epochs and "
                                 "--iterations-per-epoch instead")
            setup, config, budget = _apply_budget(setup, config, dev, started)
        elif config.time_budget_s:
            log.warning("--time-budget ignored: resuming a run with a fixed schedule")
        run = _new_run(setup, config, dev)
        run.budget, run.started = budget, started
        if budget is not None and state is not None:
            run.used_before_s = float(budget["used_s"])
        finished = False
        if state is not None:
            _restore(run, state)
            finished = source.name == ckpt.FINAL
            log.info("resumed from %s at epoch %d", source.name, run.epoch)
        module = run.module
        network: torch.nn.Module = torch.compile(module) if config.compile else module
        if dist.enabled:
            network = torch.nn.parallel.DistributedDataParallel(network, device_ids=[dev.index] if dev.type == "cuda" else None)
        run.network = network
        if not finished:
            config = _train_epochs(run, setup, config, dev, dist)
        if dist.enabled:
            checksum = check_replicas_identical(module, dist)
            if dist.is_main:
                log.info("data-parallel replicas identical on %d processes (checksum %.6f)", dist.world_size, checksum)
        if dist.is_main:
            ckpt.save_checkpoint(folder / ckpt.FINAL, _checkpoint(run, setup, config, config.epochs))
            (folder / ckpt.LATEST).unlink(missing_ok=True)
        barrier(dist)
        if dist.is_main and config.final_validation and setup.fold != "all":
            validation_started = time.monotonic()
            summary = validate(module, setup.plans, setup.stage, setup.val_ids, setup.data_folder, setup.gt_folder,
                               folder / "validation", dev, mirror=config.validation_tta, step=config.validation_step,
                               save_probabilities=config.save_probabilities,
                               previous_stage_folder=setup.previous_stage_folder, next_stage=setup.next_stage,
                               amp=config.amp)
            log.info("validation of fold %s: mean Dice per class %s, foreground mean %.4f (%.0f s)", setup.fold,
                     {k: round(v, 4) for k, v in summary["mean_dice"].items()}, summary["foreground_mean_dice"],
                     time.monotonic() - validation_started)
        if budget is not None and dist.is_main:
            log.info("time budget %.0f s, used %.0f s (%.0f s by this process)", budget["seconds"], budget_used(run),
                     time.monotonic() - started)
        barrier(dist)
        return folder
    finally:
        if handler is not None:
            logging.getLogger("autounet").removeHandler(handler)
            handler.close()


def _replan(run: Run, config: TrainingConfig, epoch_walls: list[float]) -> TrainingConfig:
    """A budgeted run's total epochs re-planned from the epochs' measured wall time (budget.epochs_that_fit)."""
    b, used = run.budget, budget_used(run)
    total = epochs_that_fit(b["seconds"], used, run.epoch, epoch_walls, b.get("reserve_s", FINISH_S),
                            b.get("planned_epochs", config.epochs), config.epochs)
    if total != config.epochs:
        recent = epoch_walls[-REPLAN_WINDOW:]
        log.info("budget: %.0f s used, epochs take %.1f s -> %d epochs instead of %d", used,
                 sum(recent) / len(recent), total, config.epochs)
        config = dataclasses.replace(config, epochs=total)
    return config


def _train_epochs(run: Run, setup: FoldSetup, config: TrainingConfig, dev: torch.device, dist: DistInfo
                  ) -> TrainingConfig:
    """The epoch loop; returns the config with the number of epochs actually run (a budget may change it)."""
    stage, folder = setup.stage, setup.output_folder
    inputs = _inputs(setup, config, dev, dist)
    if run.epoch == 0 and dist.is_main:
        log.info("training %s fold %s: %d train / %d validation cases, patch %s, batch %d%s, %d epochs x %d iterations, "
                 "%d augmentation worker(s), device %s%s", setup.configuration, setup.fold, len(setup.train_ids),
                 len(setup.val_ids), stage.patch_size, inputs.batch,
                 f" x {dist.world_size} processes" if dist.enabled else "", config.epochs, config.iterations_per_epoch,
                 inputs.workers, dev, _precision_note(dev, config))
    seed = config.seed * 1000 + dist.rank
    last_plot = -math.inf
    epoch_walls: list[float] = []
    epoch_end = time.monotonic()
    while run.epoch < config.epochs:
        start = time.perf_counter()
        lr = poly_lr(config.initial_lr, run.epoch, config.epochs, config.lr_exponent)
        for g in run.optimizer.param_groups:
            g["lr"] = lr
        torch.manual_seed(config.seed * 100003 + run.epoch)
        batches, stop = _loader(inputs.train_sampler, inputs.train_transform, seed, run.epoch, inputs.workers,
                                inputs.pin_memory)
        try:
            train_loss = train_epoch(run, batches, config, dev, dist.is_main)
        finally:
            stop()
        val_batches, _ = _loader(inputs.val_sampler, inputs.val_transform, seed + 500, run.epoch, 0, False)
        val_loss, dice = validation_epoch(run, val_batches, setup, config, dev, dist)
        finite = [d for d in dice if not math.isnan(d)]
        pseudo = float(np.mean(finite)) if finite else float("nan")
        prev_ema = run.log.pseudo_dice_ema[-1] if run.log.pseudo_dice_ema else None
        ema = pseudo if prev_ema is None or math.isnan(prev_ema) else (
            prev_ema if math.isnan(pseudo) else config.ema_momentum * prev_ema + (1 - config.ema_momentum) * pseudo)
        run.log.append(epoch=run.epoch, train_loss=train_loss, val_loss=val_loss, pseudo_dice=pseudo,
                       pseudo_dice_ema=ema, lr=lr, epoch_seconds=time.perf_counter() - start)
        run.epoch += 1
        if run.budget is not None:  # wall time since the previous epoch ended: last epoch's checkpoint included
            epoch_walls.append(time.monotonic() - epoch_end)
            epoch_end = time.monotonic()
            config = _replan(run, config, epoch_walls)
        if dist.is_main:
            log.info("%s", format_epoch(run.log, config.epochs))
            if not math.isnan(ema) and ema > run.best_ema:
                run.best_ema = ema
                ckpt.save_checkpoint(folder / ckpt.BEST, _checkpoint(run, setup, config, run.epoch))
                log.info("new best pseudo-Dice EMA %.4f: checkpoint_best saved", ema)
            if run.epoch % config.checkpoint_every == 0 or run.epoch == config.epochs:
                ckpt.save_checkpoint(folder / ckpt.LATEST, _checkpoint(run, setup, config, run.epoch))
            if time.monotonic() - last_plot > PLOT_INTERVAL_S or run.epoch == config.epochs:
                plot_progress(run.log, folder / "progress.png")
                last_plot = time.monotonic()
    return config
