"""Verification of case-level datasets (one label or number per case, in labelsTr.csv): every
problem in one error, dataset.json's labels checked per task, and no labelsTr/ folder needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autounet.errors import DatasetError, DatasetVerificationError
from autounet.example_data import make_case_dataset
from autounet.io.dataset_json import load_dataset_json
from autounet.io.verify import check_layout, load_targets, verify_dataset
from autounet.workspace import RawPaths


@pytest.fixture
def classification(tmp_path: Path) -> Path:
    return make_case_dataset(tmp_path / "Dataset961_Cases", task="classification", dims=2, cases=8, seed=0)


def _edit_json(dataset: Path, **changes) -> None:
    path = RawPaths(dataset).dataset_json
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def _verification_problems(dataset: Path) -> list[str]:
    with pytest.raises(DatasetVerificationError) as info:
        verify_dataset(dataset)
    return info.value.problems


@pytest.mark.parametrize("task,dims,names", [("classification", 2, ("class_0", "class_1")),
                                             ("classification", 3, ("class_0", "class_1")),
                                             ("multilabel", 2, ("bright", "dark")),
                                             ("regression", 2, ("radius",))])
def test_a_sound_case_level_dataset_passes_without_a_labels_folder(tmp_path: Path, task, dims, names):
    dataset = make_case_dataset(tmp_path / "Dataset962_Sound", task=task, dims=dims, cases=6, seed=1)
    raw = RawPaths(dataset)
    assert not raw.labels("Tr").exists() and raw.targets("Tr").is_file()
    spec, cases = verify_dataset(dataset)
    assert spec.case_level and spec.task == task and spec.target_names == names
    assert spec.foreground_labels == ()
    assert [c.case_id for c in cases] == [f"case_{i:03d}" for i in range(6)]
    assert all(c.label is None and len(c.images) == 1 for c in cases)
    targets, problems = load_targets(spec, cases)
    assert problems == [] and sorted(targets) == [c.case_id for c in cases]
    assert all(v.shape == ((1,) if task == "classification" else (len(names),)) for v in targets.values())


def test_every_problem_of_a_case_level_dataset_is_listed_in_one_error(classification: Path):
    raw = RawPaths(classification)
    lines = raw.targets("Tr").read_text().splitlines()
    lines = [line for line in lines if not line.startswith("case_002,")]               # a case without a row
    lines = [line if not line.startswith("case_005,") else "case_005,7" for line in lines]  # undeclared class
    lines.append("ghost_001,1")                                                        # a row without images
    raw.targets("Tr").write_text("\n".join(lines) + "\n")
    broken = raw.image_file("case_006", 0, ".png")
    broken.write_bytes(b"this is not a PNG file")                                      # an unreadable image
    problems = _verification_problems(classification)
    text = "\n".join(problems)
    assert len(problems) == 4, text
    assert any("labelsTr.csv" in p and "'case_002'" in p and "no row" in p for p in problems), text
    assert any("labelsTr.csv:" in p and "undeclared class value 7" in p for p in problems), text
    assert any("labelsTr.csv:" in p and "'ghost_001'" in p for p in problems), text
    assert any(str(broken) in p for p in problems), text


def test_a_missing_labels_csv_is_listed_with_the_unreadable_images(classification: Path):
    raw = RawPaths(classification)
    raw.targets("Tr").unlink()
    broken = raw.image_file("case_001", 0, ".png")
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    problems = _verification_problems(classification)
    text = "\n".join(problems)
    assert len(problems) == 2, text
    assert any(str(raw.targets("Tr")) in p and "missing" in p and "case,label" in p for p in problems), text
    assert any(str(broken) in p for p in problems), text


def test_check_layout_reports_the_targets_without_reading_sound_images(classification: Path):
    raw = RawPaths(classification)
    raw.targets("Tr").write_text("case,label\n" + "".join(f"case_{i:03d},1\n" for i in range(7)))
    with pytest.raises(DatasetVerificationError) as info:
        check_layout(classification)
    assert [p for p in info.value.problems if "case_007" in p and "no row" in p], info.value.problems


@pytest.mark.parametrize("task,labels", [
    ("classification", {"a": 1, "b": 2}),       # not starting at 0
    ("classification", {"a": 0, "b": 2}),       # a gap
    ("classification", {"a": 0, "b": 0}),       # a value used twice
    ("classification", {"a": 0, "b": [1]}),     # not one integer
    ("multilabel", {"bright": 0, "dark": 3}),
    ("regression", {"radius": 1}),
])
def test_case_level_labels_that_are_not_0_to_k_minus_1_are_refused(classification: Path, task, labels):
    _edit_json(classification, task=task, labels=labels)
    with pytest.raises(DatasetError) as info:
        load_dataset_json(classification)
    assert "dataset.json" in str(info.value) and "0.." in str(info.value), str(info.value)
    with pytest.raises(DatasetVerificationError):
        verify_dataset(classification)


def test_a_classification_dataset_with_one_class_is_refused(classification: Path):
    _edit_json(classification, labels={"only": 0})
    with pytest.raises(DatasetVerificationError) as info:
        verify_dataset(classification)
    assert any("at least 2 classes" in p for p in info.value.problems), info.value.problems


def test_numeric_class_names_that_are_not_their_values_are_refused(classification: Path):
    """With labels {"1": 0, "2": 1}, a labelsTr.csv row '1' was read as class "2"."""
    _edit_json(classification, labels={"1": 0, "2": 1})
    with pytest.raises(DatasetError) as info:
        load_dataset_json(classification)
    assert "dataset.json" in str(info.value) and "'1', '2' look like class values" in str(info.value)
    assert "would mean '2'" in str(info.value), str(info.value)
    _edit_json(classification, labels={"0": 0, "1": 1})  # each numeric name its own value: one reading
    assert load_dataset_json(classification).labels == {"0": 0, "1": 1}


def test_an_unknown_task_is_refused(classification: Path):
    _edit_json(classification, task="detection")
    with pytest.raises(DatasetVerificationError) as info:
        verify_dataset(classification)
    assert any("'task'" in p and "detection" in p for p in info.value.problems), info.value.problems


def test_a_regression_dataset_with_one_target_is_sound(tmp_path: Path):
    dataset = make_case_dataset(tmp_path / "Dataset963_Reg", task="regression", cases=5, seed=2)
    spec, cases = verify_dataset(dataset)
    assert spec.labels == {"radius": 0} and len(cases) == 5
