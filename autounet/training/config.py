"""The training configuration: every knob a field, set from the CLI, no subclass per number."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from autounet.inference.settings import PredictSettings


@dataclass(frozen=True)
class TrainingConfig:
    """How to train one fold. Defaults follow nnU-Net's documented schedule and optimiser.

    num_workers : augmentation worker processes; None chooses from the machine (see
        :func:`autounet.hardware.data_loading`); 0 runs augmentation in the main process.
    batch_size : None uses the plan's.
    time_budget_s : wall-clock budget of the fold; overrides epochs and iterations (see
        :mod:`autounet.training.budget`).
    final_validation : predict the fold's validation cases at the end, as ``validation`` says
        (window step, mirroring, probabilities: ``--no-tta``, ``--save-probabilities``); it runs
        on the training's device with the training's mixed precision (``amp``).
    """

    epochs: int = 1000
    iterations_per_epoch: int = 250
    val_iterations_per_epoch: int = 50
    initial_lr: float = 1e-2
    momentum: float = 0.99
    weight_decay: float = 3e-5
    grad_clip: float = 12.0
    lr_exponent: float = 0.9
    oversample_foreground: float = 0.33
    batch_size: int | None = None
    num_workers: int | None = None
    augmentation: bool = True
    deep_supervision: bool = True
    amp: bool = True
    compile: bool = False
    seed: int = 0
    ema_momentum: float = 0.9
    checkpoint_every: int = 1
    final_validation: bool = True
    validation: PredictSettings = PredictSettings(processes=0)
    time_budget_s: float | None = None  # choose epochs, iterations (and, if needed, a lighter network) to fit

    def __post_init__(self) -> None:
        problems = [f"{name} must be {rule}, got {getattr(self, name)}" for name, rule, ok in (
            ("epochs", "at least 1", self.epochs >= 1),
            ("iterations_per_epoch", "at least 1", self.iterations_per_epoch >= 1),
            ("val_iterations_per_epoch", "at least 1", self.val_iterations_per_epoch >= 1),
            ("initial_lr", "positive", self.initial_lr > 0),
            ("weight_decay", "0 or more", self.weight_decay >= 0),
            ("grad_clip", "positive", self.grad_clip > 0),
            ("oversample_foreground", "between 0 and 1", 0 <= self.oversample_foreground <= 1),
            ("batch_size", "at least 1 (or None: the plan's)", self.batch_size is None or self.batch_size >= 1),
            ("num_workers", "0 or more (or None: from the machine)", self.num_workers is None or self.num_workers >= 0),
            ("ema_momentum", "in [0, 1)", 0 <= self.ema_momentum < 1),
            ("checkpoint_every", "at least 1", self.checkpoint_every >= 1),
            ("time_budget_s", "positive (or None)", self.time_budget_s is None or self.time_budget_s > 0),
        ) if not ok]
        if problems:
            raise ValueError("training configuration: " + "; ".join(problems))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "TrainingConfig":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        if isinstance(values.get("validation"), dict):
            values["validation"] = PredictSettings.from_json(values["validation"])
        return cls(**values)


def poly_lr(initial_lr: float, epoch: int, epochs: int, exponent: float = 0.9) -> float:
    """Polynomial decay: initial_lr * (1 - epoch / epochs) ** exponent."""
    return initial_lr * (1 - epoch / max(epochs, 1)) ** exponent


def next_lr(initial_lr: float, previous: float | None, epoch: int, epochs: int, exponent: float = 0.9) -> float:
    """The learning rate of ``epoch``: the previous epoch's times ((T - e) / (T - e + 1)) ** exponent.
    With a fixed total T this is exactly :func:`poly_lr`; when a time budget re-plans T, the rate
    goes on decaying from where it is to zero at the new end, and never rises."""
    if previous is None or epoch == 0:
        return poly_lr(initial_lr, epoch, epochs, exponent)
    remaining = max(epochs - epoch, 0)
    return previous * (remaining / (remaining + 1)) ** exponent
