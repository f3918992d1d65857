"""Case-level tasks end to end on tiny synthetic data: ``api.run`` from raw images and a labels
CSV to a chosen configuration and a report, ``api.predict`` to a predictions CSV, ``api.evaluate``
against labelsTs.csv; a 1:9 imbalanced set that must be learnt beyond the majority class; a
MedMNIST-style file converted and trained; and a finished run that a second run leaves alone."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from autounet import api
from autounet.autoplan.plans import load_plans
from autounet.errors import WorkspaceError
from autounet.example_data import make_case_dataset
from autounet.inference.case_outputs import write_predictions
from autounet.io.atomic import read_json
from autounet.io.targets import read_targets, write_targets
from autounet.workspace import RawPaths, dataset_paths

TINY = api.TrainingConfig(epochs=2, iterations_per_epoch=3, val_iterations_per_epoch=1, num_workers=0)
FOLDS = 5


def options(schedule: api.TrainingConfig = TINY) -> api.RunOptions:
    return api.RunOptions(schedule=schedule, device="cpu", processes=1)


# name -> (dataset, make_case_dataset arguments, configuration, predictions header, summary metrics)
TASKS = {
    "classification_2d": ("Dataset971_Cls2D", dict(task="classification", dims=2), "2d",
                          ["case", "label", "prob_class_0", "prob_class_1"], ("auc", "accuracy", "balanced_accuracy")),
    "classification_3d": ("Dataset972_Cls3D", dict(task="classification", dims=3, shape=(8, 12, 12)), "3d_fullres",
                          ["case", "label", "prob_class_0", "prob_class_1"], ("auc", "accuracy", "balanced_accuracy")),
    "multilabel_2d": ("Dataset973_Multi2D", dict(task="multilabel", dims=2), "2d",
                      ["case", "bright", "dark", "prob_bright", "prob_dark"], ("auc", "accuracy", "f1_macro")),
    "regression_2d": ("Dataset974_Reg2D", dict(task="regression", dims=2), "2d", ["case", "radius"],
                      ("mae", "rmse", "r2")),
}
TEST_CASES = 4


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished ``api.run`` of each task, trained once for the module: (root, raw folder, result)."""
    runs: dict[str, tuple[Path, Path, dict]] = {}

    def get(key: str) -> tuple[Path, Path, dict]:
        if key not in runs:
            name, kwargs, *_ = TASKS[key]
            root = tmp_path_factory.mktemp(key)
            raw = make_case_dataset(root / "raw" / name, cases=20, test_cases=TEST_CASES, seed=3, **kwargs)
            runs[key] = (root, raw, api.run(raw, root, options()))
        return runs[key]

    return get


def read_csv(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return [row for row in csv.reader(f) if row]


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


@pytest.mark.parametrize("key", list(TASKS))
def test_a_case_level_run_chooses_a_configuration_predicts_and_evaluates(finished, key):
    name, kwargs, config, header, keys = TASKS[key]
    task = kwargs["task"]
    root, raw, result = finished(key)
    paths = dataset_paths(root, name)
    results = paths.results
    assert result["configurations"] == [config]
    best = read_json(results / "best_configuration.json")
    assert best["configurations"] == [config] and best["task"] == task and best["name"] == config

    splits = read_json(paths.splits)
    assert len(splits) == FOLDS
    for k in range(FOLDS):
        validation = results / config / f"fold_{k}" / "validation"
        assert (results / config / f"fold_{k}" / "checkpoint_final.pt").is_file()
        rows = read_csv(validation / "predictions.csv")
        assert rows[0] == header
        assert [r[0] for r in rows[1:]] == sorted(splits[k]["val"])
        summary = read_json(validation / "summary.json")
        assert summary["task"] == task and all(finite(summary["mirrored"][m]) for m in keys[:2])

    cv = read_json(results / "cross_validation.json")
    assert cv["task"] == task and cv["best"] == config
    metrics = cv["entries"][config]["metrics"]
    assert metrics["num_cases"] == 20
    assert all(finite(metrics[m]) for m in keys if m != "r2"), metrics
    report = (results / "report" / "index.html").read_text()
    assert ("predicted against true" if task == "regression" else "ROC") in report

    predictions = root / "test_predictions.csv"
    with pytest.raises(WorkspaceError, match="--backend onnxruntime: a case-level model runs with torch"):
        api.predict(RawPaths(raw).images("Ts"), predictions, raw, root=root,
                    settings=api.PredictSettings(backend="onnxruntime"))
    assert not predictions.exists()
    chosen = api.find_best_configuration(raw, root=root)  # the typed result, the files as the run wrote them
    assert chosen.to_json() == cv and chosen.best == config and chosen.prediction_output == "predictions.csv"
    assert chosen.describe().startswith(config) and all(k in chosen.table() for k in keys)
    report_ = api.predict(RawPaths(raw).images("Ts"), predictions, raw, root=root)
    assert report_.failed == {} and report_.written == [predictions]
    rows = read_csv(predictions)
    assert rows[0] == header
    assert [r[0] for r in rows[1:]] == [f"case_ts_{i:03d}" for i in range(TEST_CASES)]
    if task == "classification":
        assert all(r[1] in ("0", "1") and float(r[2]) + float(r[3]) == pytest.approx(1.0, abs=1e-5) for r in rows[1:])
        t = best["thresholds"][0]  # class 1 where its probability reaches the threshold chosen on the CV
        assert all(r[1] == str(int(float(r[3]) >= t)) for r in rows[1:])
    elif task == "multilabel":
        t = best["thresholds"]  # chosen on the cross-validation, one per target
        assert len(t) == 2 and all(0 < v < 1 for v in t)
        assert all(r[1] == str(int(float(r[3]) >= t[0])) and r[2] == str(int(float(r[4]) >= t[1])) for r in rows[1:])
    else:
        assert all(finite(float(r[1])) for r in rows[1:])

    _predictor_and_continue_agree_with_the_table(raw, root, predictions, task)

    evaluation = root / "evaluation" / "test.json"
    evaluation.parent.mkdir()
    scores = api.evaluate(RawPaths(raw).targets("Ts"), predictions, evaluation)
    assert scores["task"] == task and scores["num_cases"] == TEST_CASES
    assert all(k in scores for k in keys)
    written = json.loads(evaluation.read_text())
    assert written["task"] == task and [c["case"] for c in written["cases"]] == [r[0] for r in rows[1:]]
    assert written[keys[0]] == pytest.approx(scores[keys[0]], nan_ok=True)


def _predictor_and_continue_agree_with_the_table(raw: Path, root: Path, predictions: Path, task: str) -> None:
    """The in-memory Predictor gives each case's row of the predictions CSV; --continue after a
    partial table predicts only the missing cases; a part of a split run writes its own CSV."""
    from autounet import Predictor
    from autounet.io.image_io import file_ending, read_channels, reader_for

    rows = read_csv(predictions)
    predictor = Predictor.from_results(raw, root=root)
    images = sorted(RawPaths(raw).images("Ts").iterdir())
    for row, path in zip(rows[1:], images):
        assert path.name.startswith(row[0])
        images, geometry = read_channels([path], reader_for(file_ending(path)))
        flat = geometry.file_dims == 2
        pixels = images[:, 0] if flat else images  # (C, Y, X) or (C, Z, Y, X), as a user holds them
        result = predictor.predict(pixels[0] if pixels.shape[0] == 1 else pixels,
                                   spacing=None if flat else geometry.spacing)
        if task == "regression":
            assert [f"{v:.6g}" for v in result.values] == row[1:]
        else:
            assert [f"{p:.6f}" for p in result.probabilities] == row[-len(result.names):]
            labels = [result.label] if task == "classification" else list(result.label)
            assert [str(int(v)) for v in labels] == row[1:1 + len(labels)]
    partial = predictions.with_name("partial.csv")
    partial.write_text("\n".join(",".join(r) for r in rows[:2]) + "\n")
    report = api.predict(RawPaths(raw).images("Ts"), partial, raw, root=root, resume=True)
    assert report.skipped == [rows[1][0]] and sorted(report.cases) == [r[0] for r in rows[2:]]
    assert read_csv(partial) == rows
    part = api.predict(RawPaths(raw).images("Ts"), predictions, raw, root=root, part=(1, 2))
    assert part.written == [predictions.with_name(f"{predictions.stem}_part1of2.csv")]
    assert [r[0] for r in read_csv(part.written[0])[1:]] == [r[0] for r in rows[2::2]]


def test_a_second_run_of_a_finished_case_level_run_trains_nothing(finished):
    root, raw, first = finished("classification_2d")
    results = dataset_paths(root, TASKS["classification_2d"][0]).results
    checkpoints = sorted(results.glob("2d/fold_*/checkpoint_*.pt"))
    assert len(checkpoints) >= FOLDS
    stamps = {p: p.stat().st_mtime_ns for p in checkpoints}
    sessions = read_json(results / "run.json")["sessions"]
    best = read_json(results / "best_configuration.json")
    again = api.run(raw, root, options())
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert sorted(results.glob("2d/fold_*/checkpoint_*.pt")) == checkpoints
    assert again["configurations"] == first["configurations"] == ["2d"]
    assert read_json(results / "best_configuration.json") == best
    record = read_json(results / "run.json")
    assert record["finished"] and record["sessions"] == sessions + 1


def test_a_1_to_9_imbalanced_set_is_learnt_beyond_the_majority_class(tmp_path: Path):
    name = "Dataset975_Imbalanced"
    raw = make_case_dataset(tmp_path / "raw" / name, task="classification", dims=2, cases=60,
                            class_shares=(0.9, 0.1), test_cases=20, seed=0)
    spec_labels = {"class_0": 0, "class_1": 1}
    train = read_targets(RawPaths(raw).targets("Tr"), "classification", spec_labels)
    assert sorted(int(v[0]) for v in train.values()) == [0] * 54 + [1] * 6
    schedule = api.TrainingConfig(epochs=4, iterations_per_epoch=10, val_iterations_per_epoch=1, num_workers=0)
    api.run(raw, tmp_path, options(schedule))
    paths = dataset_paths(tmp_path, name)

    plans = load_plans(paths.plans)
    assert plans.case_task.imbalance == "balanced_sampling"
    for fold in read_json(paths.splits):  # stratified: every fold validates the minority class
        assert any(train[c][0] == 1 for c in fold["val"]), fold["val"]

    cv = read_json(paths.results / "cross_validation.json")
    metrics = cv["entries"][cv["best"]]["metrics"]
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.sum() == 60 and matrix[1].sum() == 6
    # always predicting the majority class scores a balanced accuracy of 0.5 (and 90% accuracy)
    assert metrics["balanced_accuracy"] > 0.7, metrics
    assert metrics["per_class"]["class_1"]["sensitivity"] > 0, matrix.tolist()
    assert matrix[1, 1] > 0

    predictions = tmp_path / "predictions"
    api.predict(RawPaths(raw).images("Ts"), predictions, raw, root=tmp_path)
    scores = api.evaluate(RawPaths(raw).targets("Ts"), predictions / "predictions.csv")
    assert (predictions / "summary.json").is_file()
    assert scores["num_cases"] == 20 and np.array(scores["confusion_matrix"])[1].sum() == 2
    assert scores["balanced_accuracy"] > 0.5, scores["confusion_matrix"]


def medmnist_like(path: Path, rng: np.random.Generator, counts: dict[str, int]) -> None:
    """28 x 28 uint8 images: class 1 shows a bright square on noise, class 0 noise alone."""
    arrays = {}
    for split, n in counts.items():
        labels = np.arange(n) % 2
        images = rng.integers(20, 60, (n, 28, 28)).astype(np.uint8)
        for i in np.flatnonzero(labels):
            y, x = rng.integers(4, 16, 2)
            images[i, y:y + 8, x:x + 8] = 230
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels.reshape(n, 1).astype(np.uint8)
    np.savez_compressed(path, **arrays)


def test_a_converted_medmnist_file_trains_and_predicts_every_held_out_case(tmp_path: Path):
    npz = tmp_path / "tinymnist.npz"
    medmnist_like(npz, np.random.default_rng(5), {"train": 20, "val": 6})
    raw = api.convert_medmnist(npz, tmp_path / "raw" / "Dataset976_TinyMNIST", holdout="val",
                               class_names=["empty", "square"])
    assert raw == (tmp_path / "raw" / "Dataset976_TinyMNIST").resolve()
    assert api.verify_dataset(raw, root=tmp_path, processes=1) == 20
    result = api.run(raw, tmp_path, options())
    assert result["configurations"] == ["2d"]

    output = tmp_path / "heldout"
    report = api.predict(RawPaths(raw).images("Ts"), output, raw, root=tmp_path)
    assert report.failed == {}
    rows = read_csv(output / "predictions.csv")
    assert rows[0] == ["case", "label", "prob_empty", "prob_square"]
    held_out = [f"val_{i:05d}" for i in range(6)]
    assert [r[0] for r in rows[1:]] == held_out
    scores = api.evaluate(RawPaths(raw).targets("Ts"), output / "predictions.csv", output / "test.json")
    assert scores["num_cases"] == 6 and (output / "test.json").is_file()


def test_evaluate_takes_a_multilabel_target_named_label(tmp_path: Path):
    labels = {"label": 0, "other": 1}
    reference = tmp_path / "labelsTs.csv"
    write_targets(reference, "multilabel", labels, {"a": [1, 0], "b": [0, 1], "c": [1, 1]})
    predictions = tmp_path / "predictions.csv"
    write_predictions(predictions, "multilabel", list(labels), ["a", "b", "c"],
                      np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.6]]))
    scores = api.evaluate(reference, predictions, tmp_path / "summary.json")
    assert scores["task"] == "multilabel" and scores["accuracy"] == 1.0
