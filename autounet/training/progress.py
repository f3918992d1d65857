"""The training log: per-epoch numbers, a text line per epoch, and the curves drawn from them."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from autounet.io.atomic import atomic_path


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


CURVES = ("epoch", "train_loss", "val_loss", "pseudo_dice", "pseudo_dice_ema")


def metric_name(task: str) -> str:
    """What the per-epoch validation score is called: the pseudo-Dice of validation patches, or a
    case-level task's score over every validation case."""
    return {"segmentation": "pseudo Dice", "regression": "val -MAE"}.get(task, "val AUC")


def draw_curves(ax: Any, log: Mapping[str, Sequence[float]], legend_size: float | None = None,
                metric: str = "pseudo Dice") -> None:
    """Train and validation loss on ``ax``, the validation score (``metric``: pseudo-Dice, AUC; 0..1)
    and its EMA on a twin axis.

    log : per-epoch lists as :meth:`EpochLog.to_json` gives them (a checkpoint's ``log``); lists
    of unequal length are cut to the shortest. Shared by progress.png and the HTML report.
    """
    n = min(len(log.get(k, [])) for k in CURVES)
    x = log["epoch"][:n]
    ax.plot(x, log["train_loss"][:n], label="train loss", color="tab:blue")
    ax.plot(x, log["val_loss"][:n], label="validation loss", color="tab:red")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(x, log["pseudo_dice"][:n], ":", label=metric, color="tab:green")
    ax2.plot(x, log["pseudo_dice_ema"][:n], "-", label=f"{metric} (EMA)", color="tab:green")
    ax2.set_ylabel(metric)
    if "MAE" not in metric:
        ax2.set_ylim(0, 1)
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="center right", fontsize=legend_size)


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure bound to no GUI backend and no pyplot state (safe in any process)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def save_figure(fig: Any, path: Path, dpi: int) -> None:
    """Write a figure as PNG atomically."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")


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
