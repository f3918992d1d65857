"""The HTML report, on a planned (not trained) tiny workspace with faked training outputs."""

from __future__ import annotations

import html
import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from autounet.api import plan_and_preprocess
from autounet.autoplan.plans import StagePlan, load_plans
from autounet.example_data import make_example_dataset
from autounet.postprocess.components import describe_rules
from autounet.report import write_report
from autounet.report.overlays import best_slice
from autounet.workspace import DatasetPaths, resolve_dataset

NAME = "Dataset900_Example"
ENDING = ".nii.gz"
PREDICT = f"autounet predict -i INPUT -o OUTPUT -d {NAME}"


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> DatasetPaths:
    """Raw data, plans and gt_segmentations of 6 tiny cases; results/ is left empty."""
    root = tmp_path_factory.mktemp("workspace")
    raw = make_example_dataset(root / "raw" / NAME, dims=3, cases=6, shape=(10, 24, 24))
    plan_and_preprocess(raw, root=root, processes=1)
    return resolve_dataset(NAME, root)


def fake_log(epochs: int) -> dict[str, list]:
    x = list(range(epochs))
    return {"epoch": x, "train_loss": [1 - 0.1 * i for i in x], "val_loss": [1.1 - 0.1 * i for i in x],
            "pseudo_dice": [0.1 * i for i in x], "pseudo_dice_ema": [0.08 * i for i in x],
            "lr": [0.01] * epochs, "epoch_seconds": [2.0] * epochs}


def fake_fold(paths: DatasetPaths, config: str, fold: int, cases: list[str], checkpoint: str = "checkpoint_final.pt"):
    """A fold folder with a log-only checkpoint and 'predictions' copied from the references."""
    folder = paths.results / config / f"fold_{fold}"
    (folder / "validation").mkdir(parents=True)
    torch.save({"log": fake_log(5), "network": {}, "plans": "{}"}, folder / checkpoint)
    for case in cases:
        shutil.copyfile(paths.preprocessed / "gt_segmentations" / f"{case}{ENDING}",
                        folder / "validation" / f"{case}{ENDING}")
    return folder


def cv_results() -> dict:
    def entry(kind, members, d1, d2, mean):
        return {"kind": kind, "members": members, "folds": ["0", "1"], "mean_dice": {"1": d1, "2": d2},
                "foreground_mean_dice": mean}

    def step(rule, cls, accepted, before, after):
        return {"rule": rule, **({"class": cls} if cls is not None else {}), "accepted": accepted,
                "before": {"foreground_mean": before}, "after": {"foreground_mean": after}}

    return {"classes": ["1", "2"],
            "entries": {"2d": entry("configuration", ["2d"], 0.9123, 0.7011, 0.8067),
                        "3d_fullres": entry("configuration", ["3d_fullres"], 0.8555, 0.6444, 0.74995),
                        "2d+3d_fullres": entry("ensemble", ["2d", "3d_fullres"], 0.9345, 0.7222, 0.8284)},
            "best": "2d+3d_fullres",
            "postprocessing": {
                "rules": {"schema_version": 1, "keep_largest_foreground": True, "keep_largest_per_class": [[1]]},
                "report": {"num_cases": 6, "note": "<largest>", "final": {"foreground_mean": 0.8333},
                           "steps": [step("keep_largest_foreground", None, True, 0.8284, 0.8301),
                                     step("keep_largest_per_class", 1, True, 0.8301, 0.8333),
                                     step("keep_largest_per_class", 2, False, 0.8333, 0.8111)]}},
            "foreground_mean_dice_after_postprocessing": 0.8333,
            "predict_command": PREDICT}


@pytest.fixture
def trained(planned: DatasetPaths, tmp_path: Path) -> DatasetPaths:
    """The planned workspace with its own results/: two folds of 2d and 3d_fullres, CV results."""
    paths = replace(planned, results=tmp_path / "results" / NAME)
    cases = sorted(p.name[: -len(ENDING)] for p in (planned.preprocessed / "gt_segmentations").glob(f"*{ENDING}"))
    for config in ("2d", "3d_fullres"):
        fake_fold(paths, config, 0, cases[:3])
        fake_fold(paths, config, 1, cases[3:], checkpoint="checkpoint_latest.pt")
    (paths.results / "cross_validation.json").write_text(json.dumps(cv_results()))
    return paths


def images_of(index: Path) -> list[Path]:
    return [index.parent / src for src in re.findall(r'<img src="([^"]+)"', index.read_text())]


def section(text: str, anchor: str) -> str:
    return text.split(f'<section id="{anchor}">', 1)[1].split("</section>", 1)[0]


def test_full_report(trained: DatasetPaths):
    index = write_report(trained)
    assert index == trained.results / "report" / "index.html" and index.is_file()
    text = index.read_text()
    for name in ("2d", "3d_fullres", "2d+3d_fullres"):
        assert f"<h3>{name}</h3>" in text or f"<td>{name}" in text
    for value in ("0.9123", "0.7011", "0.8555", "0.6444", "0.9345", "0.7222", "0.8284", "0.8333"):
        assert value in text
    assert 'class="best"' in text
    # best row first in the table (sorted by foreground mean Dice)
    cv = section(text, "cross-validation")
    assert cv.index("2d+3d_fullres") < cv.index("<td>2d<") < cv.index("<td>3d_fullres<")
    assert "largest connected component of the whole foreground" in text
    assert "For organ (1): keep only its largest connected component" in text
    assert html.escape(PREDICT) in text
    assert html.escape('"<largest>"') in text and "<largest>" not in text  # free-form report, escaped
    assert "schema_version" not in cv.split("<details>")[0]  # not described as a rule
    assert "<td>all foreground</td><td>yes</td><td>0.8284</td><td>0.8301</td>" in cv  # steps table
    assert "<td>lesion (2)</td><td>no</td><td>0.8333</td><td>0.8111</td>" in cv
    # plan tables, normalization, training curves, overlays: all present, no notes
    assert "patch size" in text and "Normalization per channel" in text and "estimated memory" in text
    assert '<p class="note">' not in text
    images = images_of(index)
    assert all(p.is_file() and p.suffix == ".png" for p in images)
    assert sum("training_" in p.name for p in images) == 4
    assert sum("overlay_" in p.name for p in images) == 4
    assert all("overlay_2d_" in p.name for p in images if "overlay_" in p.name)  # first member of the best
    assert "unfinished (latest checkpoint)" in text and "finished" in text


def test_max_overlays_and_stale_figures(trained: DatasetPaths, tmp_path: Path):
    out = tmp_path / "elsewhere"
    index = write_report(trained, output=out, max_overlays=2)
    assert index == out / "index.html"
    assert sum("overlay_" in p.name for p in images_of(index)) == 2
    index = write_report(trained, output=out, max_overlays=0)
    assert not any("overlay_" in p.name for p in images_of(index))
    assert not list((out / "figures").glob("overlay_*.png"))  # the previous run's overlays are gone
    assert "max_overlays = 0" in index.read_text()


def test_missing_inputs_give_notes(planned: DatasetPaths, tmp_path: Path):
    paths = replace(planned, results=tmp_path / "results" / NAME)  # planned, nothing trained
    text = write_report(paths).read_text()
    assert "<h3>2d</h3>" in text and "<h3>3d_fullres</h3>" in text  # the plan is shown
    assert 'No trained folds yet' in section(text, "training")
    assert "No cross-validation results yet" in section(text, "cross-validation")
    assert "No validation predictions yet" in section(text, "overlays")
    assert "<img" not in text

    nothing = DatasetPaths(name="Dataset901_Nothing", raw=tmp_path / "r", preprocessed=tmp_path / "p",
                           results=tmp_path / "res")
    text = write_report(nothing).read_text()
    assert text.count('<p class="note">') == 4
    assert "No plan yet" in section(text, "plan")


def test_broken_inputs_give_notes(trained: DatasetPaths):
    fold = trained.results / "2d" / "fold_0"
    shutil.copyfile(images_of(write_report(trained))[0], fold / "progress.png")
    (trained.results / "cross_validation.json").write_text("{not json")
    (fold / "checkpoint_final.pt").write_bytes(b"garbage")
    (trained.results / "3d_fullres" / "fold_1" / "checkpoint_latest.pt").unlink()
    text = write_report(trained).read_text()
    assert "could not be read" in section(text, "cross-validation")
    training = section(text, "training")
    assert "progress.png" in training and "checkpoint_final.pt could not be read" in training
    assert "3d_fullres fold 1: no checkpoint or progress.png yet" in training
    # without CV results the overlays fall back to the first configuration with predictions
    assert "no cross-validation results" in section(text, "overlays")
    assert all(p.is_file() for p in images_of(trained.results / "report" / "index.html"))


def test_text_is_escaped(trained: DatasetPaths):
    cv = cv_results()
    cv["entries"]["<b>x</b>"] = {**cv["entries"]["3d_fullres"], "members": ["<b>x</b>"]}
    cv["predict_command"] = "autounet predict -i 'a&b' <x>"
    (trained.results / "cross_validation.json").write_text(json.dumps(cv))
    text = write_report(trained).read_text()
    assert "<b>x</b>" not in text and "&lt;b&gt;x&lt;/b&gt;" in text
    assert "autounet predict -i &#x27;a&amp;b&#x27; &lt;x&gt;" in text


def test_describe_postprocessing():
    names = {"1": "organ", "1,2": "whole"}
    assert describe_rules({}) == [
        "No postprocessing: removing connected components did not improve the cross-validation Dice."]
    lines = describe_rules({"keep_largest_foreground": False, "keep_largest_per_class": [[1], [1, 2], 3]},
                                    names)
    assert [line.split(":")[0] for line in lines] == ["For organ (1)", "For whole (1,2)", "For class 3"]


def test_best_slice():
    ref = np.zeros((4, 5, 5), np.int8)
    ref[1, :2] = 1
    ref[2, :3] = 2
    assert best_slice(ref) == 2
    empty = np.zeros_like(ref)
    assert best_slice(empty, ref) == 2
    assert best_slice(empty) == 2 and best_slice(np.zeros((5, 2, 2))) == 2


def half_features(stage: StagePlan) -> StagePlan:
    """The first lighter variant a time budget tries: half the features per stage."""
    net = stage.network
    return replace(stage, network=replace(net, features_per_stage=tuple(max(8, f // 2) for f in net.features_per_stage)))


def save_trained(paths: DatasetPaths, config: str, fold: int, checkpoint: str, stage: StagePlan | None = None) -> None:
    """A log-only checkpoint whose plans hold ``stage`` (default: the planned one) for ``config``."""
    plans = load_plans(paths.plans)
    if stage is not None:
        plans = replace(plans, configurations={**plans.configurations, config: stage})
    torch.save({"log": fake_log(5), "network": {}, "plans": json.dumps(plans.to_json()), "configuration": config},
               paths.results / config / f"fold_{fold}" / checkpoint)


def subsection(text: str, heading: str) -> str:
    """From ``<h3>heading</h3>`` to the next ``<h3>``."""
    return text.split(f"<h3>{heading}</h3>", 1)[1].split("<h3>", 1)[0]


def test_trained_stage_shown_when_lighter(trained: DatasetPaths):
    planned = load_plans(trained.plans).configurations["3d_fullres"]
    lighter = half_features(planned)
    save_trained(trained, "3d_fullres", 0, "checkpoint_final.pt", lighter)
    text = write_report(trained).read_text()
    plan = section(text, "plan")
    shown = subsection(plan, "3d_fullres")
    assert " – ".join(map(str, lighter.network.features_per_stage)) in shown
    assert " – ".join(map(str, planned.network.features_per_stage)) in shown  # the plan's value stays
    assert "as trained" in shown and "time budget" in shown and "checkpoint_final.pt of fold 0" in shown
    assert "as trained" not in subsection(plan, "2d")
    assert "<td>patch size</td>" not in shown.split("as trained", 1)[1]  # only the fields that differ
    assert "Trained with another network than planned (see the plan): 3d_fullres." in text
    assert '<p class="note">' not in text


def test_trained_stage_from_latest_when_finished_unreadable(trained: DatasetPaths):
    (trained.results / "2d" / "fold_0" / "checkpoint_final.pt").write_bytes(b"garbage")
    lighter = half_features(load_plans(trained.plans).configurations["2d"])
    save_trained(trained, "2d", 1, "checkpoint_latest.pt", lighter)
    shown = subsection(section(write_report(trained).read_text(), "plan"), "2d")
    assert " – ".join(map(str, lighter.network.features_per_stage)) in shown
    assert "checkpoint_latest.pt of fold 1" in shown


def test_planned_stage_adds_nothing(trained: DatasetPaths):
    before = section(write_report(trained).read_text(), "plan")  # fake checkpoints: plans "{}"
    assert "as trained" not in before
    for config in ("2d", "3d_fullres"):
        save_trained(trained, config, 0, "checkpoint_final.pt")
    text = write_report(trained).read_text()
    assert section(text, "plan") == before
    assert "Trained with another network" not in text
