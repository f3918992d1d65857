"""The targets of a case-level dataset (classification, multi-label, regression): one CSV row per case.

The file (``RawPaths.targets``) is UTF-8 text, comma-separated, with a header row:

- classification: ``case,label``; ``label`` holds the class value (an integer of dataset.json's
  ``labels``; the class name is accepted too, where it is not a number: a number is always the
  class value, and dataset.json may not name a class with a number other than its value);
- multilabel: ``case,<target 0>,<target 1>,...`` in the order of the labels' column indices,
  each value 0 or 1;
- regression: ``case,<target 0>,...``, finite numbers.

dataset.json's ``labels`` maps class name -> class value 0..K-1 (classification) or target name
-> column index 0..K-1 (multilabel, regression). :func:`read_targets` reports every problem of a
file in one DatasetError, each naming the file and line (``path:line: problem``).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.errors import DatasetError
from autounet.io.atomic import write_text
from autounet.workspace import name_problem

TASKS = ("classification", "multilabel", "regression")
CASE_COLUMN = "case"
CLASS_COLUMN = "label"


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")


def target_names(task: str, labels: dict[str, int]) -> list[str]:
    """The label names in value (column) order; DatasetError unless the values are 0..K-1, each once."""
    _check_task(task)
    values = list(labels.values())
    if (not labels or any(isinstance(v, bool) or not isinstance(v, int) for v in values)
            or sorted(values) != list(range(len(values)))):
        what = "class name -> class value" if task == "classification" else "target name -> column index"
        raise DatasetError(f"dataset.json 'labels' of a {task} dataset must map {what}, with values 0..K-1 "
                           f"each used once; found {labels}")
    return sorted(labels, key=labels.__getitem__)


def header(task: str, labels: dict[str, int]) -> list[str]:
    """The header row a targets file of ``task`` must have."""
    names = target_names(task, labels)
    return [CASE_COLUMN, CLASS_COLUMN] if task == "classification" else [CASE_COLUMN, *names]


def _contents(task: str, labels: dict[str, int]) -> str:
    """What the file should hold, for messages."""
    example = {"classification": "the class value (or name) of each case",
               "multilabel": "0 or 1 per target", "regression": "one number per target"}[task]
    return f"a header row '{','.join(header(task, labels))}' and one row per case with {example}"


def _rows(path: Path, task: str, labels: dict[str, int]) -> list[tuple[int, list[str]]]:
    """(line number, stripped fields) of every row, header included, blank trailing lines dropped."""
    if not path.is_file():
        raise DatasetError(f"{path}: missing; a {task} dataset lists its targets there: "
                           f"{_contents(task, labels)}")
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not a UTF-8 text file ({e})") from e
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        rows = [(reader.line_num, [f.strip() for f in row]) for row in reader]
    except csv.Error as e:
        raise DatasetError(f"{path}:{reader.line_num}: malformed CSV ({e})") from e
    while rows and not any(rows[-1][1]):
        rows.pop()
    if not rows:
        raise DatasetError(f"{path}: empty; expected {_contents(task, labels)}")
    return rows


def _header_problems(path: Path, found: list[str], expected: list[str]) -> list[str]:
    if found == expected:
        return []
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    detail = "; ".join(part for part in (
        f"missing column(s) {missing}" if missing else "",
        f"unexpected column(s) {extra}" if extra else "",
        "" if missing or extra else "the columns are in another order (the labels' column indices)")
        if part)
    return [f"{path}:1: header must be '{','.join(expected)}', found '{','.join(found)}' ({detail})"]


def _class_value(field: str, labels: dict[str, int]) -> tuple[int | None, str | None]:
    """(class value, None) or (None, why not)."""
    declared = ", ".join(f"{v} ({n!r})" for n, v in sorted(labels.items(), key=lambda item: item[1]))
    if not field:
        return None, f"no class given; declared: {declared}"
    try:
        value = float(field)
    except ValueError:
        if field in labels:
            return labels[field], None
        return None, f"undeclared class {field!r}; declared: {declared}"
    if not math.isfinite(value) or value != int(value):
        return None, f"class {field!r} is not an integer class value; declared: {declared}"
    if int(value) not in labels.values():
        return None, f"undeclared class value {int(value)}; declared: {declared}"
    return int(value), None


def _numbers(fields: list[str], names: list[str], task: str) -> tuple[list[float], list[str]]:
    """The values of a multilabel/regression row and what is wrong with them."""
    values, problems = [], []
    for name, field in zip(names, fields):
        try:
            value = float(field)
        except ValueError:
            value = math.nan
            problems.append(f"column {name!r} holds {field!r}, not a number")
        else:
            if not math.isfinite(value):
                problems.append(f"column {name!r} holds {field!r}, not a finite number")
            elif task == "multilabel" and value not in (0.0, 1.0):
                problems.append(f"column {name!r} holds {field!r}; multilabel targets are 0 or 1")
        values.append(value)
    return values, problems


def _row_values(fields: list[str], task: str, labels: dict[str, int],
                names: list[str]) -> tuple[list[float], list[str]]:
    if task == "classification":
        value, problem = _class_value(fields[0], labels)
        return [float(value) if value is not None else math.nan], [problem] if problem else []
    return _numbers(fields, names, task)


def _case_problems(path: Path, seen: dict[str, int], case_ids: Sequence[str]) -> list[str]:
    """Cases without a row, and rows of cases the dataset does not have."""
    known = set(case_ids)
    problems = [f"{path}: case {c!r} has no row in {path.name}" for c in case_ids if c not in seen]
    problems += [f"{path}:{line}: case {c!r} is not one of the dataset's cases (no images)"
                 for c, line in seen.items() if c not in known]
    return problems


def read_targets(path: Path, task: str, labels: dict[str, int],
                 case_ids: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Read and check a targets file.

    Returns case id -> float64 array: shape (1,) holding the class value (classification), or
    (K,) in column order (multilabel, regression); sorted by case id. ``case_ids``: the dataset's
    cases; each needs a row, and no other case may have one. Raises DatasetError listing every
    problem, each with the file and line.
    """
    path = Path(path)
    expected = header(task, labels)
    names = expected[1:] if task != "classification" else [CLASS_COLUMN]
    rows = _rows(path, task, labels)
    problems = _header_problems(path, rows[0][1], expected)
    width = len(rows[0][1])
    out: dict[str, np.ndarray] = {}
    seen: dict[str, int] = {}
    for line, fields in rows[1:]:
        if len(fields) != width:
            what = "an empty line" if not any(fields) else f"{len(fields)} field(s)"
            problems.append(f"{path}:{line}: {what}; the header has {width} column(s)")
            continue
        case = fields[0]
        bad_name = name_problem(case, "case id")
        row_problems = [bad_name] if bad_name else []
        if case in seen:
            row_problems.append(f"case {case!r} already has a row on line {seen[case]}")
        seen.setdefault(case, line)
        if width == len(expected):  # values are read by position, even under a misnamed header
            values, value_problems = _row_values(fields[1:], task, labels, names)
            if not row_problems and not value_problems:
                out[case] = np.asarray(values, dtype=np.float64)
            row_problems += value_problems
        problems += [f"{path}:{line}: {p}" for p in row_problems]
    if len(rows) == 1:
        problems.append(f"{path}: no rows after the header; expected {_contents(task, labels)}")
    if case_ids is not None:
        problems += _case_problems(path, seen, case_ids)
    if problems:
        raise DatasetError("\n".join(problems))
    return dict(sorted(out.items()))


def _format_row(case: str, target: Sequence[float] | int | np.ndarray, task: str, labels: dict[str, int],
                k: int) -> tuple[list[str] | None, str | None]:
    """(CSV fields, None) or (None, why the target cannot be written)."""
    values = np.atleast_1d(np.asarray(target, dtype=np.float64))
    expected = 1 if task == "classification" else k
    if values.shape != (expected,):
        return None, f"case {case!r}: {expected} value(s) expected, got {np.shape(target)}"
    if not np.isfinite(values).all():
        return None, f"case {case!r}: non-finite target {values.tolist()}"
    if task == "classification":
        if values[0] != int(values[0]) or int(values[0]) not in labels.values():
            return None, f"case {case!r}: {values[0]} is not a declared class value ({sorted(labels.values())})"
        return [case, str(int(values[0]))], None
    if task == "multilabel":
        if not np.isin(values, (0.0, 1.0)).all():
            return None, f"case {case!r}: multilabel targets must be 0 or 1, got {values.tolist()}"
        return [case, *(str(int(v)) for v in values)], None
    return [case, *(repr(float(v)) for v in values)], None


def write_targets(path: Path, task: str, labels: dict[str, int],
                  targets: dict[str, Sequence[float] | int]) -> None:
    """Write a targets file atomically, rows sorted by case id. ValueError listing every target
    that cannot be written (wrong length, undeclared class, not 0/1, not finite, bad case id)."""
    row0 = header(task, labels)
    k = len(labels)
    rows, problems = [row0], []
    for case in sorted(targets):
        problem = name_problem(case, "case id")
        fields, why = _format_row(case, targets[case], task, labels, k) if problem is None else (None, problem)
        if why is not None:
            problems.append(why)
        else:
            rows.append(fields)
    if problems:
        raise ValueError(f"{path}: cannot write the targets:\n" + "\n".join(problems))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    write_text(Path(path), buffer.getvalue())


def class_counts(targets: dict[str, np.ndarray], task: str, num_classes: int) -> tuple[int, ...]:
    """Cases per class value (classification) or positive cases per target column (multilabel);
    ``()`` for regression."""
    _check_task(task)
    if task == "regression" or not targets:
        return () if task == "regression" else (0,) * num_classes
    values = np.stack([np.asarray(t, dtype=np.float64).reshape(-1) for t in targets.values()])
    if task == "multilabel":
        if values.shape[1] != num_classes:
            raise ValueError(f"multilabel targets have {values.shape[1]} column(s), expected {num_classes}")
        return tuple(int(n) for n in (values == 1).sum(axis=0))
    classes = values[:, 0].astype(np.int64)
    if values.shape[1] != 1 or classes.min() < 0 or classes.max() >= num_classes:
        raise ValueError(f"classification targets must be one class value in 0..{num_classes - 1} per case")
    return tuple(int(n) for n in np.bincount(classes, minlength=num_classes))
