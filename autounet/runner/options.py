"""The settings of ``autounet run`` and the budget they give on this machine."""

from __future__ import annotations

from dataclasses import dataclass

from autounet.hardware import HardwareInfo
from autounet.runner.share import DEFAULT_CPU_BUDGET_S
from autounet.training.budget import describe_seconds
from autounet.training.config import TrainingConfig


@dataclass(frozen=True)
class RunOptions:
    """How ``autounet run`` trains (the command's flags; ``after_training_s`` is for the demo)."""

    time_budget_s: float | None = None        # whole wall time; None: 2 h on a CPU, the full schedule on a GPU
    device: str = "auto"
    processes: int | None = None              # preprocessing and evaluation workers
    configurations: tuple[str, ...] | None = None  # instead of the rule of autounet.runner.share
    gpu_memory_gb: float | None = None
    network: str = "plain"
    seed: int = 0
    schedule: TrainingConfig | None = None    # a fixed schedule (epochs x iterations) instead of a budget
    after_training_s: float | None = None     # kept after training (default: the share module's rule)
    dry_run: bool = False                     # plan, print the per-fold commands, train nothing
    amp: bool = True                          # mixed precision where the device has it; False: float32
    wait: bool = False                        # another process working on the dataset: wait, not an error
    keep_stale: bool = False                  # keep folds trained on other data than the dataset's now (warn)


def resolve_budget(options: RunOptions, hardware: HardwareInfo) -> tuple[float | None, str]:
    """The run's budget and the sentence that states it at the start."""
    if options.schedule is not None:
        return None, (f"fixed schedule: {options.schedule.epochs} epochs x {options.schedule.iterations_per_epoch} "
                      "iterations per fold, no time budget")
    if options.time_budget_s is not None:
        return options.time_budget_s, f"time budget {describe_seconds(options.time_budget_s)} for the whole run"
    if hardware.device == "cuda":
        return None, ("no --time-budget: the full schedule on the GPU (1000 epochs x 250 iterations per fold, "
                      "hours to days); pass --time-budget to bound it")
    return DEFAULT_CPU_BUDGET_S, (f"no --time-budget: training for {describe_seconds(DEFAULT_CPU_BUDGET_S)} on this "
                                  f"{hardware.device.upper()}; pass --time-budget to change")
