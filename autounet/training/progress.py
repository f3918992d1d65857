"""The training log: per-epoch numbers, a text line per epoch, and the curves drawn from them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autounet.io.plots import draw_curves, new_figure, save_figure


@dataclass
class EpochLog:
    """One list per quantity, one entry per finished epoch."""

    epoch: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    pseudo_dice: list[float] = field(default_factory=list)
    pseudo_dice_ema: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    epoch_seconds: list[float] = field(default_factory=list)

    def append(self, **values: float) -> None:
        for k, v in values.items():
            getattr(self, k).append(v)

    def to_json(self) -> dict[str, list]:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "EpochLog":
        return cls(**{k: list(v) for k, v in d.items() if k in cls.__dataclass_fields__})


def plot_progress(log: EpochLog, path: Path, metric: str = "pseudo Dice") -> None:
    """Losses, the validation score (and its EMA), learning rate and epoch time against epochs."""
    fig = new_figure(9, 10)
    axes = fig.subplots(3, 1, sharex=True)
    draw_curves(axes[0], log.to_json(), metric=metric)
    axes[1].plot(log.epoch, log.lr, color="tab:purple")
    axes[1].set_ylabel("learning rate")
    axes[2].plot(log.epoch, log.epoch_seconds, color="tab:orange")
    axes[2].set_ylabel("epoch time (s)")
    axes[2].set_xlabel("epoch")
    fig.tight_layout()
    save_figure(fig, path, dpi=80)


def format_epoch(log: EpochLog, epochs: int, metric: str = "pseudo Dice") -> str:
    """One line of the text log for the last epoch."""
    i = -1
    dice = log.pseudo_dice[i]
    return (f"epoch {log.epoch[i]}/{epochs - 1}  train loss {log.train_loss[i]:.4f}  val loss {log.val_loss[i]:.4f}  "
            f"{metric} {'nan' if math.isnan(dice) else f'{dice:.4f}'} (EMA {log.pseudo_dice_ema[i]:.4f})  "
            f"lr {log.lr[i]:.2e}  {log.epoch_seconds[i]:.1f} s")
