"""The report's sections for a case-level task: the class balance (or the targets' spread), and
the cross-validation with ROC curves and the confusion matrix (or predicted against true values
for regression), drawn from the chosen model's cross-validation predictions."""

from __future__ import annotations

import numpy as np

from autounet.autoplan.plans import Plans, load_fingerprint
from autounet.inference.case_outputs import read_predictions, reference_values
from autounet.postprocess.case_metrics import roc_curve
from autounet.postprocess.case_selection import reference_targets
from autounet.postprocess.selections import summary_keys
from autounet.report.figures import Figures
from autounet.report.markup import READ_ERRORS, esc, note, num, table
from autounet.io.plots import new_figure
from autounet.workspace import DatasetPaths, case_predictions_file



def balance_section(paths: DatasetPaths, plans: Plans, figures: Figures) -> str:
    """Cases per class (or positives per target) with a bar chart; mean and spread of regression targets."""
    try:
        fp = load_fingerprint(paths.fingerprint)
    except READ_ERRORS as e:
        return note(f"The fingerprint could not be read: {e}")
    task = plans.case_task
    if task.task == "regression":
        rows = [[esc(n), num(m), num(s)] for n, m, s in zip(task.names, fp.target_mean, fp.target_std)]
        return table(["target", "mean", "standard deviation"], rows)
    counts = list(fp.class_counts)
    path = figures.new("class_balance")
    fig = new_figure(4.6, 2.8)
    ax = fig.add_subplot()
    ax.bar(range(len(counts)), counts, color="tab:blue")
    ax.set_xticks(range(len(counts)), [str(n) for n in task.names], rotation=30, fontsize=8)
    ax.set_ylabel("cases" if task.task == "classification" else "positive cases")
    fig.tight_layout()
    figures.save(fig, path)
    rows = [[esc(n), str(c), f"{c / max(len(fp.cases), 1):.1%}"] for n, c in zip(task.names, counts)]
    handling = {"none": "none needed", "balanced_sampling": "every class drawn equally often in a batch",
                "loss_weights": "positives weighted by negatives/positives"}[task.imbalance]
    return (table(["class" if task.task == "classification" else "target", "cases", "share"], rows)
            + f"<p>{len(fp.cases)} training cases. Imbalance handling: {esc(handling)}.</p>"
            + figures.img(path, "class balance", "cases per class"))


def _entries_table(cv: dict) -> str:
    keys = summary_keys(cv["task"])
    rows, classes = [], []
    for name, e in sorted(cv["entries"].items(), key=lambda kv: -kv[1]["score"]):
        mirror = "/".join("on" if m else "off" for m in e["mirror"])
        rows.append([esc(name), *(num(e["metrics"].get(k)) for k in keys), esc(mirror)])
        classes.append("best" if name == cv["best"] else "")
    return table(["entry", *keys, "test-time mirroring"], rows, classes)


def _plots(paths: DatasetPaths, plans: Plans, cv: dict, figures: Figures) -> str:
    """ROC curves per class and the confusion matrix, or predicted against true values."""
    task = plans.case_task
    _, _, outputs = read_predictions(case_predictions_file(paths.trained.cross_validation_predictions(cv["best"])))
    ids = sorted(outputs)
    y = reference_values(reference_targets(paths, plans, ids), task.task)
    o = np.stack([outputs[c] for c in ids])
    path = figures.new("cross_validation", cv["best"])
    if task.task == "regression":
        fig = new_figure(4.2, 4.0)
        ax = fig.add_subplot()
        ax.scatter(y[:, 0], o[:, 0], s=6, alpha=0.6)
        lo, hi = float(min(y[:, 0].min(), o[:, 0].min())), float(max(y[:, 0].max(), o[:, 0].max()))
        ax.plot([lo, hi], [lo, hi], "k:", linewidth=1)
        ax.set_xlabel(f"true {task.names[0]}"), ax.set_ylabel(f"predicted {task.names[0]}")
        caption = "predicted against true values (cross-validation)"
    else:
        matrix = cv["entries"][cv["best"]]["metrics"].get("confusion_matrix")
        fig = new_figure(8.4 if matrix else 4.4, 3.8)
        ax, ax2 = fig.subplots(1, 2) if matrix else (fig.add_subplot(), None)
        truth = np.eye(len(task.names))[y] if task.task == "classification" else y
        for k, name in enumerate(task.names):
            fpr, tpr = roc_curve(truth[:, k], o[:, k])
            ax.plot(fpr, tpr, label=str(name))
        ax.plot([0, 1], [0, 1], "k:", linewidth=1)
        ax.set_xlabel("false positive rate"), ax.set_ylabel("true positive rate"), ax.legend(fontsize=7)
        if ax2 is not None:
            _confusion(ax2, np.array(matrix), task.names)
        caption = "ROC curves (one against the rest)" + (" and confusion matrix" if matrix else "") + \
            " (cross-validation)"
    fig.tight_layout()
    figures.save(fig, path)
    return figures.img(path, caption, caption)


def _confusion(ax2, matrix: np.ndarray, names) -> None:
    """The confusion matrix with its counts, classes named."""
    ax2.imshow(matrix, cmap="Blues")
    for (i, j), v in np.ndenumerate(matrix):
        ax2.text(j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > matrix.max() / 2 else "black")
    ax2.set_xticks(range(len(names)), [str(n) for n in names], fontsize=7, rotation=30)
    ax2.set_yticks(range(len(names)), [str(n) for n in names], fontsize=7)
    ax2.set_xlabel("predicted"), ax2.set_ylabel("reference")


def case_cv_section(paths: DatasetPaths, plans: Plans, cv: dict | None, problem: str | None, figures: Figures) -> str:
    """The cross-validation table (best highlighted), the plots, and the predict command."""
    if cv is None or "task" not in cv:
        return note(problem or "No cross-validation results.")
    try:
        plots = _plots(paths, plans, cv, figures)
    except READ_ERRORS as e:
        plots = note(f"The cross-validation predictions could not be read: {e}")
    command = cv.get("predict_command", "")
    return (_entries_table(cv) + f"<p>Chosen: <b>{esc(cv['best'])}</b>.</p>" + plots
            + f"<h3>Predict new cases</h3><pre><code>{esc(command)}</code></pre>")
