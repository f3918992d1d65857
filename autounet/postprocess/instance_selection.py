"""Choose the best configuration (or pair ensemble) of an instance task from the cross-validation,
with the rules that turn its predicted classes into objects.

Each configuration's cross-validation masks (each case predicted by the fold that did not train
on it; a pair's from averaged probabilities) are turned into objects by every candidate rule of
:func:`autounet.postprocess.instances.candidate_rules` - the interiors seeding a watershed, or the
connected components of the foreground as users of a semantic model would - and scored against
the reference objects. Each entry keeps its rule of highest mean PQ; the entry of highest PQ wins
(within ``TIE_TOLERANCE``, the simpler one), and its rule is written to postprocessing.json.
"""

from __future__ import annotations

import itertools
from typing import Iterable, Sequence

import numpy as np

from autounet.autoplan.plans import Plans
from autounet.inference.outputs import mask_file
from autounet.io.atomic import write_json
from autounet.io.image_io import read_segmentation
from autounet.postprocess.candidates import candidates, simplest_best, validation_folders
from autounet.postprocess.instances import choose_rules
from autounet.postprocess.metrics import foreground_dice, nanmean
from autounet.postprocess.segmentation_selection import collect_predictions, ensemble_masks
from autounet.postprocess.selections import InstanceSelection
from autounet.workspace import DatasetPaths

SCORES = ("pq", "aji", "object_f1", "instance_dice")


def _entry(kind: str, members: list[str], masks: Iterable[tuple[str, np.ndarray]], references: dict[str, np.ndarray],
           splits: list[dict]) -> tuple[dict, list[dict]]:
    """An entry's figures at its best rule, and every rule's scores."""
    cases, predictions = zip(*sorted(masks, key=lambda cm: cm[0]))
    refs = [references[c] for c in cases]
    rules, report = choose_rules(predictions, refs)
    best = next(r for r in report if r["rules"] == rules.to_json())
    components = max((r["pq"] for r in report if r["rules"]["seeds"] == "components"), default=float("nan"))
    dice = nanmean([foreground_dice(p, r) for p, r in zip(predictions, refs)])
    entry = {"kind": kind, "members": members, "folds": [str(k) for k in range(len(splits))],
             "mean_dice": {"1": dice}, "foreground_mean_dice": dice, **{k: best[k] for k in SCORES},
             "pq_connected_components": components, "rules": rules.to_json(), "num_cases": len(cases)}
    return entry, report


def _configuration_masks(paths: DatasetPaths, plans: Plans, configuration: str, splits: list[dict]
                         ) -> Iterable[tuple[str, np.ndarray]]:
    for case, folder in validation_folders(paths, configuration, splits).items():
        yield case, read_segmentation(mask_file(folder, case, plans.file_ending), plans.reader)[0]


def select_instances(paths: DatasetPaths, plans: Plans, splits: list[dict], configurations: Sequence[str] | None,
                     ensembles: bool) -> InstanceSelection:
    """Score, choose, and write postprocessing.json (the chosen rule and every rule's scores) and
    the best entry's cross-validation masks."""
    configs = candidates(paths, plans, splits, configurations,
                         f"autounet train {paths.name} CONFIG 0 1 2 3 4 --save-probabilities")
    cases = sorted(validation_folders(paths, configs[0], splits))
    references = {c: read_segmentation(paths.reference(c, plans.file_ending), plans.reader)[0] for c in cases}
    entries, reports = {}, {}
    for c in configs:
        entries[c], reports[c] = _entry("configuration", [c], _configuration_masks(paths, plans, c, splits),
                                        references, splits)
    if ensembles:
        for a, b in itertools.combinations(configs, 2):
            name = f"{a}+{b}"
            masks = ensemble_masks(paths, plans, (a, b), splits, paths.trained.cross_validation_predictions(name))
            entries[name], reports[name] = _entry("ensemble", [a, b], masks, references, splits)
    best = simplest_best(entries, "pq")
    if entries[best]["kind"] != "ensemble":
        collect_predictions(paths, best, splits, plans, paths.trained.cross_validation_predictions(best))
    write_json(paths.trained.postprocessing, {"rules": entries[best]["rules"], "report": reports[best]})
    return InstanceSelection(plans.instance_task.object_name, entries, best,
                             f"autounet predict -i INPUT_FOLDER -o OUTPUT_FOLDER -d {paths.name}")
