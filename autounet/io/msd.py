"""Convert a Medical Segmentation Decathlon task folder, as distributed, into the raw layout.

An MSD task (``TaskXX_Name/``) holds an nnU-Net v1 dataset.json (``modality``, ``labels`` as
value -> name, ``training`` and ``test`` file lists) and one image file per case that holds every
modality: a 3D file for one modality, a 4D file for several (the 4th ITK axis is the modality).
:func:`convert_msd` writes ``DatasetNNN_Name/`` in nnU-Net v2's layout: one 3D file per channel
with the spatial geometry kept, the label maps as integers, and a v2 dataset.json.

The dataset is written into a hidden sibling folder and renamed into place when complete, so an
interrupted conversion leaves nothing under the final name. Only the files dataset.json lists
are read; MSD tars also ship macOS junk (``._BRATS_001.nii.gz``), which is never touched, and a
listed name starting with "." is skipped.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from autounet.errors import DatasetError, WorkspaceError
from autounet.io.atomic import atomic_folder, check_writable
from autounet.io.dataset_json import read_json_object, write_dataset_json
from autounet.io.image_io import ImageReadError, check_nifti_data, file_ending
from autounet.parallel import map_parallel
from autounet.workspace import RawPaths, checked_name, name_problem

log = logging.getLogger("autounet")

ENDING = ".nii.gz"
TASK_NAME = re.compile(r"Task(\d+)_(.+)")
CARRIED_KEYS = ("description", "reference", "licence", "release")  # copied from the MSD dataset.json as they are
INTEGER_PIXELS = frozenset({sitk.sitkUInt8, sitk.sitkInt8, sitk.sitkUInt16, sitk.sitkInt16,
                            sitk.sitkUInt32, sitk.sitkInt32, sitk.sitkUInt64, sitk.sitkInt64})


@dataclass(frozen=True)
class MsdCase:
    """One listed case: its id (the image file's stem), its image file and, for training, its label."""

    case_id: str
    image: Path
    label: Path | None


@dataclass(frozen=True)
class MsdTask:
    """What an MSD dataset.json declares, with the case files resolved against the task folder."""

    name: str
    channel_names: tuple[str, ...]
    labels: dict[str, int]
    training: tuple[MsdCase, ...]
    test: tuple[MsdCase, ...]
    extra: dict[str, Any]


@dataclass(frozen=True)
class _Job:
    """One case to convert into the (temporary) dataset folder ``out``; picklable for workers."""

    case: MsdCase
    out: Path
    split: str
    channels: int


def _task_name(folder: Path) -> tuple[int, str]:
    """(task number, name) of a ``TaskXX_Name`` folder."""
    m = TASK_NAME.fullmatch(folder.name)
    if m is None:
        raise DatasetError(f"{folder}: not a Medical Segmentation Decathlon task folder name; "
                           "expected TaskNN_Name (e.g. Task04_Hippocampus)")
    return int(m.group(1)), checked_name(m.group(2), "task name")


def _parse_modalities(raw: dict[str, Any], path: Path, problems: list[str]) -> tuple[str, ...]:
    modality = raw.get("modality")
    if not isinstance(modality, dict) or not modality:
        problems.append(f"{path}: 'modality' must be a non-empty object like {{\"0\": \"CT\"}}")
        return ()
    keys = [str(i) for i in range(len(modality))]
    if set(modality) != set(keys) or not all(isinstance(modality[k], str) and modality[k] for k in keys):
        problems.append(f"{path}: 'modality' must map \"0\"..\"{len(keys) - 1}\" to names, found {modality}")
        return ()
    return tuple(modality[k] for k in keys)


def _parse_labels(raw: dict[str, Any], path: Path, problems: list[str]) -> dict[str, int]:
    """MSD's value -> name, inverted to v2's name -> value."""
    labels = raw.get("labels")
    if not isinstance(labels, dict) or not labels:
        problems.append(f"{path}: 'labels' must be a non-empty object like {{\"0\": \"background\"}}")
        return {}
    out: dict[str, int] = {}
    for value, name in labels.items():
        if not re.fullmatch(r"\d+", value) or not isinstance(name, str) or not name:
            problems.append(f"{path}: label {value!r}: {name!r} must map an integer value to a name")
        elif name in out:
            problems.append(f"{path}: label name {name!r} is given to both {out[name]} and {value}")
        else:
            out[name] = int(value)
    return dict(sorted(out.items(), key=lambda item: item[1]))


def _case(folder: Path, image: str, label: str | None) -> MsdCase:
    name = Path(image).name
    return MsdCase(name[: len(name) - len(file_ending(Path(name)))], folder / image,
                   None if label is None else folder / label)


def _parse_cases(raw: dict[str, Any], folder: Path, path: Path,
                 problems: list[str]) -> tuple[list[MsdCase], list[MsdCase]]:
    """The 'training' ({image, label} entries) and 'test' (image paths) lists, junk names skipped."""
    training, test = raw.get("training"), raw.get("test", [])
    if not isinstance(training, list) or not training:
        problems.append(f"{path}: 'training' must be a non-empty list of {{\"image\": ..., \"label\": ...}} entries")
        training = []
    if not isinstance(test, list):
        problems.append(f"{path}: 'test' must be a list of image paths")
        test = []
    tr, ts = [], []
    for entry in training:
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str) \
                or not isinstance(entry.get("label"), str):
            problems.append(f"{path}: 'training' entry {entry!r} needs 'image' and 'label' file paths")
            continue
        tr.append(_case(folder, entry["image"], entry["label"]))
    for entry in test:
        image = entry.get("image") if isinstance(entry, dict) else entry
        if not isinstance(image, str):
            problems.append(f"{path}: 'test' entry {entry!r} must be an image file path")
            continue
        ts.append(_case(folder, image, None))
    junk = [c.image for c in tr + ts if c.image.name.startswith(".")]
    if junk:
        log.warning("%s: skipping %d listed hidden file(s) such as %s", path, len(junk), junk[0].name)
    return [c for c in tr if c.image not in junk], [c for c in ts if c.image not in junk]


def _case_problems(cases: list[MsdCase], split: str, path: Path) -> list[str]:
    """Unusable case ids, duplicates and every missing listed file."""
    problems: list[str] = []
    seen: set[str] = set()
    for c in cases:
        problem = name_problem(c.case_id, "case id")
        if problem is not None:
            problems.append(f"{c.image}: {problem}")
        elif c.case_id in seen:
            problems.append(f"{path}: case {c.case_id!r} is listed twice in '{split}'")
        seen.add(c.case_id)
        for p in (c.image, c.label):
            if p is not None and not p.is_file():
                problems.append(f"{p}: listed in '{split}' of {path} but missing")
    return problems


def load_msd_task(folder: Path) -> MsdTask:
    """Read and check an MSD task folder's dataset.json and that every listed file exists, without
    reading any image. Raises DatasetError listing every problem at once."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder (expected an MSD task folder such as Task04_Hippocampus)")
    path = RawPaths(folder).dataset_json
    raw = read_json_object(path, "an MSD task folder ships one")
    problems: list[str] = []
    channel_names = _parse_modalities(raw, path, problems)
    labels = _parse_labels(raw, path, problems)
    training, test = _parse_cases(raw, folder, path, problems)
    problems += _case_problems(training, "training", path) + _case_problems(test, "test", path)
    if problems:
        raise DatasetError("\n".join(problems))
    if raw.get("numTraining") not in (None, len(training)):
        log.warning("%s: numTraining is %s but 'training' lists %d case(s); converting the listed ones",
                    path, raw["numTraining"], len(training))
    name = raw.get("name") if isinstance(raw.get("name"), str) else _task_name(folder)[1]
    return MsdTask(name=name, channel_names=channel_names, labels=labels, training=tuple(training),
                   test=tuple(test), extra={k: raw[k] for k in CARRIED_KEYS if k in raw})


def _read(path: Path) -> sitk.Image:
    """One scalar image, read with SimpleITK; DatasetError naming the file when it cannot be."""
    try:
        img = sitk.ReadImage(str(path))
        check_nifti_data(path, img, np.empty(0))  # ITK silently fills a truncated file with zeros
    except RuntimeError as e:
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
        raise DatasetError(f"{path}: unreadable image ({reason})") from e
    except ImageReadError as e:
        raise DatasetError(str(e)) from e
    if img.GetNumberOfComponentsPerPixel() > 1:
        raise DatasetError(f"{path}: vector image with {img.GetNumberOfComponentsPerPixel()} components per "
                           "voxel; an MSD image keeps its modalities on the 4th axis")
    return img


def split_channels(img: sitk.Image, path: Path, channels: int) -> list[sitk.Image]:
    """The 3D image of each modality of ``img`` (read from ``path``), in modality order.

    A 3D image is one modality. A 4D image holds one per index of its 4th axis; each keeps the
    first three spacing and origin entries and the upper-left 3x3 block of the 4x4 direction.
    """
    dim, size = img.GetDimension(), img.GetSize()
    if dim == 3 and channels == 1:
        return [img]
    if dim == 3:
        raise DatasetError(f"{path}: 3D image of size {size} holds one modality, but dataset.json declares "
                           f"{channels} ('modality')")
    if dim != 4:
        raise DatasetError(f"{path}: {dim}D image; an MSD image is 3D (one modality) or 4D (one modality "
                           "per index of the 4th axis)")
    if size[3] != channels:
        raise DatasetError(f"{path}: its 4th dimension holds {size[3]} modalities (size {size}), but dataset.json "
                           f"declares {channels} ('modality')")
    direction = np.reshape(img.GetDirection(), (4, 4))[:3, :3].ravel().tolist()
    out = []
    for c in range(channels):
        channel = sitk.Extract(img, [*size[:3], 0], [0, 0, 0, c],
                               sitk.ExtractImageFilter.DIRECTIONCOLLAPSETOIDENTITY)
        channel.SetSpacing(img.GetSpacing()[:3])
        channel.SetOrigin(img.GetOrigin()[:3])
        try:
            channel.SetDirection(direction)
        except RuntimeError as e:
            raise DatasetError(f"{path}: its spatial direction {direction} is not invertible") from e
        out.append(channel)
    return out


def integer_label(label: sitk.Image, path: Path, image: sitk.Image) -> sitk.Image:
    """``label`` as an integer image (its geometry kept); it must match ``image``'s size."""
    if label.GetDimension() != 3 or label.GetSize() != image.GetSize():
        raise DatasetError(f"{path}: label map of size {label.GetSize()} does not match its image's "
                           f"spatial size {image.GetSize()}")
    if label.GetPixelID() in INTEGER_PIXELS:
        return label
    values = sitk.GetArrayViewFromImage(label)
    if not np.array_equal(values, np.rint(values)):  # NaN fails too
        raise DatasetError(f"{path}: label map holds non-integer values ({label.GetPixelIDTypeAsString()})")
    small = values.size == 0 or (values.min() >= 0 and values.max() < 256)
    return sitk.Cast(label, sitk.sitkUInt8 if small else sitk.sitkInt32)


def _convert_case(job: _Job) -> list[str]:
    """Write one case's channel files (and label map); returns its problems, [] when none."""
    raw, case = RawPaths(job.out), job.case
    try:
        channels = split_channels(_read(case.image), case.image, job.channels)
        label = None if case.label is None else integer_label(_read(case.label), case.label, channels[0])
    except DatasetError as e:
        return [str(e)]
    for c, img in enumerate(channels):
        sitk.WriteImage(img, str(raw.image_file(case.case_id, c, ENDING, job.split)), useCompression=True)
    if label is not None:
        sitk.WriteImage(label, str(raw.label_file(case.case_id, ENDING, job.split)), useCompression=True)
    return []


def _write_dataset(out: Path, task: MsdTask, processes: int) -> None:
    """Every case and the v2 dataset.json into the empty folder ``out``; DatasetError listing
    every case that could not be converted."""
    raw = RawPaths(out)
    for folder in (raw.images("Tr"), raw.labels("Tr"), raw.images("Ts")):
        folder.mkdir()
    n = len(task.channel_names)
    jobs = [_Job(c, out, "Tr", n) for c in task.training] + [_Job(c, out, "Ts", n) for c in task.test]
    problems = [p for found in map_parallel(_convert_case, jobs, processes, desc="convert MSD") for p in found]
    if problems:
        raise DatasetError(f"{len(problems)} case(s) could not be converted; nothing was written:\n"
                           + "\n".join(problems))
    write_dataset_json(out, list(task.channel_names), task.labels, len(task.training), ENDING, task.name,
                       **task.extra)


def _targets(raw_root: Path, dataset_id: int, name: str, overwrite: bool) -> tuple[Path, list[Path]]:
    """The dataset folder to write, and the existing folder it replaces (itself, only with
    ``overwrite``). Another folder with the same id is never touched: it may be another
    dataset, someone else's; the conversion is refused and says so."""
    target = raw_root / checked_name(f"Dataset{dataset_id:03d}_{name}", "dataset name")
    same_id = sorted(raw_root.glob(f"Dataset{dataset_id:03d}_*")) if raw_root.is_dir() else []
    others = [p for p in same_id if p != target]
    if target.exists() and not target.is_dir():
        raise WorkspaceError(f"{target}: exists and is not a folder; move it away first")
    if others:
        raise WorkspaceError(f"{raw_root}: {', '.join(p.name for p in others)} already use(s) dataset id "
                             f"{dataset_id}; choose another dataset id (--dataset-id), or move that folder away "
                             f"yourself (--overwrite replaces only {target.name})")
    if target.exists() and not overwrite:
        raise WorkspaceError(f"{target}: exists; pass overwrite (--overwrite) to replace it as a whole")
    return target, [target] if target.exists() else []


def _move_aside(path: Path) -> Path:
    """Rename ``path`` to a hidden temporary name beside it (removed once the new dataset is in place)."""
    aside = path.with_name(f".{path.name}.{secrets.token_hex(4)}.old.tmp")
    os.replace(path, aside)
    return aside


def convert_msd(task_folder: Path, raw_root: Path, dataset_id: int | None = None, overwrite: bool = False,
                processes: int = 1) -> Path:
    """Convert an MSD task folder (e.g. ``Task04_Hippocampus``) into ``raw_root/DatasetNNN_Name``.

    dataset_id : NNN; default the task number. overwrite : replace an existing folder of that
    name (as a whole, once the new one is complete); a folder of another name with the same id
    is never replaced. processes : worker processes over
    cases. Returns the dataset folder. Raises DatasetError naming every file that is missing or
    cannot be converted, WorkspaceError for names that cannot be used or an existing target.
    """
    folder = Path(task_folder).resolve()
    number, name = _task_name(folder)
    if dataset_id is None:
        dataset_id = number
    elif isinstance(dataset_id, bool) or not isinstance(dataset_id, int) or dataset_id < 0:
        raise ValueError(f"dataset_id must be a non-negative integer, got {dataset_id!r}")
    task = load_msd_task(folder)
    raw_root = Path(raw_root).resolve()
    target, replaced = _targets(raw_root, dataset_id, name, overwrite)
    check_writable(raw_root)
    for path in replaced:
        log.warning("--overwrite: %s will be replaced as a whole once the new dataset is complete", path)
    aside: list[Path] = []
    try:
        with atomic_folder(target) as tmp:
            _write_dataset(tmp, task, processes)
            for path in replaced:  # the old folders go only once the new one is complete
                aside.append(_move_aside(path))
    except BaseException:
        for old, path in zip(aside, replaced):
            os.replace(old, path)
        raise
    for old, path in zip(aside, replaced):
        log.warning("replaced %s", path)
        shutil.rmtree(old, ignore_errors=True)
    log.info("converted %s: %d training and %d test case(s) into %s", folder.name, len(task.training),
             len(task.test), target)
    return target
