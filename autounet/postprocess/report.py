"""An HTML report of what autounet decided for one dataset: plan, training, cross-validation,
postprocessing and a look at some validation predictions.

``write_report`` writes a self-contained folder (``results/<dataset>/report/`` by default):
``index.html`` plus PNG figures under ``figures/``, linked relatively, so the folder can be
zipped or copied anywhere. Each section reads only files earlier stages left on disk; a section
whose inputs are missing (nothing trained yet, no cross-validation yet) becomes a one-line note
instead of an error, so the report can be written at any point of the pipeline.
"""

from __future__ import annotations

import datetime
import html
import json
import logging
import math
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence
from urllib.parse import quote

import numpy as np

from autounet import __version__
from autounet.autoplan.plans import Plans, StagePlan, load_plans
from autounet.workspace import DatasetPaths

log = logging.getLogger(__name__)

CHECKPOINT_NAMES = ("checkpoint_final.pt", "checkpoint_latest.pt")  # preferred first
REPORT_FOLDER = "report"
FIGURES = "figures"
# Errors a section may meet in files written by other stages (or by hand); they become a note.
READ_ERRORS = (OSError, EOFError, ValueError, KeyError, TypeError, IndexError, RuntimeError, pickle.UnpicklingError)


# --------------------------------------------------------------------------- small helpers


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _num(value: Any, digits: int = 4) -> str:
    """A Dice-like number, or an en dash for missing / NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, (int, float)):
        return f"{value:.{digits}f}"
    return str(value)


def _seq(values: Any) -> str:
    """(1.0, 0.5, 0.5) -> "1 × 0.5 × 0.5"; None entries (2d spacing) -> "-"."""
    if values is None:
        return "–"
    if isinstance(values, (list, tuple)):
        return " × ".join("-" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v)) for v in values)
    return str(values)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] | None = None) -> str:
    """Cells are HTML already (escape them before); header strings are escaped here."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        attr = f' class="{_e(row_classes[i])}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{attr}>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _write_text(path: Path, text: str) -> None:
    """Write a text file atomically (temporary name in the same folder, then rename)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


@dataclass
class _Figures:
    """The report's figure folder; remembers what this run wrote so stale PNGs can be removed."""

    folder: Path
    written: set[str] = field(default_factory=set)

    def new(self, *parts: str) -> Path:
        name = "_".join(_safe_name(p) for p in parts) + ".png"
        self.written.add(name)
        return self.folder / name

    def link(self, path: Path) -> str:
        return _e(quote(f"{FIGURES}/{path.name}"))

    def save(self, fig: Any, path: Path, dpi: int = 90) -> None:
        tmp = path.with_name(f".{path.name}.tmp.png")
        try:
            fig.savefig(tmp, dpi=dpi)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def copy(self, source: Path, path: Path) -> None:
        tmp = path.with_name(f".{path.name}.tmp.png")
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def remove_stale(self) -> None:
        for p in self.folder.glob("*.png"):
            if p.name not in self.written:
                p.unlink(missing_ok=True)
        for p in self.folder.glob(".*.tmp.png"):
            p.unlink(missing_ok=True)

    def img(self, path: Path, alt: str, caption: str) -> str:
        return (f'<figure><img src="{self.link(path)}" alt="{_e(alt)}">'
                f"<figcaption>{caption}</figcaption></figure>")


def _figure(width: float, height: float) -> Any:
    """A matplotlib Figure bound to no GUI backend and no pyplot state (safe in any process)."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def class_names(plans: Plans | None) -> dict[str, str]:
    """Evaluation class key ("1", or "1,2" for a region) -> label name from dataset.json."""
    if plans is None:
        return {}
    out = {}
    for name, value in plans.labels.items():
        if name in ("background", "ignore"):
            continue
        key = ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)
        out[key] = name
    return out


def _class_label(key: str, names: dict[str, str]) -> str:
    return f"{names[key]} ({key})" if key in names else f"class {key}"


# --------------------------------------------------------------------------- 1. the plan


def _stage_rows(stage: StagePlan) -> list[tuple[str, str]]:
    net = stage.network
    rows = [
        ("data folder", stage.data_identifier),
        ("patch size", _seq(stage.patch_size)),
        ("batch size", str(stage.batch_size)),
        ("target spacing", _seq(stage.spacing)),
        ("median shape at that spacing", _seq(stage.median_shape)),
        ("network", f"{net.dims}D U-Net, {net.block} blocks, {net.input_channels} input channel(s), "
                    f"{net.num_outputs} outputs"),
        ("stages", str(net.num_stages)),
        ("features per stage", " – ".join(map(str, net.features_per_stage))),
        ("kernel sizes", ", ".join(_seq(k) for k in net.kernel_sizes)),
        ("strides", ", ".join(_seq(s) for s in net.strides)),
        ("total downsampling", _seq(net.downsampling_factor)),
        ("convolutions per stage (encoder / decoder)",
         f"{'-'.join(map(str, net.convs_per_stage_encoder))} / {'-'.join(map(str, net.convs_per_stage_decoder))}"),
        ("estimated memory", f"{stage.estimated_memory_gb:.2f} GB"),
        ("batch Dice", "yes" if stage.batch_dice else "no"),
        ("mirror axes (test-time augmentation)", _seq(stage.mirror_axes) if stage.mirror_axes else "none"),
        ("resampling (image order / labels)", f"{stage.image_resampling_order} / {stage.label_resampling}"),
    ]
    if stage.previous_stage:
        rows.append(("cascade: uses predictions of", stage.previous_stage))
    return rows


def _normalization_text(n: Any) -> str:
    parts = [n.scheme]
    if n.use_nonzero_mask:
        parts.append("inside the non-zero mask")
    if n.clip_low is not None or n.clip_high is not None:
        parts.append(f"clip to [{_num(n.clip_low, 2)}, {_num(n.clip_high, 2)}]")
    if n.mean is not None or n.std is not None:
        parts.append(f"mean {_num(n.mean, 2)}, std {_num(n.std, 2)}")
    return ", ".join(parts)


def plan_section(plans: Plans | None, problem: str | None) -> str:
    """Dataset facts, one table per configuration, normalization per channel, plan notes."""
    if plans is None:
        return _note(problem or "No plan.")
    labels = ", ".join(f"{k} = {_seq(v) if isinstance(v, tuple) else v}" for k, v in plans.labels.items())
    facts = [
        ("planner", plans.planner), ("channels", ", ".join(plans.channel_names)), ("labels", labels),
        ("file ending / reader", f"{plans.file_ending} / {plans.reader}"),
        ("original median spacing", _seq(plans.original_median_spacing)),
        ("original median shape", _seq(plans.original_median_shape)),
        ("axis order (transpose)", _seq(plans.transpose_forward)),
        ("GPU memory target", f"{plans.memory_target_gb:g} GB"),
    ]
    out = [_table(["dataset", plans.dataset_name], [(_e(k), _e(v)) for k, v in facts]),
           f"<p>Patch sizes, spacings, shapes, kernels and strides below are in the plan's axis order: the image "
           f"axes (z, y, x) transposed by {_e(_seq(plans.transpose_forward))}.</p>"]
    for name, stage in plans.configurations.items():
        out.append(f"<h3>{_e(name)}</h3>")
        out.append(_table(["", name], [(_e(k), _e(v)) for k, v in _stage_rows(stage)]))
    out.append("<h3>Normalization per channel</h3>")
    out.append(_table(["channel", "normalization"],
                      [(_e(ch), _e(_normalization_text(n)))
                       for ch, n in zip(plans.channel_names, plans.normalization)]))
    if plans.notes:
        out.append("<h3>Plan notes</h3><ul>" + "".join(f"<li>{_e(n)}</li>" for n in plans.notes) + "</ul>")
    return "\n".join(out)


# --------------------------------------------------------------------------- 2. training curves


def _fold_key(folder: Path) -> tuple[int, int | str]:
    suffix = folder.name[len("fold_"):]
    return (0, int(suffix)) if suffix.isdigit() else (1, suffix)


def fold_folders(paths: DatasetPaths, plans: Plans | None) -> dict[str, list[Path]]:
    """Configuration -> its ``fold_<k>`` folders, configurations in plan order, folds in order."""
    if not paths.results.is_dir():
        return {}
    found = {}
    for d in sorted(paths.results.iterdir()):
        folds = sorted((f for f in d.glob("fold_*") if f.is_dir()), key=_fold_key) if d.is_dir() else []
        if folds:
            found[d.name] = folds
    order = list(plans.configurations) if plans else []
    return dict(sorted(found.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else len(order), kv[0])))


def load_training_log(checkpoint: Path) -> dict[str, list]:
    """The per-epoch ``log`` of a checkpoint, read with ``weights_only=True`` (weights are not needed)."""
    import torch

    try:
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, ValueError):  # an old-style (non-zip) file cannot be memory-mapped
        ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("log"), dict):
        raise ValueError(f"{checkpoint}: no training log in this checkpoint")
    return {k: list(v) for k, v in ckpt["log"].items()}


def _plot_log(figures: _Figures, training_log: dict[str, list], title: str, path: Path) -> None:
    """Train / validation loss (left axis) and pseudo-Dice with its EMA (right axis)."""
    n = min(len(training_log.get(k, [])) for k in ("epoch", "train_loss", "val_loss", "pseudo_dice", "pseudo_dice_ema"))
    x = training_log["epoch"][:n]
    fig = _figure(4.6, 3.0)
    ax = fig.add_subplot()
    ax.plot(x, training_log["train_loss"][:n], color="tab:blue", label="train loss")
    ax.plot(x, training_log["val_loss"][:n], color="tab:red", label="validation loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(x, training_log["pseudo_dice"][:n], ":", color="tab:green", label="pseudo Dice")
    ax2.plot(x, training_log["pseudo_dice_ema"][:n], "-", color="tab:green", label="pseudo Dice (EMA)")
    ax2.set_ylim(0, 1)
    ax2.set_ylabel("Dice")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="center right", fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    figures.save(fig, path)


def _fold_caption(fold: Path, checkpoint: Path | None, training_log: dict[str, list] | None) -> str:
    parts = [f"<b>{_e(fold.name.replace('_', ' '))}</b>"]
    if checkpoint is not None:
        state = "finished" if checkpoint.name == CHECKPOINT_NAMES[0] else "unfinished (latest checkpoint)"
        parts.append(_e(state))
    if training_log and training_log.get("epoch"):
        parts.append(f"{len(training_log['epoch'])} epochs")
        ema = [v for v in training_log.get("pseudo_dice_ema", []) if isinstance(v, (int, float)) and not math.isnan(v)]
        if ema:
            parts.append(f"final pseudo-Dice EMA {_num(ema[-1])} (best {_num(max(ema))})")
        seconds = sum(v for v in training_log.get("epoch_seconds", []) if isinstance(v, (int, float)))
        if seconds:
            parts.append(f"{seconds / 60:.1f} min")
    summary = fold / "validation" / "summary.json"
    if summary.is_file():
        try:
            parts.append(f"validation foreground Dice {_num(json.loads(summary.read_text())['foreground_mean_dice'])}")
        except READ_ERRORS:  # a broken summary only loses this number
            pass
    return ", ".join(parts)


def _fold_figure(figures: _Figures, config: str, fold: Path) -> str:
    """A figure for one fold: drawn from its checkpoint's log, else its progress.png copied."""
    checkpoint = next((fold / n for n in CHECKPOINT_NAMES if (fold / n).is_file()), None)
    path = figures.new("training", config, fold.name)
    problem = ""
    if checkpoint is not None:
        try:
            training_log = load_training_log(checkpoint)
            if training_log.get("epoch"):
                _plot_log(figures, training_log, f"{config} {fold.name.replace('_', ' ')}", path)
                return figures.img(path, f"training curves of {config} {fold.name}",
                                   _fold_caption(fold, checkpoint, training_log))
            problem = f"{checkpoint.name} has no finished epoch yet"
        except READ_ERRORS as e:
            log.warning("report: cannot read the training log of %s: %s", checkpoint, e)
            problem = f"{checkpoint.name} could not be read ({type(e).__name__})"
    if (fold / "progress.png").is_file():
        figures.copy(fold / "progress.png", path)
        return figures.img(path, f"progress of {config} {fold.name}", _fold_caption(fold, None, None)
                           + _e(f" (progress.png{'; ' + problem if problem else ''})"))
    figures.written.discard(path.name)
    return _note(f"{config} {fold.name.replace('_', ' ')}: {problem or 'no checkpoint or progress.png yet'}.")


def training_section(paths: DatasetPaths, plans: Plans | None, figures: _Figures) -> str:
    folders = fold_folders(paths, plans)
    if not folders:
        return _note(f"No trained folds yet (no {paths.results}/<configuration>/fold_<k>/ folders); "
                     f"train with: autounet train {paths.name} CONFIGURATION FOLD")
    out = []
    for config, folds in folders.items():
        out.append(f"<h3>{_e(config)}</h3>")
        out.append(f'<div class="grid">{"".join(_fold_figure(figures, config, f) for f in folds)}</div>')
    return "\n".join(out)


# --------------------------------------------------------------------------- 3. cross-validation


def load_cross_validation(path: Path) -> dict:
    """Read ``cross_validation.json`` and check the keys the report needs; errors name the file."""
    try:
        cv = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: malformed JSON ({e})") from e
    if not isinstance(cv, dict) or not isinstance(cv.get("entries"), dict) or not cv["entries"]:
        raise ValueError(f"{path}: no 'entries' with cross-validation results")
    for name, entry in cv["entries"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("mean_dice", {}), dict):
            raise ValueError(f"{path}: entry '{name}' is not an object with 'mean_dice'")
    if cv.get("best") not in cv["entries"]:
        raise ValueError(f"{path}: 'best' ({cv.get('best')!r}) is not one of the entries")
    return cv


def _score(entry: dict) -> float:
    v = entry.get("foreground_mean_dice")
    return float(v) if isinstance(v, (int, float)) and not math.isnan(v) else -math.inf


def _class_values_text(item: Any, names: dict[str, str]) -> str:
    values = list(item) if isinstance(item, (list, tuple)) else [item]
    return _class_label(",".join(map(str, values)), names)


def describe_postprocessing(rules: dict, names: dict[str, str] | None = None) -> list[str]:
    """The chosen postprocessing rules as sentences (one per rule); empty rules say so."""
    names = names or {}
    out = []
    if rules.get("keep_largest_foreground"):
        out.append("Keep only the largest connected component of the whole foreground (all classes together); "
                   "smaller foreground components are set to background.")
    per_class = rules.get("keep_largest_per_class") or []
    for item in per_class:
        out.append(f"For {_class_values_text(item, names)}: keep only its largest connected component; "
                   "the class's other components are set to background.")
    known = ("keep_largest_foreground", "keep_largest_per_class", "schema_version")
    for key, value in rules.items():
        if key not in known and value not in (None, False, [], {}):
            out.append(f"{key}: {json.dumps(value)}")
    if not out:
        out.append("No postprocessing: removing connected components did not improve the cross-validation Dice.")
    return out


def cross_validation_section(cv: dict | None, problem: str | None, names: dict[str, str]) -> str:
    """Entries sorted by foreground-mean Dice (best highlighted), postprocessing, predict command."""
    if cv is None:
        return _note(problem or "No cross-validation results.")
    entries = cv["entries"]
    classes = [str(c) for c in cv.get("classes")
               or sorted({k for e in entries.values() for k in e.get("mean_dice", {})})]
    best = cv["best"]
    ordered = sorted(entries.items(), key=lambda kv: -_score(kv[1]))
    header = (["entry", "kind", "members", "folds"] + [f"Dice {_class_label(c, names)}" for c in classes]
              + ["foreground mean"])
    rows, marks = [], []
    for name, e in ordered:
        tag = ' <span class="tag">best</span>' if name == best else ""
        rows.append([f"{_e(name)}{tag}", _e(e.get("kind", "")), _e(" + ".join(map(str, e.get("members", [])))),
                     _e(", ".join(map(str, e.get("folds", []))))]
                    + [_e(_num(e.get("mean_dice", {}).get(c))) for c in classes]
                    + [f"<b>{_e(_num(e.get('foreground_mean_dice')))}</b>"])
        marks.append("best" if name == best else "")
    out = [_table(header, rows, marks)]
    out.append(f"<p>Chosen: <b>{_e(best)}</b> ({_e(entries[best].get('kind', 'entry'))} of "
               f"{_e(' + '.join(map(str, entries[best].get('members', [best]))))}).</p>")
    out.append(_postprocessing_html(cv, entries[best], names))
    command = cv.get("predict_command")
    out.append("<h3>Predict new cases</h3>" + (f"<pre><code>{_e(command)}</code></pre>" if command
                                                else _note("No predict command in the cross-validation results.")))
    return "\n".join(out)


def _postprocessing_html(cv: dict, best_entry: dict, names: dict[str, str]) -> str:
    post = cv.get("postprocessing")
    out = ["<h3>Postprocessing</h3>"]
    if not isinstance(post, dict) or not isinstance(post.get("rules"), dict):
        return out[0] + _note("No postprocessing was determined.")
    out.append("<ul>" + "".join(f"<li>{_e(s)}</li>" for s in describe_postprocessing(post["rules"], names)) + "</ul>")
    before, after = best_entry.get("foreground_mean_dice"), cv.get("foreground_mean_dice_after_postprocessing")
    out.append(f"<p>Foreground mean Dice of the chosen entry: {_e(_num(before))} before, "
               f"{_e(_num(after if after is not None else before))} after postprocessing.</p>")
    steps = _steps_table(post.get("report"), names)
    if steps:
        out.append("<p>Rules tried on the cross-validation predictions (a rule is kept when it raises the Dice "
                   "and lowers no class):</p>" + steps)
    if post.get("report"):
        out.append("<details><summary>details of the postprocessing search</summary><pre>"
                   f"{_e(json.dumps(post['report'], indent=2, default=str))}</pre></details>")
    return "\n".join(out)


def _steps_table(report: Any, names: dict[str, str]) -> str:
    """The ``steps`` of a postprocessing report (rule, class, accepted, Dice before/after) as a table."""
    steps = report.get("steps") if isinstance(report, dict) else None
    if not isinstance(steps, list) or not all(isinstance(s, dict) and "rule" in s for s in steps):
        return ""

    def fg(step: dict, key: str) -> str:
        value = step.get(key)
        return _e(_num(value.get("foreground_mean") if isinstance(value, dict) else None))

    rows = [[_e(s["rule"]), _e(_class_values_text(s["class"], names) if "class" in s else "all foreground"),
             "yes" if s.get("accepted") else "no", fg(s, "before"), fg(s, "after")] for s in steps]
    return _table(["rule", "applies to", "kept", "foreground Dice before", "after"], rows,
                  ["accepted" if s.get("accepted") else "" for s in steps])


# --------------------------------------------------------------------------- 4. overlays


def _overlay_configuration(paths: DatasetPaths, plans: Plans, cv: dict | None) -> tuple[str | None, str]:
    """The configuration whose validation predictions are shown, and why it was chosen."""
    if cv is not None:
        members = cv["entries"][cv["best"]].get("members") or []
        if members and (paths.results / str(members[0])).is_dir():
            why = "the best entry" if len(members) == 1 else f"the first member of the best entry {cv['best']}"
            return str(members[0]), why
    for config in plans.configurations:
        if any((paths.results / config).glob(f"fold_*/validation/*{plans.file_ending}")):
            return config, "the first configuration with validation predictions (no cross-validation results)"
    return None, ""


def validation_cases(paths: DatasetPaths, configuration: str, ending: str) -> list[tuple[str, Path]]:
    """(case id, prediction file) of every fold's validation predictions, sorted by case id."""
    found = {}
    for fold in sorted((paths.results / configuration).glob("fold_*"), key=_fold_key):
        for p in sorted((fold / "validation").glob(f"*{ending}")):
            if not p.name.startswith("."):
                found.setdefault(p.name[: -len(ending)], p)
    return sorted(found.items())


def best_slice(reference: np.ndarray, fallback: np.ndarray | None = None) -> int:
    """Index along axis 0 of (Z, Y, X) with the most foreground (reference, else fallback, else middle)."""
    for seg in (reference, fallback):
        if seg is not None:
            counts = np.count_nonzero(seg.reshape(seg.shape[0], -1) > 0, axis=1)
            if counts.max(initial=0) > 0:
                return int(np.argmax(counts))
    return reference.shape[0] // 2


def _display(image: np.ndarray, z: int, rgb: bool) -> tuple[np.ndarray, str | None]:
    """(C, Z, Y, X) -> a 2D gray or (Y, X, 3) RGB slice scaled to [0, 1] by its 0.5/99.5 percentiles."""
    sl = np.moveaxis(image[:3, z], 0, -1) if rgb else image[0, z]
    lo, hi = np.percentile(sl, [0.5, 99.5])
    return np.clip((sl - lo) / (hi - lo if hi > lo else 1.0), 0, 1), None if rgb else "gray"


def _class_mask(seg: np.ndarray, cls: int | tuple[int, ...]) -> np.ndarray:
    return np.isin(seg, cls) if isinstance(cls, tuple) else seg == cls


def _plot_overlay(figures: _Figures, path: Path, image: tuple[np.ndarray, str | None], ref: np.ndarray,
                  pred: np.ndarray, classes: list[tuple[int | tuple[int, ...], str]], aspect: float,
                  title: str) -> None:
    """Three panels: image with reference (solid) and prediction (dashed) contours; reference; prediction.

    image : the displayable slice and its colour map (from ``_display``); ref, pred : (Y, X) labels.
    """
    from matplotlib import colormaps
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    shown, cmap = image
    colours = [colormaps["tab10"](i % 10) for i in range(len(classes))]
    fig = _figure(10.5, 4.0)
    axes = fig.subplots(1, 3)
    for ax, panel in zip(axes, ("contours (solid: reference, dashed: prediction)", "reference", "prediction")):
        ax.imshow(shown, cmap=cmap, aspect=aspect, interpolation="nearest")
        ax.set_title(panel, fontsize=8)
        ax.set_axis_off()
    for (cls, _), colour in zip(classes, colours):
        for seg, style in ((ref, "solid"), (pred, "dashed")):
            mask = _class_mask(seg, cls)
            if mask.any() and not mask.all():
                axes[0].contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.3,
                                linestyles=style)
    for ax, seg in ((axes[1], ref), (axes[2], pred)):
        rgba = np.zeros(seg.shape + (4,), np.float32)
        for (cls, _), colour in zip(classes, colours):
            rgba[_class_mask(seg, cls)] = (*colour[:3], 0.45)
        ax.imshow(rgba, aspect=aspect, interpolation="nearest")
    handles = [Patch(color=c, label=name) for (_, name), c in zip(classes, colours)]
    handles += [Line2D([], [], color="k", ls="solid", label="reference"),
                Line2D([], [], color="k", ls="dashed", label="prediction")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 6), fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0.08, 1, 0.95))
    figures.save(fig, path)


def _overlay_figure(paths: DatasetPaths, plans: Plans, figures: _Figures, config: str, case: str,
                    prediction: Path) -> str:
    """One case's overlay as HTML (a figure, or a note saying what is missing)."""
    from autounet.io.image_io import read_channels, read_segmentation
    from autounet.postprocess.metrics import dice_per_class

    ending = plans.file_ending
    image_file = paths.raw / "imagesTr" / f"{case}_0000{ending}"
    ref_file = paths.preprocessed / "gt_segmentations" / f"{case}{ending}"
    for what, p in (("raw image", image_file), ("reference", ref_file)):
        if not p.is_file():
            return _note(f"{case}: no {what} at {p}.")
    image, geometry = read_channels([image_file], plans.reader)
    ref, _ = read_segmentation(ref_file, plans.reader)
    pred, _ = read_segmentation(prediction, plans.reader)
    if not image.shape[1:] == ref.shape == pred.shape:
        return _note(f"{case}: image {image.shape[1:]}, reference {ref.shape} and prediction {pred.shape} "
                     "differ in shape.")
    z = best_slice(ref, pred)
    names = class_names(plans)
    classes = [(c, names.get(",".join(map(str, c)) if isinstance(c, tuple) else str(c), str(c)))
               for c in plans.evaluation_classes]
    aspect = geometry.spacing[1] / geometry.spacing[2] if geometry.spacing[2] else 1.0
    path = figures.new("overlay", config, case)
    _plot_overlay(figures, path, _display(image, z, image.shape[0] == 3), ref[z], pred[z], classes, aspect,
                  f"{case}, slice {z} of {ref.shape[0]} (axis 0)" if ref.shape[0] > 1 else case)
    dice = dice_per_class(pred, ref, plans.evaluation_classes, plans.ignore_label)
    scores = ", ".join(f"{name} {_num(d['dice'], 3)}" for (_, name), d in zip(classes, dice.values()))
    return figures.img(path, f"{case}: reference and prediction",
                       f"<b>{_e(case)}</b> ({_e(prediction.parent.parent.name.replace('_', ' '))}), slice {z}; "
                       f"Dice of the whole case: {_e(scores)}")


def overlay_section(paths: DatasetPaths, plans: Plans | None, cv: dict | None, figures: _Figures,
                    max_overlays: int) -> str:
    if max_overlays <= 0:
        return _note("Overlays were not requested (max_overlays = 0).")
    if plans is None:
        return _note("No overlays: they need the plan (file ending, reader, labels).")
    config, why = _overlay_configuration(paths, plans, cv)
    cases = validation_cases(paths, config, plans.file_ending) if config else []
    if not cases:
        return _note("No validation predictions yet (results/<configuration>/fold_<k>/validation/).")
    out = [f"<p>Validation predictions of <b>{_e(config)}</b> ({_e(why)}), each on the slice with the most "
           f"reference foreground; image: the first image file (_0000, "
           f"{_e(plans.channel_names[0] if plans.channel_names else 'channel 0')}).</p>"]
    items = []
    for case, prediction in cases[:max_overlays]:
        try:
            items.append(_overlay_figure(paths, plans, figures, config, case, prediction))
        except READ_ERRORS as e:
            log.warning("report: no overlay for %s: %s", case, e)
            items.append(_note(f"{case}: could not be drawn ({e})."))
    out.append(f'<div class="grid wide">{"".join(items)}</div>')
    return "\n".join(out)


# --------------------------------------------------------------------------- the page

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
h3 { margin-top: 1.4em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
tr.best td { background: #e6f4ea; font-weight: 600; }
tr.accepted td { background: #eef6ff; }
.tag { background: #1e8e3e; color: white; border-radius: 3px; padding: 0 .35em; font-size: .8em; }
.note { color: #8a6d00; background: #fff8e1; border-left: 4px solid #f0c000; padding: .4em .7em; }
.grid { display: flex; flex-wrap: wrap; gap: 1em; }
figure { margin: 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #444; max-width: 460px; }
.grid.wide figcaption { max-width: 950px; }
pre { background: #f6f8fa; padding: .7em; overflow-x: auto; }
nav a { margin-right: 1em; }
"""


def _summary(plans: Plans | None, cv: dict | None) -> str:
    items = []
    if plans is not None:
        items.append(f"Planned configurations: {', '.join(plans.configurations)}.")
    if cv is not None:
        best = cv["entries"][cv["best"]]
        items.append(f"Best on cross-validation: {cv['best']} "
                     f"(foreground mean Dice {_num(best.get('foreground_mean_dice'))}).")
        if cv.get("predict_command"):
            items.append(f"Predict with: {cv['predict_command']}")
    return ("<ul>" + "".join(f"<li>{_e(i)}</li>" for i in items) + "</ul>") if items else ""


def _page(title: str, summary: str, sections: list[tuple[str, str, str]]) -> str:
    nav = "".join(f'<a href="#{anchor}">{_e(heading)}</a>' for anchor, heading, _ in sections)
    body = "\n".join(f'<section id="{anchor}"><h2>{_e(heading)}</h2>\n{content}\n</section>'
                     for anchor, heading, content in sections)
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{_e(title)}</title>\n'
            f"<style>{CSS}</style>\n</head>\n<body>\n<h1>{_e(title)}</h1>\n"
            f'<p class="meta">Written {_e(stamp)} by autounet {_e(__version__)}.</p>\n{summary}\n<nav>{nav}</nav>\n'
            f"{body}\n</body>\n</html>\n")


def _read_inputs(paths: DatasetPaths) -> tuple[Plans | None, str | None, dict | None, str | None]:
    """The plan and the cross-validation results, each with a note when unavailable."""
    plans, plan_problem, cv, cv_problem = None, None, None, None
    if not paths.plans.is_file():
        plan_problem = f"No plan yet ({paths.plans} is missing); run: autounet plan_and_preprocess {paths.name}"
    else:
        try:
            plans = load_plans(paths.plans)
        except READ_ERRORS as e:
            plan_problem = f"The plan could not be read: {e}"
    cv_file = paths.results / "cross_validation.json"
    if not cv_file.is_file():
        cv_problem = (f"No cross-validation results yet ({cv_file} is missing); after training all folds run: "
                      f"autounet find_best_configuration {paths.name}")
    else:
        try:
            cv = load_cross_validation(cv_file)
        except READ_ERRORS as e:
            cv_problem = f"The cross-validation results could not be read: {e}"
    return plans, plan_problem, cv, cv_problem


def write_report(paths: DatasetPaths, output: Path | None = None, max_overlays: int = 4) -> Path:
    """Write ``index.html`` and its figures to ``output`` (default ``results/<dataset>/report/``).

    Sections: the plan; training curves per fold; the cross-validation table with the chosen
    postprocessing and the predict command; overlays of up to ``max_overlays`` validation cases
    of the best configuration. A section whose inputs do not exist yet shows a one-line note.
    Returns the path of ``index.html``.
    """
    output = Path(output) if output is not None else paths.results / REPORT_FOLDER
    figures = _Figures(output / FIGURES)
    figures.folder.mkdir(parents=True, exist_ok=True)
    plans, plan_problem, cv, cv_problem = _read_inputs(paths)
    sections = [
        ("plan", "1. The plan", plan_section(plans, plan_problem)),
        ("training", "2. Training curves", training_section(paths, plans, figures)),
        ("cross-validation", "3. Cross-validation and postprocessing",
         cross_validation_section(cv, cv_problem, class_names(plans))),
        ("overlays", "4. Validation predictions", overlay_section(paths, plans, cv, figures, max_overlays)),
    ]
    index = output / "index.html"
    _write_text(index, _page(f"autounet report: {paths.name}", _summary(plans, cv), sections))
    figures.remove_stale()
    log.info("report written to %s", index)
    return index
