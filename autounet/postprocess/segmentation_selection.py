"""Choose the best configuration or pair ensemble of a segmentation task from the
cross-validation, then its postprocessing.

Every trained configuration is scored by the mean Dice of its five folds' validation
predictions (each case predicted by the fold that did not train on it); every pair of
configurations is scored as an ensemble by averaging their saved probabilities. The highest
foreground-mean Dice wins; within ``TIE_TOLERANCE`` the simpler choice wins (one configuration
over an ensemble, then the order of ``SIMPLICITY``). Postprocessing is then determined on the
winner's cross-validation predictions.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from autounet.progress import progress

from autounet.autoplan.plans import Plans
from autounet.errors import WorkspaceError
from autounet.inference.ensemble import averaged_case
from autounet.inference.outputs import mask_file, probabilities_saved
from autounet.inference.probabilities import probabilities_to_labels
from autounet.io.atomic import copy_file, read_json
from autounet.io.geometry import Geometry
from autounet.io.image_io import read_segmentation, write_segmentation
from autounet.postprocess.candidates import candidates, simplest_best, validation_folders
from autounet.postprocess.metrics import case_scores, foreground_mean, mean_per_class
from autounet.postprocess.selections import SegmentationSelection
from autounet.workspace import DatasetPaths


def select_segmentation(paths: DatasetPaths, plans: Plans, splits: list[dict], configurations: Sequence[str] | None,
                        ensembles: bool, processes: int) -> SegmentationSelection:
    """Score configurations and pair ensembles, pick the best, determine and write its
    postprocessing (postprocessing.json) and the best entry's cross-validation predictions."""
    from autounet.postprocess.selection import determine_postprocessing_from_folders, save_rules

    configs = candidates(paths, plans, splits, configurations,
                         f"autounet train {paths.name} CONFIG 0 1 2 3 4 --save-probabilities")
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
    classes = [str(c) if not isinstance(c, tuple) else ",".join(map(str, c)) for c in plans.evaluation_classes]
    return SegmentationSelection(classes, entries, best, {"rules": rules.to_json(), "report": report},
                                 _foreground_after(report, entries[best]["foreground_mean_dice"]),
                                 f"autounet predict -i INPUT_FOLDER -o OUTPUT_FOLDER -d {paths.name}")


def _scores(entry: dict, per_case: list[dict], splits: list[dict]) -> dict:
    means, lesion_f1 = mean_per_class(per_case), mean_per_class(per_case, "lesion_f1")
    return {**entry, "folds": [str(k) for k in range(len(splits))], "mean_dice": means,
            "foreground_mean_dice": foreground_mean(means), "mean_lesion_f1": lesion_f1,
            "foreground_mean_lesion_f1": foreground_mean(lesion_f1), "num_cases": len(per_case)}


def score_configuration(paths: DatasetPaths, configuration: str, splits: list[dict]) -> dict:
    """Mean Dice per class over the cross-validation predictions of one configuration (each
    case scored in the validation summary of the fold that did not train on it)."""
    folders = validation_folders(paths, configuration, splits)
    per_case = {}
    for k in range(len(splits)):
        summary = read_json(paths.trained.fold(configuration, k).validation_summary)
        per_case.update({c["case_id"]: c["metrics"] for c in summary["cases"]})
    return _scores({"kind": "configuration", "members": [configuration]},
                   [per_case[c] for c in sorted(folders)], splits)


def ensemble_masks(paths: DatasetPaths, plans: Plans, members: Sequence[str], splits: list[dict], out: Path
                   ) -> Iterator[tuple[str, np.ndarray]]:
    """Average the members' CV probabilities per case and write the labels to ``out``; yields
    each case id with its labels."""
    folders = [validation_folders(paths, m, splits) for m in members]
    for case in progress(sorted(folders[0]), desc=f"ensemble {'+'.join(members)}", unit="case"):
        for member, f in zip(members, folders):
            if not probabilities_saved(f[case], case):
                raise WorkspaceError(f"{f[case]}: no probabilities of {case} for ensembling; re-run "
                                     f"autounet train {paths.name} {member} FOLD --continue --save-probabilities "
                                     "for every fold (validation is redone, training is not)")
        mean, meta = averaged_case([f[case] for f in folders], case)
        seg = probabilities_to_labels(mean, plans.regions_class_order)
        write_segmentation(seg, Geometry.from_json(meta["geometry"]), mask_file(out, case, plans.file_ending))
        yield case, seg


def score_ensemble(paths: DatasetPaths, plans: Plans, members: Sequence[str], splits: list[dict], out: Path) -> dict:
    """Average the members' CV probabilities per case, write the labels to ``out``, score them."""
    per_case = []
    for case, seg in ensemble_masks(paths, plans, members, splits, out):
        ref, _ = read_segmentation(paths.reference(case, plans.file_ending), plans.reader)
        per_case.append(case_scores(seg, ref, plans.evaluation_classes, plans.ignore_label))
    return _scores({"kind": "ensemble", "members": list(members)}, per_case, splits)


def pick_best(entries: dict[str, dict]) -> str:
    """Highest foreground-mean Dice; within TIE_TOLERANCE of it, the simplest entry."""
    return simplest_best(entries, "foreground_mean_dice")


def collect_predictions(paths: DatasetPaths, configuration: str, splits: list[dict], plans: Plans, out: Path) -> Path:
    """Copy a configuration's CV label maps from the fold folders into one folder."""
    for case, folder in validation_folders(paths, configuration, splits).items():
        copy_file(mask_file(folder, case, plans.file_ending), mask_file(out, case, plans.file_ending))
    return out


def _foreground_after(report: dict, before: float) -> float:
    """The foreground-mean Dice after the accepted postprocessing steps (from the report)."""
    value = report.get("final", {}).get("foreground_mean") if isinstance(report, dict) else None
    return float(value) if value is not None else before
