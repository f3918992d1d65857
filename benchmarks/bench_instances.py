"""Instances on ISBI 2012 EM, at one wall-clock budget: autounet's instance mode against the
connected components of autounet's own semantic model (what users of a semantic model fall back
to). The cells of the shared ``Dataset901_ISBI2012EM`` (label 0, between the membranes, label 1)
are the objects: touching objects apart from thin membranes.

Two datasets are written from the shared one, with the same 30 images and the same splits:
``Dataset911_ISBICells`` (``"task": "instance"``: each cell, a face-connected component of the
non-membrane pixels, one id) and ``Dataset912_ISBICellsSemantic`` (cell = 1, membrane = 0). Each
gets ``autounet run --time-budget BUDGET`` in a fresh workspace, one after the other. Their
cross-validation masks (each case predicted by the fold that did not train on it) are then turned
into objects - the instance mode's by the rule its cross-validation chose, the semantic model's by
connected components of its cells (face and full connectivity; the better one is reported) - and
scored against the cells: PQ, AJI, object F1, per fold and over all 30 cases.

    python benchmarks/bench_instances.py --out bench_out/instances --budget 5m

Run on a quiet machine; nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = (REPO.parent / "shared" / "datasets" / "Dataset901_ISBI2012EM").resolve()

from autounet.io.atomic import read_json  # noqa: E402
from autounet.io.image_io import read_segmentation, write_segmentation  # noqa: E402
from autounet.postprocess.instance_metrics import instance_metrics  # noqa: E402
from autounet.postprocess.instances import InstanceRules, classes_to_instances  # noqa: E402

INSTANCE, SEMANTIC = "Dataset911_ISBICells", "Dataset912_ISBICellsSemantic"
SCORES = ("pq", "aji", "object_f1")
READER = "natural2d"  # how autounet reads PNG label maps


def write_datasets(workspaces: dict[str, Path]) -> None:
    """The instance and the semantic dataset, each in its workspace's raw/, from the shared one
    (labels rewritten, images copied)."""
    for name, task, labels in ((INSTANCE, "instance", {"background": 0, "cell": 1}),
                               (SEMANTIC, None, {"background": 0, "cell": 1})):
        out = workspaces[name] / "raw" / name
        shutil.copytree(SHARED / "imagesTr", out / "imagesTr")
        (out / "labelsTr").mkdir(parents=True)
        for path in sorted((SHARED / "labelsTr").glob("*.png")):
            membrane, geometry = read_segmentation(path, READER)
            cells = membrane == 0
            seg = ndimage.label(cells[0])[0][None] if task == "instance" else cells.astype(np.uint8)
            write_segmentation(seg, geometry, out / "labelsTr" / path.name)
        meta = read_json(SHARED / "dataset.json")
        meta.update(labels=labels, name=name, **({"task": task} if task else {}))
        (out / "dataset.json").write_text(json.dumps(meta, indent=2))


def run(workspace: Path, name: str, budget: str, log: Path) -> float:
    started = time.monotonic()
    with open(log, "w") as f:
        subprocess.run([sys.executable, "-m", "autounet", "run", str(workspace / "raw" / name), "--root",
                        str(workspace), "--time-budget", budget], check=True, stdout=f, stderr=subprocess.STDOUT)
    return time.monotonic() - started


def cv_objects(workspace: Path, name: str, references: Path, to_objects) -> dict[int, list[dict]]:
    """fold -> the instance metrics of each of its validation cases (the best configuration's
    masks, objects made by ``to_objects``) against the cells in ``references``."""
    results = workspace / "results" / name
    best = read_json(results / "best_configuration.json")["configurations"][0]
    splits = read_json(workspace / "preprocessed" / name / "splits.json")
    out = {}
    for k, split in enumerate(splits):
        out[k] = []
        for case in split["val"]:
            pred, _ = read_segmentation(results / best / f"fold_{k}" / "validation" / f"{case}.png", READER)
            ref, _ = read_segmentation(references / f"{case}.png", READER)
            out[k].append(instance_metrics(to_objects(pred), ref))
    return out


def summary(per_fold: dict[int, list[dict]]) -> dict:
    folds = {k: {m: float(np.nanmean([c[m] for c in cases])) for m in SCORES} for k, cases in per_fold.items()}
    every = [c for cases in per_fold.values() for c in cases]
    return {"fold_0": folds[0], "cv": {m: float(np.nanmean([c[m] for c in every])) for m in SCORES},
            "fold_std": {m: float(np.std([f[m] for f in folds.values()])) for m in SCORES},
            "folds": folds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", default="5m")
    a = parser.parse_args()
    workspaces = {n: a.out / n for n in (INSTANCE, SEMANTIC)}
    for ws in workspaces.values():
        shutil.rmtree(ws, ignore_errors=True)
    write_datasets(workspaces)
    walls = {n: run(ws, n, a.budget, a.out / f"{n}.log") for n, ws in workspaces.items()}
    cells = workspaces[INSTANCE] / "preprocessed" / INSTANCE / "gt_segmentations"
    rules = InstanceRules.from_json(read_json(workspaces[INSTANCE] / "results" / INSTANCE / "postprocessing.json")["rules"])
    results = {"instance mode": summary(cv_objects(workspaces[INSTANCE], INSTANCE, cells,
                                                   lambda p: classes_to_instances(p, rules)))}
    for label, structure in (("semantic + components (face)", None), ("semantic + components (full)", np.ones((3, 3)))):
        results[label] = summary(cv_objects(workspaces[SEMANTIC], SEMANTIC, cells,
                                            lambda p, s=structure: ndimage.label(p[0] > 0, structure=s)[0][None]))
    report = {"budget": a.budget, "wall_s": walls, "rules": rules.to_json(), "results": results}
    (a.out / "instances.json").write_text(json.dumps(report, indent=2))
    for label, r in results.items():
        print(f"{label:32s} fold 0: " + ", ".join(f"{m} {r['fold_0'][m]:.3f}" for m in SCORES)
              + " | CV: " + ", ".join(f"{m} {r['cv'][m]:.3f} (fold sd {r['fold_std'][m]:.3f})" for m in SCORES))
    print("wall:", {k: round(v) for k, v in walls.items()}, "rule:", rules.describe())


if __name__ == "__main__":
    main()
