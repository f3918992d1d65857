"""Figures on disk: a matplotlib figure bound to no GUI, its atomic PNG write, and the training
curves, drawn the same way in a fold's progress.png and in the HTML report."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from autounet.io.atomic import atomic_path

CURVES = ("epoch", "train_loss", "val_loss", "pseudo_dice", "pseudo_dice_ema")


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
