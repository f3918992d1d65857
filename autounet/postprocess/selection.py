"""Choose connected-component postprocessing on cross-validation predictions; apply it to folders.

The decision, on the mean Dice over cases of each class (``mean_per_class``):

1. Keep the largest foreground component (all foreground labels as one object) in every case.
   Accepted if it raises the foreground mean (mean over classes of the class means) and lowers
   no class's mean: one object is what most datasets contain, but a class that legitimately lies
   apart from the rest must not pay for it.
2. Starting from the output of step 1 (or the raw predictions if it was rejected), for each class:
   keep only that class's largest component if that strictly raises the class's mean Dice.

The decision reads numbers only. :func:`case_statistics` turns one case into TP/FP/FN/Dice for
every candidate ("as is", "largest foreground", and each class's largest component on both
possible step-1 outputs), so a folder of cases is evaluated one case per worker at a time and
no prediction is held twice; the per-class candidates actually used are those on the step-1
output that was chosen. A candidate's numbers are the base's minus what its removed voxels
contributed, so only the removed voxels are evaluated again.

Each per-class candidate is judged on its own on the step-1 output, not after the classes
accepted before it. For label classes this is exact: removing components of class c only turns
c's voxels into background and leaves every other class's Dice unchanged. For regions that share
label values the rules interact, and the report's "final" numbers are then an estimate.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from autounet.io.atomic import check_writable, read_json, write_json
from autounet.io.image_io import SUPPORTED_ENDINGS, file_ending, read_segmentation, reader_for, write_segmentation
from autounet.parallel import map_parallel
from autounet.postprocess.components import (
    PostprocessingRules,
    apply_rules,
    keep_largest_component,
    normalize_class,
)
from autounet.postprocess.metrics import (Class, class_mask, class_name, dice_from_counts, dice_per_class,
                                         foreground_mean, mean_per_class)

logger = logging.getLogger(__name__)

CaseDice = dict[str, dict[str, float]]  # class name -> {"dice", "tp", "fp", "fn"}, as dice_per_class gives


# ---------------------------------------------------------------------------------------------
# per case: the numbers of every candidate


def _normalize_classes(classes: Sequence[Any]) -> list[Class]:
    if isinstance(classes, (str, bytes)) or not isinstance(classes, Sequence) or not classes:
        raise ValueError(f"classes must be a non-empty list of label values or regions, got {classes!r}")
    out = [normalize_class(c) for c in classes]
    names = [class_name(c) for c in out]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"classes {duplicates} are listed more than once")
    return out


def _values(cls: Class) -> set[int]:
    return set(cls) if isinstance(cls, tuple) else {cls}


def _after_removal(pred: np.ndarray, ref: np.ndarray, removed: np.ndarray, base: CaseDice,
                   classes: Sequence[Class], ignore_label: int | None) -> CaseDice:
    """The numbers of ``classes`` once the ``removed`` voxels of ``pred`` become background.

    Empty when nothing is removed. A removed voxel that was a TP of a class becomes a FN and a
    removed FP disappears; every other voxel keeps its count, so only the removed ones are read.
    """
    if not removed.any():
        return {}
    part = dice_per_class(pred[removed], ref[removed], classes, ignore_label)
    out = {}
    for name, p in part.items():
        b = base[name]
        tp, fp, fn = b["tp"] - p["tp"], b["fp"] - p["fp"], b["fn"] + p["tp"]
        out[name] = {"dice": dice_from_counts(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn}
    return out


def _per_class_candidates(pred: np.ndarray, ref: np.ndarray, base: CaseDice, classes: Sequence[Class],
                          ignore_label: int | None) -> dict[str, CaseDice]:
    """For each class: the changed numbers when only its largest component is kept ({} if none change)."""
    out = {}
    for cls in classes:
        mask = class_mask(pred, cls)
        removed = mask & ~keep_largest_component(mask)
        touched = [c for c in classes if _values(c) & _values(cls)]  # classes sharing a label value
        out[class_name(cls)] = _after_removal(pred, ref, removed, base, touched, ignore_label)
    return out


def case_statistics(pred: np.ndarray, ref: np.ndarray, classes: Sequence[Any],
                    ignore_label: int | None = None) -> dict[str, Any]:
    """TP/FP/FN and Dice per class of one case for every candidate the decision may need.

    pred, ref : label maps of the same shape (Z, Y, X).
    Returns {"as_is": CaseDice, "largest_foreground": CaseDice, "largest_per_class":
    {base: {class name: changed classes' CaseDice}}} with base "as_is" or "largest_foreground"
    (the step-1 output the per-class candidate starts from); a per-class entry holds only the
    classes whose numbers change, {} when the class is one component already.
    """
    classes = _normalize_classes(classes)
    pred, ref = np.asarray(pred), np.asarray(ref)
    as_is = dice_per_class(pred, ref, classes, ignore_label)  # raises on a shape mismatch
    foreground = pred != 0
    fg_removed = foreground & ~keep_largest_component(foreground)
    largest_fg = {**as_is, **_after_removal(pred, ref, fg_removed, as_is, classes, ignore_label)}
    per_class = {"as_is": _per_class_candidates(pred, ref, as_is, classes, ignore_label)}
    if fg_removed.any():
        pred_fg = pred.copy()
        pred_fg[fg_removed] = 0
        per_class["largest_foreground"] = _per_class_candidates(pred_fg, ref, largest_fg, classes, ignore_label)
    else:
        per_class["largest_foreground"] = per_class["as_is"]
    return {"as_is": as_is, "largest_foreground": largest_fg, "largest_per_class": per_class}


# ---------------------------------------------------------------------------------------------
# the decision, on numbers only


def _raises(before: float, after: float) -> bool:
    return bool(after > before)  # False when either is NaN


def _lowers(before: float, after: float) -> bool:
    # A class can only become NaN (absent everywhere) by losing predictions it had no reference
    # for, i.e. from a mean of 0: that is not a loss.
    return bool(np.isfinite(before) and np.isfinite(after) and after < before)


def _summary(means: dict[str, float]) -> dict[str, Any]:
    return {"dice_per_class": dict(means), "foreground_mean": foreground_mean(means)}


def _class_json(cls: Class) -> int | list[int]:
    return list(cls) if isinstance(cls, tuple) else cls


def decide(case_stats: Sequence[dict[str, Any]], classes: Sequence[Any]) -> tuple[PostprocessingRules, dict]:
    """The rules and report from :func:`case_statistics` of every case (see the module docstring)."""
    if not case_stats:
        raise ValueError("no cases to determine postprocessing on")
    classes = _normalize_classes(classes)
    names = [class_name(c) for c in classes]
    before = mean_per_class([c["as_is"] for c in case_stats])
    after_fg = mean_per_class([c["largest_foreground"] for c in case_stats])
    fg_accepted = _raises(foreground_mean(before), foreground_mean(after_fg)) and not any(
        _lowers(before[n], after_fg[n]) for n in names)
    steps = [{"rule": "keep_largest_foreground", "accepted": fg_accepted,
              "before": _summary(before), "after": _summary(after_fg)}]
    base_key, base = ("largest_foreground", after_fg) if fg_accepted else ("as_is", before)

    accepted, final = [], dict(base)
    for cls, name in zip(classes, names):
        changes = [c["largest_per_class"][base_key][name] for c in case_stats]
        touched = [n for n in names if any(n in ch for ch in changes)]
        after = dict(base)
        if touched:
            per_case = [{n: ch.get(n, c[base_key][n]) for n in touched} for ch, c in zip(changes, case_stats)]
            after.update(mean_per_class(per_case))
        ok = _raises(base[name], after[name])
        steps.append({"rule": "keep_largest_per_class", "class": _class_json(cls), "accepted": ok,
                      "before": _summary(base), "after": _summary(after)})
        if ok:
            accepted.append(cls)
            final.update({n: after[n] for n in touched})

    rules = PostprocessingRules(keep_largest_foreground=fg_accepted, keep_largest_per_class=tuple(accepted))
    logger.info("postprocessing: foreground mean Dice %.4f -> %.4f with %s",
                foreground_mean(before), foreground_mean(final), rules)
    report = {"num_cases": len(case_stats), "classes": [_class_json(c) for c in classes],
              "steps": steps, "final": _summary(final)}
    return rules, report


def determine_postprocessing(predictions: list[np.ndarray], references: list[np.ndarray], classes: list,
                             ignore_label: int | None = None) -> tuple[PostprocessingRules, dict]:
    """Choose the largest-component rules on paired predicted and reference label maps.

    predictions, references : label maps (Z, Y, X), paired by position.
    classes : label values, or tuples of label values for regions.
    Returns the rules and a JSON-serialisable report: for each step (foreground, then each class)
    whether it was accepted and the mean Dice per class and foreground mean before and after it.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    stats = [case_statistics(p, r, classes, ignore_label) for p, r in zip(predictions, references)]
    rules, report = decide(stats, classes)
    report["ignore_label"] = ignore_label
    return rules, report


# ---------------------------------------------------------------------------------------------
# folders


def _segmentation_files(folder: Path) -> dict[str, Path]:
    """Case name -> file for every segmentation file in ``folder`` (hidden temporaries skipped)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: folder not found")
    files: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        ending = file_ending(p)
        if p.name.startswith(".") or not p.is_file() or ending not in SUPPORTED_ENDINGS:
            continue
        case = p.name[: -len(ending)]
        if case in files:
            raise ValueError(f"{folder}: case '{case}' has two files, {files[case].name} and {p.name}")
        files[case] = p
    return files


def _folder_case_statistics(item: tuple[Path, Path, list, int | None]) -> dict[str, Any]:
    pred_path, ref_path, classes, ignore_label = item
    pred, _ = read_segmentation(pred_path, reader_for(file_ending(pred_path)))
    ref, _ = read_segmentation(ref_path, reader_for(file_ending(ref_path)))
    if pred.shape != ref.shape:
        raise ValueError(f"{pred_path}: prediction shape {pred.shape} differs from reference {ref_path} {ref.shape}")
    return case_statistics(pred, ref, classes, ignore_label)


def determine_postprocessing_from_folders(prediction_folder: Path, reference_folder: Path, classes: list,
                                          ignore_label: int | None = None,
                                          processes: int = 1) -> tuple[PostprocessingRules, dict]:
    """:func:`determine_postprocessing` on files paired by case name (``CASE<ending>``, any ending).

    Every prediction needs a reference; references without a prediction are ignored (a fold's
    validation cases are a subset of labelsTr). Cases are read and evaluated in ``processes``
    workers, each returning numbers only.
    """
    predictions = _segmentation_files(prediction_folder)
    if not predictions:
        raise ValueError(f"{prediction_folder}: no segmentation files ({', '.join(SUPPORTED_ENDINGS)})")
    references = _segmentation_files(reference_folder)
    missing = sorted(set(predictions) - set(references))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ValueError(f"{reference_folder}: no reference for the predicted cases {shown}")
    classes = _normalize_classes(classes)
    cases = list(predictions)
    items = [(predictions[c], references[c], classes, ignore_label) for c in cases]
    stats = map_parallel(_folder_case_statistics, items, processes, desc="postprocessing candidates")
    rules, report = decide(stats, classes)
    report["ignore_label"] = ignore_label
    report["cases"] = cases
    return rules, report


def _postprocess_file(item: tuple[Path, Path, PostprocessingRules]) -> Path:
    source, target, rules = item
    seg, geometry = read_segmentation(source, reader_for(file_ending(source)))
    write_segmentation(apply_rules(seg, rules), geometry, target)
    return target


def apply_postprocessing_to_folder(input_folder: Path, output_folder: Path, rules: PostprocessingRules,
                                   processes: int = 1, overwrite: bool = False) -> list[Path]:
    """Postprocess every segmentation file of ``input_folder`` into ``output_folder``.

    Each output keeps its file name, format and geometry; other files are not copied. Writes are
    atomic; ``output_folder`` may be ``input_folder`` only with ``overwrite`` (the masks are then
    replaced in place). Returns the written paths, sorted.
    """
    files = _segmentation_files(input_folder)
    output_folder = Path(output_folder)
    if output_folder.resolve() == Path(input_folder).resolve() and not overwrite:
        raise ValueError(f"{output_folder}: the output is the input folder, whose masks would be replaced; choose "
                         "another -o, or pass --overwrite to postprocess them in place")
    check_writable(output_folder)
    items = [(p, output_folder / p.name, rules) for p in files.values()]
    return map_parallel(_postprocess_file, items, processes, desc="postprocessing")


def save_rules(path: Path, rules: PostprocessingRules, report: dict) -> None:
    """Write {"rules": ..., "report": ...} as JSON, atomically."""
    write_json(path, {"rules": rules.to_json(), "report": report})


def rules_in(path: Path) -> dict:
    """The ``"rules"`` entry of a postprocessing.json (any task's), unparsed; errors name the file."""
    data = read_json(path)
    if not isinstance(data, dict) or "rules" not in data:
        raise ValueError(f"{path}: not a postprocessing file (no 'rules' entry)")
    return data["rules"]


def load_rules(path: Path) -> PostprocessingRules:
    """Read the rules written by :func:`save_rules`; errors name the file."""
    rules = rules_in(path)
    if isinstance(rules, dict) and rules.get("kind") == "instances":
        raise ValueError(f"{path}: holds an instance model's rules (objects from predicted classes); `autounet "
                         "predict` applies them, apply_postprocessing takes connected-component rules")
    try:
        return PostprocessingRules.from_json(rules)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from e
