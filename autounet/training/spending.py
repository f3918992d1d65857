"""Where a fold's time went, written as ``spending.json`` beside its checkpoints when it ends:
seconds in training steps, in the final validation and in everything else (start-up, speed
measurement, epoch transitions, checkpoints), and the iterations trained against the minimum a
network needs to learn (:func:`autounet.training.budget.learning_iterations`). ``autounet run``
reads it for the next fold's speed estimate, its closing summary and the report."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields

from autounet.io.atomic import read_json, write_json
from autounet.training.budget import describe_seconds, learning_iterations
from autounet.training.state import Run, budget_used
from autounet.workspace import FoldPaths

log = logging.getLogger("autounet.training")


@dataclass(frozen=True)
class FoldSpending:
    """One fold's time, all its processes together (JSON)."""

    configuration: str
    fold: str
    budget_s: float | None       # None: a fixed schedule
    wall_s: float
    train_s: float               # training steps, data waits included
    validation_s: float          # the final validation
    iterations: int
    learning_iterations: int     # the minimum a network needs to learn well at this batch size
    batch_size: int
    epochs: int
    variant: str | None = None   # the network variant a budget chose (autounet.autoplan.variants)

    @property
    def overhead_s(self) -> float:
        """Start-up, speed measurement, epoch transitions and checkpoints."""
        return max(0.0, self.wall_s - self.train_s - self.validation_s)

    @property
    def learned(self) -> bool:
        """Trained at least the learning minimum."""
        return self.iterations >= self.learning_iterations

    @property
    def seconds_per_iteration(self) -> float | None:
        """The speed of the real epochs (None before any)."""
        return self.train_s / self.iterations if self.iterations else None

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> "FoldSpending":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def describe(self) -> str:
        """One line: iterations against the minimum, training against overhead."""
        budget = "" if self.budget_s is None else f" of {describe_seconds(self.budget_s)}"
        return (f"{self.configuration} fold {self.fold}: {self.iterations} iterations (minimum to learn "
                f"{self.learning_iterations}), {self.train_s:.0f} s training, {self.validation_s:.0f} s validation, "
                f"{self.overhead_s:.0f} s other; {self.wall_s:.0f} s{budget}")


def write_spending(run: Run, validation_s: float) -> FoldSpending:
    """The fold's spending, written to ``spending.json`` (atomic) and logged."""
    setup, budget = run.setup, run.budget or {}
    batch = run.config.batch_size or setup.stage.batch_size
    spending = FoldSpending(setup.configuration, setup.fold, budget.get("seconds"), round(budget_used(run), 2),
                            round(run.train_s, 2), round(validation_s, 2), run.iterations, learning_iterations(batch),
                            batch, run.epoch, budget.get("variant"))
    write_json(setup.output.spending, spending.to_json())
    log.info("time: %s", spending.describe())
    if budget and not spending.learned:
        log.warning("%s fold %s trained %d iterations, below the %d a network needs to learn well: give the run more "
                    "time, or train fewer configurations", setup.configuration, setup.fold, spending.iterations,
                    spending.learning_iterations)
    return spending


def read_spending(folder: FoldPaths) -> FoldSpending | None:
    """A fold's spending, or None when it has none (unfinished, or trained by an older version)."""
    if not folder.spending.is_file():
        return None
    try:
        return FoldSpending.from_json(read_json(folder.spending))
    except (OSError, ValueError, TypeError) as e:
        log.warning("%s: unreadable (%s); ignored", folder.spending, e)
        return None
