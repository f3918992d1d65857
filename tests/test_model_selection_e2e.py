"""End to end: two configurations x five folds -> find_best_configuration -> predict with the choice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from autounet import api
from autounet.errors import WorkspaceError
from autounet.io.atomic import read_json, write_json
from autounet.io.image_io import read_segmentation
from autounet.inference.settings import PredictSettings
from autounet.training.config import TrainingConfig

TINY = TrainingConfig(epochs=1, iterations_per_epoch=2, val_iterations_per_epoch=1, num_workers=0,
                      validation=PredictSettings(mirror=False, save_probabilities=True, processes=0))


@pytest.fixture(scope="module")
def cross_validated(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cv")
    raw = api.make_example_dataset(root / "raw" / "Dataset004_Sel", dims=3, cases=6, channels=1,
                                   anisotropic=True, shape=(10, 24, 24), test_cases=2)
    api.plan_and_preprocess(raw, root=root, processes=1)
    for configuration in ("2d", "3d_fullres"):
        for fold in range(5):
            api.train(raw, configuration, fold, root=root, device="cpu", config=TINY)
    return raw, root


def test_find_best_then_predict_uses_the_choice(cross_validated, tmp_path):
    raw, root = cross_validated
    proc = subprocess.run([sys.executable, "-m", "autounet.cli", "find_best_configuration", str(raw), "--root",
                           str(root), "-p", "1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "autounet predict -i INPUT_FOLDER -o OUTPUT_FOLDER -d Dataset004_Sel" in proc.stderr
    results = root / "results" / raw.name
    cv = read_json(results / "cross_validation.json")
    assert set(cv["entries"]) == {"2d", "3d_fullres", "2d+3d_fullres"}
    best = read_json(results / "best_configuration.json")
    assert best["configurations"] == cv["entries"][cv["best"]]["members"]
    top = max(e["foreground_mean_dice"] for e in cv["entries"].values())
    assert cv["entries"][cv["best"]]["foreground_mean_dice"] >= top - 1e-4
    assert (results / "postprocessing.json").is_file()
    # predict without -c uses the choice; force a postprocessing rule to see it applied
    pp = read_json(results / "postprocessing.json")
    # exactly the foreground rule: a per-class rule applied after it may split the foreground again
    pp["rules"]["keep_largest_foreground"] = True
    pp["rules"]["keep_largest_per_class"] = []
    write_json(results / "postprocessing.json", pp)
    out = tmp_path / "pred"
    report = api.predict(raw / "imagesTs", out, dataset=raw, root=root,
                         settings=PredictSettings(device="cpu", mirror=False))
    assert not report.failed and len(report.written) == 2
    for path in report.written:
        seg, _ = read_segmentation(path, "simpleitk")
        assert ndimage.label(seg > 0, np.ones((3, 3, 3)))[1] <= 1
    evaluation = api.evaluate(raw / "labelsTs", out)
    assert set(evaluation["mean"]) == {"1", "2"} and (out / "metrics.csv").is_file()
    page = api.report(raw, root=root)
    assert cv["best"] in page.read_text()


def test_ties_go_to_the_simpler_choice():
    from autounet.postprocess.segmentation_selection import pick_best

    entries = {"3d_fullres": {"members": ["3d_fullres"], "foreground_mean_dice": 0.80},
               "2d": {"members": ["2d"], "foreground_mean_dice": 0.80},
               "2d+3d_fullres": {"members": ["2d", "3d_fullres"], "foreground_mean_dice": 0.80004}}
    assert pick_best(entries) == "2d"
    entries["2d+3d_fullres"]["foreground_mean_dice"] = 0.81
    assert pick_best(entries) == "2d+3d_fullres"


def test_missing_folds_and_probabilities_name_what_to_run(cross_validated, tmp_path):
    import shutil

    raw, root = cross_validated
    copy = tmp_path / "ws"
    shutil.copytree(root, copy)
    results = copy / "results" / raw.name
    shutil.rmtree(results / "3d_fullres" / "fold_3")
    with pytest.raises(WorkspaceError, match=r"fold\(s\) 3 .*autounet train Dataset004_Sel 3d_fullres 3"):
        api.find_best_configuration(raw, root=copy, configurations=["2d", "3d_fullres"])
    for npz in (results / "2d" / "fold_0" / "validation").glob("*.npz"):
        npz.unlink()
    shutil.rmtree(results / "3d_fullres")
    shutil.copytree(root / "results" / raw.name / "3d_fullres", results / "3d_fullres")
    with pytest.raises(WorkspaceError, match="--save-probabilities"):
        api.find_best_configuration(raw, root=copy)
