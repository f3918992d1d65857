"""Budget-aware schedules: the best training that fits a wall-clock budget on this machine.

The rules, in order:
1. Reserve time for what is not training: start-up (``STARTUP_S``) and the final sliding-window
   validation of the fold (windows x mirrorings x measured forward time).
2. With the measured seconds per iteration (data loading included), choose iterations per epoch
   so that there are about ``TARGET_EPOCHS`` epochs (between 10 and 250 iterations each: enough
   epochs for the learning-rate decay and checkpoints), one validation iteration per 5 training
   iterations (at most 50), and as many epochs as fit.
3. If that gives the planned network fewer than ``learning_iterations(batch)`` iterations, it
   would barely learn: the minimum is ``MIN_LEARNING_SAMPLES`` patches seen, in at least
   ``MIN_LEARNING_ITERATIONS`` steps (measured: 150 CPU iterations of batch 2 found a large organ
   but not a small lesion, so 1000 iterations at batch 2; on an echocardiography-like 2D set with
   batch 100 the planned network reached Dice 0.98 in under 100 iterations, while the half-patch
   variant chosen by a flat 1000-iteration rule stayed at 0.63), so
   lighter variants are tried in order — half the features; then also one stage fewer; then
   also half the patch — and the first that reaches the minimum is taken (else the one with the
   most iterations). Only the planned network is measured up front; a variant's speed is
   estimated from its share of the work (activation volume, which tracks the convolutions'
   arithmetic), and the variant finally chosen is measured before its schedule is fixed.
   Time already spent (start-up, calibration) comes off the budget.
4. While training, after every epoch, the number of epochs is re-planned from the measured wall
   time of the last epochs (``epochs_that_fit``): a machine that turns out faster or slower than
   its calibration (other jobs starting or stopping, a warmed-up cache) still ends on time. The
   learning rate follows the new total; the total never grows beyond ``MAX_EXTENSION`` times the
   first plan, and training stops early when not even one more epoch fits. Epochs are added only
   when more than one epoch and more than ``REPLAN_SLACK`` of the budget would stay unused (noise
   in epoch times must not move the total back and forth).
5. The calibration is checked against the first epoch: when the epoch's wall time differs from
   what the calibration predicted by more than ``SPEED_MISMATCH`` (the machine was busy while it
   measured, or became busy since; ``SPEED_MISMATCH_UNDER_LOAD`` for a calibration that noticed
   load: with torch's threads fitted to the load, a competing process slowed it "only" 1.6-1.8x,
   and a first epoch on the quiet machine came out 1.52x faster), the cached calibration is
   replaced by the speed the epoch
   showed, and the fold that chose the configuration's network measures again and chooses again;
   if it now takes another network, it starts over with it (about one epoch is lost, not the run).
6. The learning rate decays towards zero at the total in force and never rises when re-planning
   adds epochs (:func:`autounet.training.config.next_lr`).
Every decision is explained in one log line, e.g. "budget 30 min, 1.90 s/iteration -> 900
iterations (36 epochs x 25); planned network kept".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from autounet.autoplan.memory import GIB, activation_elements, estimate_training_bytes
from autounet.autoplan.plans import NetworkTopology, StagePlan
from autounet.autoplan.topology import pad_to_multiple

STARTUP_S = 5.0   # process start-up before the fold begins, and the final checkpoint
EPOCH_OVERHEAD_S = 0.5           # augmentation workers started and stopped, checkpoint, log line, plot
TARGET_EPOCHS = 20
MIN_ITERATIONS_PER_EPOCH, MAX_ITERATIONS_PER_EPOCH = 10, 250
MIN_LEARNING_SAMPLES = 2000       # patches a network must see to learn (1000 iterations at batch 2)
MIN_LEARNING_ITERATIONS = 100     # ... in at least this many optimiser steps
VALIDATION_OVERHEAD = 1.3        # export, resampling and writing on top of the network's forwards
FINISH_S = 2.0                   # final checkpoint and shutdown after the last epoch
REPLAN_WINDOW = 3                # the last epochs whose wall time predicts the next ones
MAX_EXTENSION = 10.0             # sanity bound: re-planning never goes beyond 10x the first plan's epochs
REPLAN_SLACK = 0.04              # share of the budget that may stay unused before epochs are added
SPEED_MISMATCH = 1.5             # first epoch vs calibration: beyond this factor, measure and choose again
SPEED_MISMATCH_UNDER_LOAD = 1.25 # ... or this one when the calibration was taken under load (already suspect)


class BudgetTooSmall(ValueError):
    """Not even one epoch of the lightest network fits the time budget; ``needed_s`` would fit one."""

    def __init__(self, message: str, needed_s: float):
        super().__init__(message)
        self.needed_s = needed_s


@dataclass(frozen=True)
class Calibration:
    """Measured speed of one configuration on this machine."""

    seconds_per_iteration: float      # one training step, data loading and augmentation included
    seconds_per_val_iteration: float  # one forward pass of a batch, no gradients
    other_cores: float | None = None  # cores other processes kept busy meanwhile (None: unknown)
    spread: float = 1.0               # slowest / fastest timed step
    under_load: bool = False          # measured while the machine was busy or unsteady

    def scaled(self, factor: float) -> "Calibration":
        """The same configuration ``factor`` times slower (both speeds), as a steady measurement."""
        return Calibration(self.seconds_per_iteration * factor, self.seconds_per_val_iteration * factor)


@dataclass(frozen=True)
class Schedule:
    epochs: int
    iterations_per_epoch: int
    val_iterations_per_epoch: int
    expected_seconds: float

    @property
    def iterations(self) -> int:
        return self.epochs * self.iterations_per_epoch


@dataclass(frozen=True)
class BudgetDecision:
    schedule: Schedule
    stage: StagePlan
    variant: str
    calibration: Calibration
    explanation: str


def windows_per_case(stage: StagePlan, step: float = 0.5) -> int:
    """Sliding windows over a median case (2D: per slice, times the slices)."""
    dims = len(stage.patch_size)
    shape = stage.median_shape[-dims:]
    n = math.prod(max(1, math.ceil((s - p) / (p * step)) + 1) if s > p else 1 for s, p in zip(shape, stage.patch_size))
    return n * (max(1, stage.median_shape[0]) if dims == 2 else 1)


def final_validation_seconds(stage: StagePlan, calibration: Calibration, num_cases: int, mirror: bool) -> float:
    """Expected time of the end-of-training validation of ``num_cases`` cases (a case-level
    network: whole cases in batches, with and without the mirrored copies)."""
    if stage.network.head == "pooled":
        passes = (2 ** len(stage.mirror_axes) + 1) * math.ceil(num_cases / max(stage.batch_size, 1))
        return passes * calibration.seconds_per_val_iteration * VALIDATION_OVERHEAD + 1.0
    forwards = windows_per_case(stage) * (2 ** len(stage.mirror_axes) if mirror else 1) * num_cases
    per_window = calibration.seconds_per_val_iteration / max(1, min(stage.batch_size, 8))
    return forwards * per_window * VALIDATION_OVERHEAD + num_cases * 0.5


def epoch_seconds(calibration: Calibration, iterations: int, val_iterations: int) -> float:
    """Expected wall time of one epoch: training steps, validation forwards and the per-epoch overhead."""
    return (iterations * calibration.seconds_per_iteration + val_iterations * calibration.seconds_per_val_iteration
            + EPOCH_OVERHEAD_S)


def schedule_for(budget_s: float, calibration: Calibration, reserve_s: float) -> Schedule | None:
    """Epochs x iterations that fit ``budget_s`` minus ``reserve_s`` (None when not even one epoch fits)."""
    available = budget_s - reserve_s
    s = calibration.seconds_per_iteration
    if available <= 0 or s <= 0:
        return None
    per_epoch = int(min(MAX_ITERATIONS_PER_EPOCH, max(MIN_ITERATIONS_PER_EPOCH, available / s / TARGET_EPOCHS)))
    val = max(1, min(50, per_epoch // 5))
    epoch_s = epoch_seconds(calibration, per_epoch, val)
    epochs = int(available // epoch_s)
    if epochs < 1:
        per_epoch = int((available - EPOCH_OVERHEAD_S - calibration.seconds_per_val_iteration) // s)
        if per_epoch < 1:
            return None
        return Schedule(1, per_epoch, 1, reserve_s + per_epoch * s + calibration.seconds_per_val_iteration)
    return Schedule(epochs, per_epoch, val, reserve_s + epochs * epoch_s)


def _with_network(stage: StagePlan, net: NetworkTopology, patch: tuple[int, ...]) -> StagePlan:
    return replace(stage, network=net, patch_size=patch,
                   estimated_memory_gb=round(estimate_training_bytes(patch, net, stage.batch_size) / GIB, 3))


def lighter_variants(stage: StagePlan) -> list[tuple[str, StagePlan]]:
    """Cheaper versions of a configuration's network, lightest last."""
    net = stage.network
    half = replace(net, features_per_stage=tuple(max(8, f // 2) for f in net.features_per_stage))
    out = [("half the features", _with_network(stage, half, stage.patch_size))]
    if net.num_stages > 3:
        n = net.num_stages - 1
        shallow = replace(half, features_per_stage=half.features_per_stage[:n], kernel_sizes=net.kernel_sizes[:n],
                          strides=net.strides[:n], convs_per_stage_encoder=net.convs_per_stage_encoder[:n],
                          convs_per_stage_decoder=net.convs_per_stage_decoder[:max(0, n - 1)])
        out.append(("half the features, one stage fewer", _with_network(stage, shallow, stage.patch_size)))
    last = out[-1][1].network
    if net.head == "pooled":  # a case-level network takes the whole preprocessed image: its input size stays
        return out
    smaller = tuple(pad_to_multiple([p // 2], [f])[0] if p >= 2 * f else p
                    for p, f in zip(stage.patch_size, last.downsampling_factor))
    if smaller != tuple(stage.patch_size):
        out.append((out[-1][0] + ", half the patch", _with_network(stage, last, smaller)))
    return out


def estimate(measured: Calibration, stage: StagePlan, variant: StagePlan) -> Calibration:
    """A variant's speed, scaled from a measured configuration by its share of the work."""
    work = activation_elements(stage.patch_size, stage.network) * stage.batch_size
    ratio = activation_elements(variant.patch_size, variant.network) * variant.batch_size / work
    return Calibration(measured.seconds_per_iteration * ratio, measured.seconds_per_val_iteration * ratio)


def learning_iterations(batch_size: int) -> int:
    """Training steps a network needs to learn well at this batch size (rule 3)."""
    return max(MIN_LEARNING_ITERATIONS, math.ceil(MIN_LEARNING_SAMPLES / max(batch_size, 1)))


def decide(budget_s: float, stage: StagePlan, measure: Callable[[StagePlan], Calibration], num_val_cases: int,
           mirror: bool = True, elapsed: Callable[[], float] = lambda: 0.0, variant: str | None = None
           ) -> BudgetDecision:
    """Choose network variant and schedule for a budget (rules in the module docstring).

    elapsed : seconds already spent of the budget (start-up, calibration), read when needed;
    variant : a variant already chosen for this configuration (by another fold: folds must share
    one network to be ensembled); only its schedule is chosen then."""
    candidates = [("planned network kept", stage)] + lighter_variants(stage)
    if variant is not None and any(name == variant for name, _ in candidates):
        candidates = [(name, c) for name, c in candidates if name == variant]
    base = measure(stage)

    def plan(candidate: StagePlan, calibration: Calibration) -> Schedule | None:
        reserve = STARTUP_S + final_validation_seconds(candidate, calibration, num_val_cases, mirror)
        return schedule_for(budget_s - elapsed(), calibration, reserve)

    tried = []
    for name, candidate in candidates:
        calibration = base if candidate is stage else estimate(base, stage, candidate)
        tried.append((name, candidate, plan(candidate, calibration)))
        if tried[-1][2] is not None and tried[-1][2].iterations >= learning_iterations(candidate.batch_size):
            break
    else:
        feasible = [t for t in tried if t[2] is not None]
        tried = [max(feasible, key=lambda t: t[2].iterations)] if feasible else tried[-1:]
    name, candidate, sched = tried[-1]
    calibration = base if candidate is stage else measure(candidate)
    sched = plan(candidate, calibration)
    if sched is None:
        final_val = final_validation_seconds(candidate, calibration, num_val_cases, mirror)
        one_epoch = epoch_seconds(calibration, MIN_ITERATIONS_PER_EPOCH, 1)
        network = "the planned network" if candidate is stage else f"the variant with {name}"
        raise BudgetTooSmall(f"a budget of {describe_seconds(budget_s)} does not fit one epoch of {network} "
                             f"({calibration.seconds_per_iteration:.2f} s/iteration, final validation {final_val:.0f} s); "
                             "give more time", needed_s=elapsed() + STARTUP_S + final_val + one_epoch)
    needed = learning_iterations(candidate.batch_size)
    note = "" if sched.iterations >= needed else f" (below the {needed} iterations a network needs to learn well)"
    explanation = (f"budget {describe_seconds(budget_s)}, {calibration.seconds_per_iteration:.2f} s/iteration -> "
                   f"{sched.iterations} iterations ({sched.epochs} epochs x {sched.iterations_per_epoch}){note}; "
                   f"{name}")
    return BudgetDecision(sched, candidate, name, calibration, explanation)


def speed_ratio(calibration: Calibration, iterations: int, val_iterations: int, wall_s: float) -> float:
    """How many times slower (> 1) or faster (< 1) an epoch ran than ``calibration`` predicted."""
    return wall_s / max(epoch_seconds(calibration, iterations, val_iterations), 1e-9)


def epochs_that_fit(budget_s: float, used_s: float, done: int, epoch_walls: list[float], reserve_s: float,
                    planned: int, current: int) -> int:
    """Total epochs of a budgeted run after ``done`` epochs, from the wall time they took.

    used_s : seconds of the budget spent so far (all processes of the run);
    epoch_walls : wall seconds of the epochs run by this process, checkpoints included;
    reserve_s : what still comes after the last epoch (final validation, final checkpoint);
    planned : the total chosen before training (bounds how far re-planning may extend it);
    current : the total in force. It is kept while it fits and leaves no more than one epoch or
    ``REPLAN_SLACK`` of the budget unused, so that noise in epoch times does not move it back
    and forth."""
    if not epoch_walls:
        return current
    recent = epoch_walls[-REPLAN_WINDOW:]
    per_epoch = sum(recent) / len(recent)
    if per_epoch <= 0:
        return current
    fit = done + math.floor((budget_s - used_s - reserve_s) / per_epoch)
    if current <= fit and fit - current <= max(1.0, REPLAN_SLACK * budget_s / per_epoch):
        return current
    return max(done, min(fit, math.ceil(planned * MAX_EXTENSION)))


DURATION_FORMS = "30m, 30min, 8h, 1h30m or 90s"


def parse_duration(text: str) -> float:
    """"30m", "30min", "8h", "1h30m", "90s" -> seconds. A bare number is refused: minutes or seconds?"""
    import re

    t = re.sub(r"\s+", "", text.strip().lower())
    parts = re.findall(r"(\d+(?:\.\d+)?)(h|min|m|s)", t)
    if re.fullmatch(r"\d+(\.\d+)?", t):
        raise ValueError(f"time budget '{text}' needs a unit: write e.g. {DURATION_FORMS}")
    if not parts or "".join(a + b for a, b in parts) != t:
        raise ValueError(f"time budget '{text}' not understood; write e.g. {DURATION_FORMS}")
    seconds = sum(float(v) * {"h": 3600, "m": 60, "min": 60, "s": 1}[u] for v, u in parts)
    if seconds <= 0:
        raise ValueError(f"time budget '{text}' must be positive")
    return seconds


def describe_seconds(seconds: float) -> str:
    """A duration for people: "45 s", "20 min", "2 h", "1 h 30 min"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{minutes} min"
    return f"{hours} h" + (f" {rest} min" if rest else "")
