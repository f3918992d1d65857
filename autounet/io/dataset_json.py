"""dataset.json: the description of a raw dataset, in nnU-Net v2's format."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autounet.errors import DatasetError
from autounet.io.image_io import SUPPORTED_ENDINGS, reader_for
from autounet.workspace import RawPaths, name_problem

IGNORE_LABEL_NAME = "ignore"
SEGMENTATION = "segmentation"
INSTANCE = "instance"  # label maps of object ids (0 background, 1..N one object each)
CASE_TASKS = ("classification", "multilabel", "regression")  # one label or number per case, from a CSV


@dataclass(frozen=True)
class CaseFiles:
    """The files of one training case: channel images in channel order and the label map."""

    case_id: str
    images: tuple[Path, ...]
    label: Path | None

    @property
    def files(self) -> tuple[Path, ...]:
        return self.images + ((self.label,) if self.label is not None else ())

    def signature(self) -> str:
        """The name, size and modification time of every file: what tells an edited case apart."""
        stats = [(p.name, p.stat()) for p in self.files]
        return "\n".join(f"{name}\0{st.st_size}\0{st.st_mtime_ns}" for name, st in stats)


@dataclass(frozen=True)
class DatasetSpec:
    """What dataset.json declares.

    labels : name -> value, or name -> tuple of values for region-based training; for a
        case-level task, class name -> class value 0..K-1 ("classification") or target name ->
        column 0..K-1 ("multilabel", "regression").
    cases : the explicit "dataset" entries when dataset.json lists its cases, else None.
    task : "segmentation" (label maps in labelsTr/), "instance" (maps of object ids in labelsTr/,
        one object class: ``labels`` is {"background": 0, NAME: 1}), or one of ``CASE_TASKS`` (a
        row of targets per case in labelsTr.csv).
    """

    path: Path
    name: str
    channel_names: tuple[str, ...]
    labels: dict[str, int | tuple[int, ...]]
    num_training: int
    file_ending: str
    reader: str
    regions_class_order: tuple[int, ...] | None = None
    cases: tuple[CaseFiles, ...] | None = None
    task: str = SEGMENTATION

    @property
    def case_level(self) -> bool:
        """A label or number per case (classification, multi-label, regression), not per voxel."""
        return self.task in CASE_TASKS

    @property
    def instances(self) -> bool:
        """Label maps hold object ids (any non-negative integers), not class values."""
        return self.task == INSTANCE

    @property
    def target_names(self) -> tuple[str, ...]:
        """A case-level task's class or target names, in value order."""
        return tuple(sorted(self.labels, key=lambda k: self.labels[k]))  # type: ignore[arg-type, return-value]

    @property
    def has_regions(self) -> bool:
        return any(isinstance(v, tuple) for v in self.labels.values())

    @property
    def ignore_label(self) -> int | None:
        v = self.labels.get(IGNORE_LABEL_NAME)
        return v if isinstance(v, int) else None

    @property
    def allowed_label_values(self) -> frozenset[int]:
        """Every value a label map may hold (background, classes, region members, ignore)."""
        values: set[int] = {0}
        for v in self.labels.values():
            values.update(v if isinstance(v, tuple) else (v,))
        return frozenset(values)

    @property
    def foreground_labels(self) -> tuple[int, ...]:
        """Sorted label values that are neither background nor the ignore label (none for a
        case-level task)."""
        if self.case_level:
            return ()
        return tuple(sorted(self.allowed_label_values - {0} - ({self.ignore_label} - {None})))


def _no_duplicate_keys(path: Path):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for k, v in pairs:
            if k in seen:
                raise DatasetError(f"{path}: duplicate key '{k}' (duplicate case id or entry)")
            seen[k] = v
        return seen

    return hook


def _parse_task(raw: dict[str, Any], path: Path, problems: list[str]) -> str:
    task = raw.get("task", SEGMENTATION)
    if task not in (SEGMENTATION, INSTANCE) + CASE_TASKS:
        problems.append(f"{path}: 'task' must be one of {', '.join((SEGMENTATION, INSTANCE) + CASE_TASKS)}, "
                        f"found {task!r}")
        return SEGMENTATION
    return task


def _instance_label_problems(labels: dict[str, Any], path: Path) -> list[str]:
    """An instance dataset names its one object class: {"background": 0, NAME: 1}."""
    if labels.get("background") != 0 or len(labels) != 2 or sorted(labels.values()) != [0, 1]:
        return [f"{path}: for task 'instance', 'labels' must be {{\"background\": 0, \"<object name>\": 1}} "
                f"(one object class; each object's id is its own value in its label map), found {labels!r}"]
    return []


def _case_level_label_problems(labels: dict[str, Any], task: str, path: Path) -> list[str]:
    """A case-level task's labels: one integer per class or target, 0..K-1 without gaps."""
    values = sorted(v for v in labels.values() if isinstance(v, int) and not isinstance(v, bool))
    if len(values) != len(labels) or values != list(range(len(labels))):
        what = "class values" if task == "classification" else "target columns"
        return [f"{path}: for task '{task}', 'labels' maps each name to one of the {what} 0..{len(labels) - 1} "
                f"(each once), found {labels}"]
    if task == "classification" and len(labels) < 2:
        return [f"{path}: classification needs at least 2 classes in 'labels', found {labels}"]
    misleading = [n for n, v in labels.items() if _number(n) is not None and _number(n) != v]
    if task == "classification" and misleading:  # labelsTr.csv's "1" is class value 1, never the class named "1"
        return [f"{path}: class name(s) {', '.join(repr(n) for n in misleading)} look like class values they are not "
                f"({labels}): in the targets table a number is always a class value, so a row '1' would mean "
                f"{next((n for n, v in labels.items() if v == _number(misleading[0])), 'no class')!r}. Rename "
                "the classes (e.g. 'grade_1') or give each numeric name its own value"]
    return []


def _number(name: str) -> float | None:
    try:
        return float(name)
    except ValueError:
        return None


def _parse_labels(raw: Any, path: Path, problems: list[str]) -> dict[str, int | tuple[int, ...]]:
    labels: dict[str, int | tuple[int, ...]] = {}
    if not isinstance(raw, dict) or not raw:
        problems.append(f"{path}: 'labels' must be a non-empty object of name -> integer value")
        return labels
    for name, value in raw.items():
        if isinstance(value, bool) or not isinstance(value, (int, list, tuple)):
            problems.append(f"{path}: label '{name}' has value {value!r}; expected an integer or a list of integers")
        elif isinstance(value, int):
            labels[name] = value
        elif all(isinstance(x, int) and not isinstance(x, bool) for x in value) and value:
            labels[name] = tuple(value) if len(value) > 1 else value[0]
        else:
            problems.append(f"{path}: label '{name}' has value {value!r}; expected a list of integers")
    ints = [v for v in labels.values() if isinstance(v, int)]
    if labels and labels.get("background") != 0 and 0 not in ints:
        problems.append(f"{path}: 'labels' must map 'background' to 0")
    if len(set(ints)) != len(ints):
        problems.append(f"{path}: two labels share one value in {raw}")
    if any(v < 0 for v in ints):
        problems.append(f"{path}: label values must be >= 0 in {raw}")
    ignore = labels.get(IGNORE_LABEL_NAME)
    if isinstance(ignore, int) and ignore != max(ints):
        problems.append(f"{path}: the 'ignore' label must have the highest value (it is {ignore})")
    return labels


def _parse_cases(raw: Any, root: Path, path: Path, problems: list[str]) -> tuple[CaseFiles, ...] | None:
    """The optional explicit case list: nnU-Net's {id: {images, label}} or a list of entries."""
    if raw is None:
        return None
    entries: list[tuple[str, Any]]
    if isinstance(raw, dict):
        entries = list(raw.items())
    elif isinstance(raw, list):
        entries = [(str(e.get("case", e.get("id", ""))) if isinstance(e, dict) else "", e) for e in raw]
    else:
        problems.append(f"{path}: 'dataset' must be an object of case id -> {{images, label}}")
        return None
    cases, seen = [], set()
    for case_id, entry in entries:
        if (not isinstance(entry, dict) or not isinstance(entry.get("images"), list) or not case_id
                or not all(isinstance(p, str) for p in entry["images"])
                or not isinstance(entry.get("label"), (str, type(None)))):
            problems.append(f"{path}: 'dataset' entry {case_id!r} needs a case id, 'images' (a list of file paths) "
                            "and 'label' (a file path)")
            continue
        if case_id in seen:
            problems.append(f"{path}: duplicate case id '{case_id}' in 'dataset'")
            continue
        if name_problem(case_id, "case id") is not None:
            problems.append(f"{path}: 'dataset' entry: {name_problem(case_id, 'case id')}")
            continue
        seen.add(case_id)
        label = entry.get("label")
        cases.append(CaseFiles(case_id, tuple(root / p for p in entry["images"]), None if label is None else root / label))
    return tuple(cases)


def _read(path: Path) -> dict[str, Any]:
    return read_json_object(path, "every raw dataset folder needs one")


def read_json_object(path: Path, why_needed: str) -> dict[str, Any]:
    """A dataset.json's top-level object; DatasetError naming the file when it is missing (``why_needed``
    says why it should be there), malformed, not text, or not an object."""
    if not path.is_file():
        raise DatasetError(f"{path}: dataset.json is missing ({why_needed})")
    try:
        raw = json.loads(path.read_text(), object_pairs_hook=_no_duplicate_keys(path))
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: malformed JSON ({e})") from e
    except UnicodeDecodeError as e:
        raise DatasetError(f"{path}: not a text file ({e})") from e
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: the top level must be a JSON object")
    return raw


def _parse_channels(raw: dict[str, Any], path: Path, problems: list[str]) -> tuple[str, ...]:
    channels = raw.get("channel_names", {})
    if not isinstance(channels, dict) or not channels:
        if "channel_names" in raw:
            problems.append(f"{path}: 'channel_names' must be a non-empty object like {{\"0\": \"CT\"}}")
        return ()
    try:
        order = sorted(channels, key=int)
    except ValueError:
        problems.append(f"{path}: 'channel_names' keys must be channel indices \"0\", \"1\", ...")
        return ()
    if [int(k) for k in order] != list(range(len(order))):
        problems.append(f"{path}: 'channel_names' keys must be 0..{len(order) - 1}, found {order}")
    return tuple(str(channels[k]) for k in order)


def _parse_ending(raw: dict[str, Any], path: Path, problems: list[str]) -> tuple[str, str]:
    """(file ending, reader kind)."""
    ending, reader = raw.get("file_ending", ""), ""
    if "file_ending" in raw:
        if not isinstance(ending, str) or not ending.startswith("."):
            problems.append(f"{path}: 'file_ending' must look like \".nii.gz\", found {ending!r}")
        else:
            try:
                reader = reader_for(ending, raw.get("overwrite_image_reader_writer"))
            except ValueError as e:
                problems.append(f"{path}: {e}")
    if not problems and ending.lower() not in SUPPORTED_ENDINGS:
        problems.append(f"{path}: file ending {ending} is not supported")
    return ending, reader


def _parse_regions_order(raw: dict[str, Any], labels: dict[str, Any], path: Path,
                         problems: list[str]) -> tuple[int, ...] | None:
    if not any(isinstance(v, tuple) for v in labels.values()):
        return None
    order = raw.get("regions_class_order")
    n_regions = len(labels) - 1 - (IGNORE_LABEL_NAME in labels)
    if (not isinstance(order, list) or len(order) != n_regions
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in order)):
        problems.append(f"{path}: region labels need 'regions_class_order', one integer per region "
                        f"({n_regions} expected)")
        return None
    return tuple(int(x) for x in order)


def load_dataset_json(dataset_dir: Path) -> DatasetSpec:
    """Read and check ``dataset_dir/dataset.json``; every problem is reported in one DatasetError."""
    dataset_dir = Path(dataset_dir)
    path = RawPaths(dataset_dir).dataset_json
    raw = _read(path)
    problems: list[str] = []
    missing = [k for k in ("channel_names", "labels", "numTraining", "file_ending") if k not in raw]
    if "channel_names" not in raw and "modality" in raw:
        raw["channel_names"] = raw["modality"]  # nnU-Net v1 name
        missing.remove("channel_names")
    if missing:
        problems.append(f"{path}: missing required key(s) {', '.join(missing)}")
    channel_names = _parse_channels(raw, path, problems)
    task = _parse_task(raw, path, problems)
    if task in (SEGMENTATION, INSTANCE):
        labels = _parse_labels(raw.get("labels"), path, problems) if "labels" in raw else {}
        problems += _instance_label_problems(labels, path) if task == INSTANCE and "labels" in raw else []
    else:
        labels = raw.get("labels") if isinstance(raw.get("labels"), dict) else {}
        problems += _case_level_label_problems(labels, task, path) if "labels" in raw else []
    num_training = raw.get("numTraining", 0)
    if "numTraining" in raw and (isinstance(num_training, bool) or not isinstance(num_training, int)
                                 or num_training < 1):
        problems.append(f"{path}: 'numTraining' must be a positive integer, found {num_training!r}")
    ending, reader = _parse_ending(raw, path, problems)
    regions_class_order = _parse_regions_order(raw, labels, path, problems) if task == SEGMENTATION else None
    cases = _parse_cases(raw.get("dataset"), dataset_dir, path, problems)
    if problems:
        raise DatasetError("\n".join(problems))
    return DatasetSpec(path=dataset_dir, name=str(raw.get("name", dataset_dir.name)), channel_names=channel_names,
                       labels=labels, num_training=int(num_training), file_ending=ending, reader=reader,
                       regions_class_order=regions_class_order, cases=cases, task=task)


def write_dataset_json(dataset_dir: Path, channel_names: list[str], labels: dict[str, int],
                       num_training: int, file_ending: str, name: str, **extra: Any) -> None:
    """Write a dataset.json in nnU-Net v2's format."""
    from autounet.io.atomic import write_json

    write_json(RawPaths(Path(dataset_dir)).dataset_json, {
        "name": name,
        "channel_names": {str(i): n for i, n in enumerate(channel_names)},
        "labels": labels,
        "numTraining": num_training,
        "file_ending": file_ending,
        **extra,
    })
