"""Budget-aware schedules: the best training that fits a wall-clock budget on this machine.

The rules, in order:
1. Reserve time for what is not training: start-up (``STARTUP_S``), the final sliding-window
   validation of the fold (windows x mirrorings x measured forward time) and the per-epoch
   overhead (``EPOCH_OVERHEAD_S``: augmentation workers started and stopped, checkpoints).
   Test-time mirroring in the final validation is dropped when it would cost more than
   ``VALIDATION_SHARE`` of the fold's budget (the chosen model still predicts with it).
2. With the measured seconds per iteration (data loading included), choose iterations per epoch
   so that there are about ``TARGET_EPOCHS`` epochs, none shorter than ``MIN_EPOCH_S`` (measured
   on a 2-core CPU: about 0.7 s of overhead per epoch, so 20 epochs of a 50-second fold spent
   a quarter of it between epochs), one validation iteration per 10 training iterations (at
   most 50), and as many epochs as fit; then the epochs are stretched to fill the time left (whole
   epochs of a 50-second fold left up to 8 s of it unused).
3. A network learns when it sees ``MIN_LEARNING_SAMPLES`` patches in at least
   ``MIN_LEARNING_ITERATIONS`` steps (``learning_iterations``; measured: 150 CPU iterations of
   batch 2 found a large organ but not a small lesion, so 1000 iterations at batch 2; on an
   echocardiography-like 2D set with batch 100 the planned network reached Dice 0.98 in under 100
   iterations). The network is the heaviest of the planner's full-patch variants
   (:mod:`autounet.autoplan.variants`) whose fold reaches that minimum within its budget; when
   none does, the one that comes closest, unless it gets less than ``CONTEXT_FLOOR`` of its
   minimum and the half-patch variant gets further (:func:`choose_variant`): context outweighs
   iterations (half the patch: test Dice 0.61 against 0.79 on a real MRI set) until the full
   patch barely trains (one fold of 60 s on the 3D example: the full patch at 14% of its minimum
   reached a foreground Dice of 0.40, half the patch at 86% reached 0.56). One measurement of
   the planned network gives every variant's speed (:func:`estimate`); its timed steps stop
   after ``MEASUREMENT_SHARE`` of the budget (at least one: on the 2D EM set, 5.4 s a step,
   measuring in full took 46 s of a 5-minute run). ``autounet run`` makes this choice once per
   configuration, before its folds; ``autounet train --time-budget`` alone makes it for its fold.
4. While training, after every epoch, the number of epochs is re-planned from the measured wall
   time of the last epochs (``epochs_that_fit``): a machine that turns out faster or slower than
   its calibration (other jobs starting or stopping, a warmed-up cache) still ends on time. The
   learning rate follows the new total; the total never grows beyond ``MAX_EXTENSION`` times the
   first plan, and training stops early when not even one more epoch fits. Epochs are added only
   when more than one epoch and more than ``REPLAN_SLACK`` of the budget would stay unused (noise
   in epoch times must not move the total back and forth).
5. The speed estimate is checked against the first epoch: when the epoch's wall time differs
   from the prediction by more than ``SPEED_MISMATCH`` (``SPEED_MISMATCH_UNDER_LOAD`` for a
   measurement taken under load), the estimate is replaced by the speed the epoch showed and the
   epochs are re-planned with it. The network stays: it was decided before the fold began.
6. The learning rate decays towards zero at the total in force and never rises when re-planning
   adds epochs (:func:`autounet.training.config.next_lr`).
Every decision is explained in one log line, e.g. "budget 30 min, 1.90 s/iteration -> 900
iterations (36 epochs x 25); the planned network".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

from autounet.autoplan.plans import StagePlan
from autounet.autoplan.variants import VARIANTS, Variant
from autounet.inference.windows import window_starts

STARTUP_S = 2.0   # measured 1-2 s in a run: opening the cases, the final checkpoint and spending.json
EPOCH_OVERHEAD_S = 0.7           # measured: augmentation workers started and stopped, checkpoints, log line
TARGET_EPOCHS = 20
MIN_EPOCH_S = 10 * EPOCH_OVERHEAD_S  # an epoch at least this long: its overhead stays under a tenth
MIN_ITERATIONS_PER_EPOCH, MAX_ITERATIONS_PER_EPOCH = 10, 250
MIN_LEARNING_SAMPLES = 2000       # patches a network must see to learn (1000 iterations at batch 2)
MIN_LEARNING_ITERATIONS = 100     # ... in at least this many optimiser steps
CONTEXT_FLOOR = 0.25             # below this share of its minimum, a full-patch network yields to half the patch
VALIDATION_SHARE = 0.05          # mirrored final validation only while it costs at most this share of the budget
MEASUREMENT_SHARE = 0.02         # a speed measurement's timed steps stop after this share of the budget
VALIDATION_OVERHEAD = 1.3        # export, resampling and writing on top of the network's forwards
FINISH_S = 2.0                   # final checkpoint and shutdown after the last epoch
REPLAN_WINDOW = 3                # the last epochs whose wall time predicts the next ones
MAX_EXTENSION = 10.0             # sanity bound: re-planning never goes beyond 10x the first plan's epochs
REPLAN_SLACK = 0.04              # share of the budget that may stay unused before epochs are added
SPEED_MISMATCH = 1.5             # first epoch vs estimate: beyond this factor, the estimate is replaced
SPEED_MISMATCH_UNDER_LOAD = 1.25 # ... or this one when the measurement was taken under load (already suspect)


class BudgetTooSmall(ValueError):
    """Not even one epoch of the network fits the time budget; ``needed_s`` would fit one."""

    def __init__(self, message: str, needed_s: float):
        super().__init__(message)
        self.needed_s = needed_s


@dataclass(frozen=True)
class Calibration:
    """Measured (or estimated) speed of one configuration's network on this machine."""

    seconds_per_iteration: float      # one training step, data loading and augmentation included
    seconds_per_val_iteration: float  # one forward pass of a batch, no gradients
    other_cores: float | None = None  # cores other processes kept busy meanwhile (None: unknown)
    spread: float = 1.0               # slowest / fastest timed step
    under_load: bool = False          # measured while the machine was busy or unsteady

    def scaled(self, factor: float) -> "Calibration":
        """The same network ``factor`` times slower (both speeds), as a steady measurement."""
        return Calibration(self.seconds_per_iteration * factor, self.seconds_per_val_iteration * factor)


@dataclass(frozen=True)
class NetworkChoice:
    """A configuration's network decided before its folds (by ``autounet run``): the planner's
    variant (:mod:`autounet.autoplan.variants`) and its speed on this machine, measured once
    and refined from the real epochs of earlier folds."""

    variant: str
    calibration: Calibration | None = None  # None: the fold measures the variant itself

    def to_json(self) -> dict:
        return {"variant": self.variant,
                "calibration": None if self.calibration is None else asdict(self.calibration)}

    @classmethod
    def from_json(cls, values: dict) -> "NetworkChoice":
        c, name = values.get("calibration"), values["variant"]
        if name not in VARIANTS:
            raise ValueError(f"unknown network variant {name!r} (known: {', '.join(VARIANTS)})")
        return cls(name, None if c is None else Calibration(**c))


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
    mirror: bool          # test-time mirroring in the final validation
    explanation: str


@dataclass(frozen=True)
class VariantChoice:
    """A variant for a fold budget: its speed, its schedule (None: not even one epoch fits) and
    whether that schedule reaches the learning minimum."""

    variant: Variant
    calibration: Calibration
    schedule: Schedule | None
    mirror: bool

    @property
    def iterations(self) -> int:
        return self.schedule.iterations if self.schedule is not None else 0

    @property
    def needed(self) -> int:
        return learning_iterations(self.variant.stage.batch_size)

    @property
    def learns(self) -> bool:
        return self.iterations >= self.needed


def windows_per_case(stage: StagePlan, step: float = 0.5) -> int:
    """Sliding windows over a median case (2D: per slice, times the slices)."""
    dims = len(stage.patch_size)
    shape = stage.median_shape[-dims:]
    n = math.prod(len(window_starts(s, p, step)) for s, p in zip(shape, stage.patch_size))
    return n * (max(1, stage.median_shape[0]) if dims == 2 else 1)


def final_validation_seconds(stage: StagePlan, calibration: Calibration, num_cases: int, mirror: bool) -> float:
    """Expected time of the end-of-training validation of ``num_cases`` cases (a case-level
    network: whole cases in batches, with and without the mirrored copies)."""
    if not num_cases:
        return 0.0
    if stage.network.head == "pooled":
        passes = (2 ** len(stage.mirror_axes) + 1) * math.ceil(num_cases / max(stage.batch_size, 1))
        return passes * calibration.seconds_per_val_iteration * VALIDATION_OVERHEAD + 1.0
    forwards = windows_per_case(stage) * (2 ** len(stage.mirror_axes) if mirror else 1) * num_cases
    per_window = calibration.seconds_per_val_iteration / max(1, min(stage.batch_size, 8))
    return forwards * per_window * VALIDATION_OVERHEAD + num_cases * 0.5


def validation_mirror(stage: StagePlan, calibration: Calibration, num_cases: int, budget_s: float) -> bool:
    """Mirror the final validation only while that costs at most ``VALIDATION_SHARE`` of the
    budget (rule 1): on a 5-minute run the mirrored validations took 8% of the budget."""
    return final_validation_seconds(stage, calibration, num_cases, True) <= VALIDATION_SHARE * budget_s


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
    per_epoch = max(available / s / TARGET_EPOCHS, MIN_EPOCH_S / s)
    per_epoch = int(min(MAX_ITERATIONS_PER_EPOCH, max(MIN_ITERATIONS_PER_EPOCH, per_epoch)))
    epochs = int(available // epoch_seconds(calibration, per_epoch, _val_iterations(per_epoch)))
    if epochs < 1:
        per_epoch = int((available - EPOCH_OVERHEAD_S - calibration.seconds_per_val_iteration) // s)
        if per_epoch < 1:
            return None
        return Schedule(1, per_epoch, 1, reserve_s + per_epoch * s + calibration.seconds_per_val_iteration)
    # the epochs stretched to fill what is left: whole epochs alone left up to one epoch unused
    while per_epoch < MAX_ITERATIONS_PER_EPOCH and \
            epochs * epoch_seconds(calibration, per_epoch + 1, _val_iterations(per_epoch + 1)) <= available:
        per_epoch += 1
    val = _val_iterations(per_epoch)
    return Schedule(epochs, per_epoch, val, reserve_s + epochs * epoch_seconds(calibration, per_epoch, val))


def _val_iterations(per_epoch: int) -> int:
    """Validation iterations of a budgeted epoch (the pseudo Dice): one per 10 training
    iterations, at most 50 (one per 5, as without a budget, took 5% of a 5-minute run's epochs)."""
    return max(1, min(50, per_epoch // 10))


def estimate(planned: Calibration, variant: Variant) -> Calibration:
    """A variant's speed, scaled from the planned network's measured one by its share of the work."""
    if variant.name == "planned":
        return planned
    ratio = variant.relative_cost
    return Calibration(planned.seconds_per_iteration * ratio, planned.seconds_per_val_iteration * ratio,
                       planned.other_cores, planned.spread, planned.under_load)


def learning_iterations(batch_size: int) -> int:
    """Training steps a network needs to learn well at this batch size (rule 3)."""
    return max(MIN_LEARNING_ITERATIONS, math.ceil(MIN_LEARNING_SAMPLES / max(batch_size, 1)))


def plan_variant(budget_s: float, variant: Variant, calibration: Calibration, num_val_cases: int,
                 mirror: bool = True) -> VariantChoice:
    """The schedule of one variant, at ``calibration``'s speed, in ``budget_s`` (rules 1-2)."""
    mirror = mirror and validation_mirror(variant.stage, calibration, num_val_cases, budget_s)
    reserve = STARTUP_S + final_validation_seconds(variant.stage, calibration, num_val_cases, mirror)
    return VariantChoice(variant, calibration, schedule_for(budget_s, calibration, reserve), mirror)


def choose_variant(variants: Sequence[Variant], planned: Calibration, budget_s: float, num_val_cases: int,
                   mirror: bool = True) -> VariantChoice:
    """The variant a fold of ``budget_s`` trains (rule 3): the heaviest full-patch variant that
    reaches the learning minimum; else the full-patch one that comes closest, unless it gets less
    than ``CONTEXT_FLOOR`` of its minimum and a half-patch one gets further."""
    choices = [plan_variant(budget_s, v, estimate(planned, v), num_val_cases, mirror) for v in variants]
    full = [c for c in choices if c.variant.keeps_context] or choices
    learning = [c for c in full if c.learns]
    if learning:
        return learning[0]
    progress = lambda c: c.iterations / c.needed  # noqa: E731
    closest = max(full, key=progress)
    half = [c for c in choices if not c.variant.keeps_context]
    if half and progress(closest) < CONTEXT_FLOOR and progress(half[0]) > progress(closest):
        return half[0]
    return closest


def decide(budget_s: float, choice: VariantChoice, elapsed_s: float = 0.0, num_val_cases: int = 0,
           mirror: bool = True) -> BudgetDecision:
    """The schedule of a fold whose network is decided (``choice``), in what is left of
    ``budget_s`` after ``elapsed_s``; raises BudgetTooSmall when not even one epoch fits."""
    v, calibration = choice.variant, choice.calibration
    planned = plan_variant(budget_s - elapsed_s, v, calibration, num_val_cases, mirror and choice.mirror)
    sched = planned.schedule
    if sched is None:
        final_val = final_validation_seconds(v.stage, calibration, num_val_cases, False)
        one_epoch = epoch_seconds(calibration, MIN_ITERATIONS_PER_EPOCH, 1)
        raise BudgetTooSmall(f"a budget of {describe_seconds(budget_s)} does not fit one epoch of {v.description} "
                             f"({calibration.seconds_per_iteration:.2f} s/iteration, final validation {final_val:.0f} s); "
                             "give more time", needed_s=elapsed_s + STARTUP_S + final_val + one_epoch)
    note = "" if planned.learns else f" (below the {planned.needed} iterations a network needs to learn well)"
    explanation = (f"budget {describe_seconds(budget_s)}, {calibration.seconds_per_iteration:.2f} s/iteration -> "
                   f"{sched.iterations} iterations ({sched.epochs} epochs x {sched.iterations_per_epoch}){note}; "
                   f"{v.description}" + ("" if planned.mirror or not mirror else "; final validation without mirroring"))
    return BudgetDecision(sched, v.stage, v.name, calibration, planned.mirror, explanation)


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
