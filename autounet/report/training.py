"""Section 2, training curves: one figure per fold, drawn from its checkpoint's per-epoch log.

A fold whose checkpoint cannot be read falls back to a copy of its progress plot; a fold with
neither becomes a note. Finished checkpoints are preferred to latest ones.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from autounet.autoplan.plans import Plans
from autounet.model.checkpoint import peek_checkpoint
from autounet.report.figures import Figures
from autounet.report.markup import CHECKPOINTS, READ_ERRORS, esc, note, num
from autounet.io.plots import draw_curves, new_figure
from autounet.training.tasks import SegmentationTraining, TrainingTask, task_for
from autounet.training.spending import read_spending
from autounet.workspace import DatasetPaths, FoldPaths, ResultsPaths

log = logging.getLogger(__name__)


def configurations_with_folds(results: ResultsPaths, plans: Plans | None) -> list[str]:
    """Configurations with fold folders: planned ones in plan order, then others by name."""
    order = list(plans.configurations) if plans else []
    found = results.configurations_with_folds()
    return sorted(found, key=lambda c: (order.index(c) if c in order else len(order), c))


def load_training_log(checkpoint: Path) -> dict[str, list]:
    """The per-epoch ``log`` of a checkpoint (memory-mapped, ``weights_only=True``)."""
    ckpt = peek_checkpoint(checkpoint)
    if not isinstance(ckpt.get("log"), dict):
        raise ValueError(f"{checkpoint}: no training log in this checkpoint")
    return {k: list(v) for k, v in ckpt["log"].items()}


def _plot_curves(figures: Figures, training_log: dict[str, list], title: str, path: Path, metric: str) -> None:
    """Train / validation loss (left axis) and the validation score with its EMA (right axis)."""
    fig = new_figure(4.6, 3.0)
    ax = fig.add_subplot()
    draw_curves(ax, training_log, legend_size=7, metric=metric)
    ax.set_xlabel("epoch")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    figures.save(fig, path)


def _log_facts(training_log: dict[str, list], metric: str) -> list[str]:
    """Epochs, final and best validation score EMA, training time."""
    parts = [f"{len(training_log['epoch'])} epochs"]
    ema = [v for v in training_log.get("pseudo_dice_ema", []) if isinstance(v, (int, float)) and not math.isnan(v)]
    if ema:
        parts.append(f"final {metric} EMA {num(ema[-1])} (best {num(max(ema))})")
    seconds = sum(v for v in training_log.get("epoch_seconds", []) if isinstance(v, (int, float)))
    if seconds:
        parts.append(f"{seconds / 60:.1f} min")
    return parts


def _fold_caption(fold: FoldPaths, checkpoint: Path | None, training_log: dict[str, list] | None,
                  task: TrainingTask) -> str:
    """HTML: the fold, its state, what its log says and its validation Dice."""
    parts = [f"<b>fold {esc(fold.fold)}</b>"]
    if checkpoint is not None:
        finished = checkpoint == fold.checkpoint("final")
        parts.append("finished" if finished else "unfinished (latest checkpoint)")
    if training_log and training_log.get("epoch"):
        parts += [esc(p) for p in _log_facts(training_log, task.metric)]
    spending = read_spending(fold)
    if spending is not None and not spending.learned:
        parts.append(f'<span class="warn">trained {spending.iterations} iterations, below the '
                     f'{spending.learning_iterations} a network needs to learn well: this fold barely learned '
                     '(a longer --time-budget or fewer configurations would help)</span>')
    if fold.validation_summary.is_file():
        try:
            name, value = task.summary_score(json.loads(fold.validation_summary.read_text()))
            parts.append(f"{name} {esc(num(value))}")
        except READ_ERRORS:  # a broken summary only loses this number
            pass
    return ", ".join(parts)


def _fold_figure(figures: Figures, fold: FoldPaths, task: TrainingTask) -> str:
    """A figure for one fold: drawn from its checkpoint's log, else its progress plot copied."""
    config, title = fold.configuration, f"{fold.configuration} fold {fold.fold}"
    checkpoint = next((p for p in map(fold.checkpoint, CHECKPOINTS) if p.is_file()), None)
    path = figures.new("training", config, "fold", fold.fold)
    problem = ""
    if checkpoint is not None:
        try:
            training_log = load_training_log(checkpoint)
            if training_log.get("epoch"):
                _plot_curves(figures, training_log, title, path, task.metric)
                return figures.img(path, f"training curves of {title}",
                                   _fold_caption(fold, checkpoint, training_log, task))
            problem = f"{checkpoint.name} has no finished epoch yet"
        except READ_ERRORS as e:
            log.warning("report: cannot read the training log of %s: %s", checkpoint, e)
            problem = f"{checkpoint.name} could not be read ({type(e).__name__})"
    plot = fold.progress_plot
    if plot.is_file():
        figures.copy(plot, path)
        return figures.img(path, f"progress of {title}", _fold_caption(fold, None, None, task)
                           + esc(f" ({plot.name}{'; ' + problem if problem else ''})"))
    figures.discard(path)
    return note(f"{title}: {problem or f'no checkpoint or {plot.name} yet'}.")


def training_section(paths: DatasetPaths, plans: Plans | None, figures: Figures) -> str:
    """A grid of fold figures per configuration, or a note when nothing was trained yet."""
    configurations = configurations_with_folds(paths.trained, plans)
    if not configurations:
        return note(f"No trained folds yet (no fold folders in {paths.trained.root}/<configuration>/); "
                    f"train with: autounet train {paths.name} CONFIGURATION FOLD")
    out, task = [], task_for(plans) if plans is not None else SegmentationTraining()
    for config in configurations:
        folds = "".join(_fold_figure(figures, f, task) for f in paths.trained.folds(config))
        out.append(f'<h3>{esc(config)}</h3>\n<div class="grid">{folds}</div>')
    return "\n".join(out)
