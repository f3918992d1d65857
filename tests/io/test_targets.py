"""Targets files of case-level datasets: round trips per task, and every broken input named with
its file and line, all problems in one error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autounet.errors import DatasetError
from autounet.io.targets import TASKS, class_counts, read_targets, write_targets
from autounet.workspace import RawPaths

CLASSES = {"benign": 0, "malignant": 1, "unclear": 2}
TARGETS = {"age": 0, "volume, ml": 1}  # a comma inside a name is quoted


def _csv(tmp_path: Path, text: str | bytes) -> Path:
    path = RawPaths(tmp_path).targets("Tr")
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _problems(path: Path, task: str, labels: dict[str, int], **kw) -> list[str]:
    with pytest.raises(DatasetError) as e:
        read_targets(path, task, labels, **kw)
    return str(e.value).splitlines()


@pytest.mark.parametrize("task,labels,targets", [
    ("classification", CLASSES, {"c2": 2, "c0": [0], "c1": np.array([1.0])}),
    ("multilabel", {"effusion": 0, "mass": 1, "nodule": 2}, {"c1": [1, 0, 1], "c0": (0, 0, 0)}),
    ("regression", TARGETS, {"b": [0.1, -1e-05], "a": [63.0, 1234.5678901234567]}),
])
def test_round_trip(tmp_path: Path, task: str, labels: dict[str, int], targets: dict):
    path = RawPaths(tmp_path).targets("Ts")
    write_targets(path, task, labels, targets)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("case,") and [line.split(",")[0] for line in lines[1:]] == sorted(targets)
    back = read_targets(path, task, labels, case_ids=list(targets))
    assert list(back) == sorted(targets)
    for case, value in targets.items():
        assert back[case].dtype == np.float64 and back[case].shape == ((1,) if task == "classification" else (len(labels),))
        assert np.array_equal(back[case], np.atleast_1d(np.asarray(value, dtype=np.float64)))  # exact, floats too
    assert not list(tmp_path.glob(".*"))  # written atomically: no temporary left
    assert TASKS == ("classification", "multilabel", "regression")


def test_classification_file_as_written(tmp_path: Path):
    path = RawPaths(tmp_path).targets("Tr")
    write_targets(path, "classification", CLASSES, {"b": 2, "a": 0})
    assert path.read_text() == "case,label\na,0\nb,2\n"
    write_targets(path, "regression", TARGETS, {"a": [1.5, 2]})
    assert path.read_text() == 'case,age,"volume, ml"\na,1.5,2.0\n'


def test_class_names_bom_whitespace_and_blank_trailing_lines(tmp_path: Path):
    path = _csv(tmp_path, b"\xef\xbb\xbfcase,label\r\na, malignant\r\nb,2\r\nc,0.0\r\n\r\n  \n")
    assert {k: v.tolist() for k, v in read_targets(path, "classification", CLASSES).items()} == \
        {"a": [1.0], "b": [2.0], "c": [0.0]}


def test_missing_and_empty_files_say_what_they_should_hold(tmp_path: Path):
    path = RawPaths(tmp_path).targets("Tr")
    (message,) = _problems(path, "multilabel", {"x": 0, "y": 1})
    assert str(path) in message and "missing" in message and "case,x,y" in message and "0 or 1" in message
    (message,) = _problems(_csv(tmp_path, "\n\n"), "classification", CLASSES)
    assert str(path) in message and "empty" in message and "case,label" in message
    (message,) = _problems(_csv(tmp_path, "case,label\n"), "classification", CLASSES)
    assert "no rows after the header" in message
    (message,) = _problems(_csv(tmp_path, b"case,label\na,\xff\n"), "classification", CLASSES)
    assert "not a UTF-8 text file" in message


@pytest.mark.parametrize("header,detail", [
    ("case,age", "missing column(s) ['volume, ml']"),
    ('case,age,"volume, ml",weight', "unexpected column(s) ['weight']"),
    ("case,age,volume", "missing column(s) ['volume, ml']; unexpected column(s) ['volume']"),
    ('case,"volume, ml",age', "another order"),
    ('id,age,"volume, ml"', "missing column(s) ['case']; unexpected column(s) ['id']"),
])
def test_header_problems(tmp_path: Path, header: str, detail: str):
    path = _csv(tmp_path, f"{header}\n")
    first = _problems(path, "regression", TARGETS)[0]
    assert first.startswith(f"{path}:1: header must be 'case,age,volume, ml'") and detail in first


def test_every_classification_problem_at_once(tmp_path: Path):
    path = _csv(tmp_path, "case,label\na,1\nb,7\nc,1.5\nd,tumour\na,2\n../e,0\nf,1,2\n\ng,\nh,nan\n")
    problems = _problems(path, "classification", CLASSES)
    declared = "declared: 0 ('benign'), 1 ('malignant'), 2 ('unclear')"
    assert problems == [
        f"{path}:3: undeclared class value 7; {declared}",
        f"{path}:4: class '1.5' is not an integer class value; {declared}",
        f"{path}:5: undeclared class 'tumour'; {declared}",
        f"{path}:6: case 'a' already has a row on line 2",
        f"{path}:7: case id '../e' cannot be used in a file name "
        "(allowed: letters, digits, '_', '-', '+' and '.', not starting with '.', at most 200 characters)",
        f"{path}:8: 3 field(s); the header has 2 column(s)",
        f"{path}:9: an empty line; the header has 2 column(s)",
        f"{path}:10: no class given; {declared}",
        f"{path}:11: class 'nan' is not an integer class value; {declared}",
    ]


def test_multilabel_and_regression_value_problems(tmp_path: Path):
    path = _csv(tmp_path, "case,x,y\na,1,0\nb,2,0.5\nc,yes,1\n")
    assert _problems(path, "multilabel", {"x": 0, "y": 1}) == [
        f"{path}:3: column 'x' holds '2'; multilabel targets are 0 or 1",
        f"{path}:3: column 'y' holds '0.5'; multilabel targets are 0 or 1",
        f"{path}:4: column 'x' holds 'yes', not a number",
    ]
    path = _csv(tmp_path, "case,x,y\na,1e3,-2\nb,inf,\nc,NaN,1\n")
    assert _problems(path, "regression", {"x": 0, "y": 1}) == [
        f"{path}:3: column 'x' holds 'inf', not a finite number",
        f"{path}:3: column 'y' holds '', not a number",
        f"{path}:4: column 'x' holds 'NaN', not a finite number",
    ]


def test_header_and_row_problems_together(tmp_path: Path):
    path = _csv(tmp_path, "case,lable\na,5\nb,0,0\n")
    problems = _problems(path, "classification", CLASSES)
    assert len(problems) == 3 and problems[0].startswith(f"{path}:1: header")
    assert problems[1].startswith(f"{path}:2: undeclared class value 5") and problems[2].startswith(f"{path}:3: 3 field")


def test_case_ids_missing_rows_and_unknown_cases(tmp_path: Path):
    path = _csv(tmp_path, "case,label\na,0\nzz,1\nb,1\n")
    assert read_targets(path, "classification", CLASSES, case_ids=["a", "b", "zz"])["zz"].tolist() == [1.0]
    assert _problems(path, "classification", CLASSES, case_ids=["a", "b", "c", "d"]) == [
        f"{path}: case 'c' has no row in {path.name}",
        f"{path}: case 'd' has no row in {path.name}",
        f"{path}:3: case 'zz' is not one of the dataset's cases (no images)",
    ]


def test_labels_must_be_contiguous(tmp_path: Path):
    path = _csv(tmp_path, "case,label\na,0\n")
    for labels in ({}, {"a": 0, "b": 2}, {"a": 1}, {"a": 0, "b": True}):
        with pytest.raises(DatasetError, match="values 0..K-1"):
            read_targets(path, "classification", labels)
    with pytest.raises(ValueError, match="task must be one of"):
        read_targets(path, "segmentation", CLASSES)


def test_write_refuses_targets_it_could_not_read_back(tmp_path: Path):
    path = RawPaths(tmp_path).targets("Tr")
    with pytest.raises(ValueError) as e:
        write_targets(path, "classification", CLASSES, {"a": 3, "b": 1.5, ".c": 0, "d": [0, 1]})
    message = str(e.value)
    assert "'a': 3.0 is not a declared class" in message and "'b': 1.5" in message
    assert "case id '.c'" in message and "'d': 1 value(s) expected" in message
    with pytest.raises(ValueError, match="0 or 1"):
        write_targets(path, "multilabel", {"x": 0, "y": 1}, {"a": [1, 2]})
    with pytest.raises(ValueError, match="non-finite"):
        write_targets(path, "regression", TARGETS, {"a": [1.0, np.nan]})
    assert not path.exists()


def test_class_counts():
    targets = {c: np.array([v], float) for c, v in {"a": 0, "b": 2, "c": 2}.items()}
    assert class_counts(targets, "classification", 4) == (1, 0, 2, 0)
    multi = {"a": np.array([1.0, 0, 1]), "b": np.array([1.0, 0, 0])}
    assert class_counts(multi, "multilabel", 3) == (2, 0, 1)
    assert class_counts(multi, "regression", 3) == ()
    assert class_counts({}, "classification", 2) == (0, 0)
    with pytest.raises(ValueError):
        class_counts(targets, "classification", 2)
