"""Section 4, validation predictions: a few cases of one configuration, the slice with the most
reference foreground, with reference and prediction drawn over the image."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autounet.autoplan.plans import Plans
from autounet.io.image_io import read_channels, read_segmentation
from autounet.postprocess.metrics import class_name, class_names, dice_per_class
from autounet.report.figures import Figures, plot_overlay
from autounet.report.markup import READ_ERRORS, esc, note, num
from autounet.workspace import DatasetPaths, FoldPaths

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class ValidationCase:
    """One validation prediction of a fold."""

    case_id: str
    fold_paths: FoldPaths
    prediction: Path


def validation_predictions(paths: DatasetPaths, configuration: str, ending: str) -> list[ValidationCase]:
    """Every fold's validation predictions, sorted by case id (the first fold wins a duplicate)."""
    found: dict[str, ValidationCase] = {}
    for fold in paths.trained.folds(configuration):
        for p in sorted(fold.validation.glob(f"*{ending}")):
            if not p.name.startswith("."):
                found.setdefault(p.name[: -len(ending)], ValidationCase(p.name[: -len(ending)], fold, p))
    return [found[k] for k in sorted(found)]


def _overlay_configuration(paths: DatasetPaths, plans: Plans, cv: dict | None) -> tuple[str | None, str]:
    """The configuration whose validation predictions are shown, and why it was chosen."""
    if cv is not None:
        members = cv["entries"][cv["best"]].get("members") or []
        if members and paths.trained.configuration(str(members[0])).is_dir():
            why = "the best entry" if len(members) == 1 else f"the first member of the best entry {cv['best']}"
            return str(members[0]), why
    for config in plans.configurations:
        if validation_predictions(paths, config, plans.file_ending):
            return config, "the first configuration with validation predictions (no cross-validation results)"
    return None, ""


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


def _overlay_figure(paths: DatasetPaths, plans: Plans, figures: Figures, config: str, case: ValidationCase) -> str:
    """One case's overlay as HTML (a figure, or a note saying what is missing)."""
    ending = plans.file_ending
    image_file = paths.raw_files.image_file(case.case_id, 0, ending)
    ref_file = paths.reference(case.case_id, ending)
    for what, p in (("raw image", image_file), ("reference", ref_file)):
        if not p.is_file():
            return note(f"{case.case_id}: no {what} at {p}.")
    image, geometry = read_channels([image_file], plans.reader)
    ref, _ = read_segmentation(ref_file, plans.reader)
    pred, _ = read_segmentation(case.prediction, plans.reader)
    if not image.shape[1:] == ref.shape == pred.shape:
        return note(f"{case.case_id}: image {image.shape[1:]}, reference {ref.shape} and prediction {pred.shape} "
                    "differ in shape.")
    z = best_slice(ref, pred)
    names = class_names(plans.labels)
    classes = [(c, names.get(class_name(c), str(c))) for c in plans.evaluation_classes]
    aspect = geometry.spacing[1] / geometry.spacing[2] if geometry.spacing[2] else 1.0
    path = figures.new("overlay", config, case.case_id)
    title = f"{case.case_id}, slice {z} of {ref.shape[0]} (axis 0)" if ref.shape[0] > 1 else case.case_id
    plot_overlay(figures, path, _display(image, z, image.shape[0] == 3), ref[z], pred[z], classes, aspect, title)
    dice = dice_per_class(pred, ref, plans.evaluation_classes, plans.ignore_label)
    scores = ", ".join(f"{name} {num(d['dice'], 3)}" for (_, name), d in zip(classes, dice.values()))
    return figures.img(path, f"{case.case_id}: reference and prediction",
                       f"<b>{esc(case.case_id)}</b> (fold {esc(case.fold_paths.fold)}), slice {z}; "
                       f"Dice of the whole case: {esc(scores)}")


def overlay_section(paths: DatasetPaths, plans: Plans | None, cv: dict | None, figures: Figures,
                    max_overlays: int) -> str:
    """Overlays of up to ``max_overlays`` validation cases of the best configuration."""
    if max_overlays <= 0:
        return note("Overlays were not requested (max_overlays = 0).")
    if plans is None:
        return note("No overlays: they need the plan (file ending, reader, labels).")
    config, why = _overlay_configuration(paths, plans, cv)
    cases = validation_predictions(paths, config, plans.file_ending) if config else []
    if not cases:
        return note(f"No validation predictions yet (in the folds' validation folders under {paths.trained.root}).")
    out = [f"<p>Validation predictions of <b>{esc(config)}</b> ({esc(why)}), each on the slice with the most "
           f"reference foreground; image: the first channel's file "
           f"({esc(plans.channel_names[0] if plans.channel_names else 'channel 0')}).</p>"]
    items = []
    for case in cases[:max_overlays]:
        try:
            items.append(_overlay_figure(paths, plans, figures, config, case))
        except READ_ERRORS as e:
            log.warning("report: no overlay for %s: %s", case.case_id, e)
            items.append(note(f"{case.case_id}: could not be drawn ({e})."))
    out.append(f'<div class="grid wide">{"".join(items)}</div>')
    return "\n".join(out)
