"""The training log: per-epoch numbers, a text log and the progress.png plot."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


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


def plot_progress(log: EpochLog, path: Path) -> None:
    """Losses, pseudo-Dice (and its EMA), learning rate and epoch time against epochs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 10), sharex=True)
    x = log.epoch
    ax = axes[0]
    ax.plot(x, log.train_loss, label="train loss", color="tab:blue")
    ax.plot(x, log.val_loss, label="validation loss", color="tab:red")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(x, log.pseudo_dice, ":", label="pseudo Dice", color="tab:green")
    ax2.plot(x, log.pseudo_dice_ema, "-", label="pseudo Dice (EMA)", color="tab:green")
    ax2.set_ylabel("Dice")
    ax2.set_ylim(0, 1)
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="center right")
    axes[1].plot(x, log.lr, color="tab:purple")
    axes[1].set_ylabel("learning rate")
    axes[2].plot(x, log.epoch_seconds, color="tab:orange")
    axes[2].set_ylabel("epoch time (s)")
    axes[2].set_xlabel("epoch")
    fig.tight_layout()
    tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
    fig.savefig(tmp, dpi=80)
    plt.close(fig)
    os.replace(tmp, path)


def format_epoch(log: EpochLog, epochs: int) -> str:
    """One line of the text log for the last epoch."""
    i = -1
    dice = log.pseudo_dice[i]
    return (f"epoch {log.epoch[i]}/{epochs - 1}  train loss {log.train_loss[i]:.4f}  val loss {log.val_loss[i]:.4f}  "
            f"pseudo Dice {'nan' if math.isnan(dice) else f'{dice:.4f}'} (EMA {log.pseudo_dice_ema[i]:.4f})  "
            f"lr {log.lr[i]:.2e}  {log.epoch_seconds[i]:.1f} s")
