"""Choose the best configuration or pair ensemble from the cross-validation, then its
postprocessing.

Every trained configuration is scored by the mean Dice of its five folds' validation
predictions (each case predicted by the fold that did not train on it); every pair of
configurations is scored as an ensemble by averaging their saved probabilities. The highest
foreground-mean Dice wins; within ``TIE_TOLERANCE`` the simpler choice wins (one configuration
over an ensemble, then the order of ``SIMPLICITY``). Postprocessing is then determined on the
winner's cross-validation predictions.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
from autounet.progress import progress

from autounet.autoplan.plans import Plans, load_plans
from autounet.errors import WorkspaceError
from autounet.inference.ensemble import averaged_case
from autounet.inference.outputs import mask_file, probabilities_saved
from autounet.inference.probabilities import probabilities_to_labels
from autounet.io.atomic import copy_file, read_json, write_json
from autounet.io.geometry import Geometry
from autounet.io.image_io import read_segmentation, write_segmentation
from autounet.io.provenance import stale_folds
from autounet.postprocess.metrics import dice_per_class, foreground_mean, mean_per_class
from autounet.workspace import DatasetPaths

log = logging.getLogger("autounet")
TIE_TOLERANCE = 1e-4
SIMPLICITY = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")


def _validation_folders(paths: DatasetPaths, configuration: str, splits: list[dict]) -> dict[str, Path]:
    """case id -> the validation folder holding its prediction; raises naming what to train."""
    out, missing = {}, []
    for k, split in enumerate(splits):
        fold = paths.trained.fold(configuration, k)
        if not fold.validation_summary.is_file():
            missing.append(k)
            continue
        for case in split["val"]:
            out[case] = fold.validation
    if missing:
        raise WorkspaceError(
            f"{configuration}: fold(s) {' '.join(map(str, missing))} have no validation results; run: "
            f"autounet train {paths.name} {configuration} {' '.join(map(str, missing))} --save-probabilities")
    return out


def trained_configurations(paths: DatasetPaths, plans: Plans, splits: list[dict]) -> tuple[list[str], list[str]]:
    """Configurations with every fold validated, and notes on the partially trained ones."""
    done, notes = [], []
    for config in plans.configurations:
        if not paths.trained.configuration(config).is_dir():
            continue
        try:
            _validation_folders(paths, config, splits)
            done.append(config)
        except WorkspaceError as e:
            notes.append(str(e))
    return done, notes


def _scores(entry: dict, per_case: list[dict], splits: list[dict]) -> dict:
    means = mean_per_class(per_case)
    return {**entry, "folds": [str(k) for k in range(len(splits))], "mean_dice": means,
            "foreground_mean_dice": foreground_mean(means), "num_cases": len(per_case)}


def score_configuration(paths: DatasetPaths, configuration: str, splits: list[dict]) -> dict:
    """Mean Dice per class over the cross-validation predictions of one configuration (each
    case scored in the validation summary of the fold that did not train on it)."""
    folders = _validation_folders(paths, configuration, splits)
    per_case = {}
    for k in range(len(splits)):
        summary = read_json(paths.trained.fold(configuration, k).validation_summary)
        per_case.update({c["case_id"]: c["metrics"] for c in summary["cases"]})
    return _scores({"kind": "configuration", "members": [configuration]},
                   [per_case[c] for c in sorted(folders)], splits)


def score_ensemble(paths: DatasetPaths, plans: Plans, members: Sequence[str], splits: list[dict], out: Path) -> dict:
    """Average the members' CV probabilities per case, write the labels to ``out``, score them."""
    folders = [_validation_folders(paths, m, splits) for m in members]
    per_case = []
    for case in progress(sorted(folders[0]), desc=f"ensemble {'+'.join(members)}", unit="case"):
        for member, f in zip(members, folders):
            if not probabilities_saved(f[case], case):
                raise WorkspaceError(f"{f[case]}: no probabilities of {case} for ensembling; re-run "
                                     f"autounet train {paths.name} {member} FOLD --continue --save-probabilities "
                                     "for every fold (validation is redone, training is not)")
        mean, meta = averaged_case([f[case] for f in folders], case)
        seg = probabilities_to_labels(mean, plans.regions_class_order)
        write_segmentation(seg, Geometry.from_json(meta["geometry"]), mask_file(out, case, plans.file_ending))
        ref, _ = read_segmentation(paths.reference(case, plans.file_ending), plans.reader)
        per_case.append(dice_per_class(seg, ref, plans.evaluation_classes, plans.ignore_label))
    return _scores({"kind": "ensemble", "members": list(members)}, per_case, splits)


def _complexity(entry: dict) -> tuple:
    return (len(entry["members"]), [SIMPLICITY.index(m) if m in SIMPLICITY else len(SIMPLICITY) for m in entry["members"]])


def pick_best(entries: dict[str, dict]) -> str:
    """Highest foreground-mean Dice; within TIE_TOLERANCE of it, the simplest entry."""
    top = max(e["foreground_mean_dice"] for e in entries.values())
    close = [k for k, e in entries.items() if e["foreground_mean_dice"] >= top - TIE_TOLERANCE]
    return min(close, key=lambda k: _complexity(entries[k]))


def collect_predictions(paths: DatasetPaths, configuration: str, splits: list[dict], plans: Plans, out: Path) -> Path:
    """Copy a configuration's CV label maps from the fold folders into one folder."""
    for case, folder in _validation_folders(paths, configuration, splits).items():
        copy_file(mask_file(folder, case, plans.file_ending), mask_file(out, case, plans.file_ending))
    return out


def find_best_configuration(paths: DatasetPaths, configurations: Sequence[str] | None = None,
                            ensembles: bool = True, processes: int = 1) -> dict:
    """Score configurations and pair ensembles on the CV, pick the best, determine its
    postprocessing; writes cross_validation.json, postprocessing.json, best_configuration.json."""
    from autounet.postprocess.selection import determine_postprocessing_from_folders, save_rules

    plans = load_plans(paths.plans)
    splits = read_json(paths.splits)
    for _, _, line in stale_folds(paths, configurations or paths.trained.configurations_with_folds(),
                                  range(len(splits))):
        log.warning("WARNING: %s; its validation predictions come from a model of the old data: train it again "
                    "(autounet run does) before trusting this choice", line)
    if plans.case_task is not None:
        from autounet.postprocess.case_selection import find_best_case_level

        return find_best_case_level(paths, plans, splits, configurations, ensembles)
    if configurations:
        for c in configurations:
            _validation_folders(paths, c, splits)  # raises naming the folds to train
        configs = list(configurations)
    else:
        configs, notes = trained_configurations(paths, plans, splits)
        for note in notes:
            log.warning("left out: %s", note)
        if not configs:
            raise WorkspaceError(f"no configuration of {paths.name} has all {len(splits)} folds validated; "
                                 f"train first: autounet train {paths.name} CONFIG 0 1 2 3 4 --save-probabilities"
                                 + ("\n" + "\n".join(notes) if notes else ""))
    entries = {c: score_configuration(paths, c, splits) for c in configs}
    if ensembles:
        for a, b in itertools.combinations(configs, 2):
            name = f"{a}+{b}"
            folder = paths.trained.cross_validation_predictions(name)
            entries[name] = score_ensemble(paths, plans, (a, b), splits, folder)
    best = pick_best(entries)
    folder = paths.trained.cross_validation_predictions(best)
    if entries[best]["kind"] != "ensemble":
        collect_predictions(paths, best, splits, plans, folder)
    rules, report = determine_postprocessing_from_folders(folder, paths.references, plans.evaluation_classes,
                                                          plans.ignore_label, processes)
    save_rules(paths.trained.postprocessing, rules, report)
    after = _foreground_after(report, entries[best]["foreground_mean_dice"])
    command = f"autounet predict -i INPUT_FOLDER -o OUTPUT_FOLDER -d {paths.name}"
    result = {
        "classes": [str(c) if not isinstance(c, tuple) else ",".join(map(str, c)) for c in plans.evaluation_classes],
        "entries": entries, "best": best, "postprocessing": {"rules": rules.to_json(), "report": report},
        "foreground_mean_dice_after_postprocessing": after, "predict_command": command,
    }
    write_json(paths.trained.cross_validation, result)
    write_json(paths.trained.best_configuration, {
        "configurations": entries[best]["members"], "folds": entries[best]["folds"], "name": best,
        "foreground_mean_dice": entries[best]["foreground_mean_dice"],
        "foreground_mean_dice_after_postprocessing": after, "postprocessing": paths.trained.postprocessing.name,
        "predict_command": command})
    return result


def _foreground_after(report: dict, before: float) -> float:
    """The foreground-mean Dice after the accepted postprocessing steps (from the report)."""
    value = report.get("final", {}).get("foreground_mean") if isinstance(report, dict) else None
    return float(value) if value is not None else before


def format_table(result: dict) -> str:
    """The cross-validation table, best first, as text."""
    if "task" in result:
        from autounet.postprocess.case_selection import format_case_table

        return format_case_table(result)
    classes = result["classes"]
    rows = sorted(result["entries"].items(), key=lambda kv: -kv[1]["foreground_mean_dice"])
    width = max(len(k) for k in result["entries"]) + 2
    lines = [f"  {'':<{width}}" + "".join(f"{'Dice ' + c:>10}" for c in classes) + f"{'fg mean':>10}"]
    for name, e in rows:
        mark = " <- best" if name == result["best"] else ""
        lines.append(f"  {name:<{width}}" + "".join(f"{e['mean_dice'].get(c, np.nan):>10.4f}" for c in classes)
                     + f"{e['foreground_mean_dice']:>10.4f}{mark}")
    return "\n".join(lines)


def describe_choice(result: dict) -> str:
    """The choice in one line: its Dice before and after postprocessing, or a case-level task's
    cross-validated figures."""
    entry = result["entries"][result["best"]]
    if "task" in result:
        from autounet.postprocess.case_selection import summary_keys

        m, keys = entry["metrics"], summary_keys(result["task"])
        mirror = "with" if all(entry["mirror"]) else "without"
        return f"{result['best']} ({mirror} test-time mirroring), " + ", ".join(f"{k} {m[k]:.4f}" for k in keys)
    return (f"{result['best']}, foreground-mean Dice {entry['foreground_mean_dice']:.4f} "
            f"({result['foreground_mean_dice_after_postprocessing']:.4f} after postprocessing)")
