"""Convert a MedMNIST ``.npz`` file into a case-level raw dataset (classification or multi-label).

A MedMNIST file holds ``train_images``/``train_labels``, ``val_images``/``val_labels`` and usually
``test_images``/``test_labels``. Images are uint8: (N, H, W) grayscale, (N, H, W, 3) RGB or
(N, D, H, W) volumes; labels are (N, 1) class values, or (N, K) 0/1 columns for a multi-label
dataset (ChestMNIST). :func:`convert_medmnist` writes every split except the held-out one as
training cases (``train_00000``, ``val_00000``, ...) and the held-out split as test cases:

- 2D images as PNG, one file per case (an RGB image is one 3-channel PNG, as the 2D reader
  reads it back), 3D images as NIfTI with spacing 1;
- the targets as CSV files (:mod:`autounet.io.targets`);
- a dataset.json with ``"task"``, the class or target names, ``"source"`` (the file name) and
  ``"medmnist_splits"`` (cases per split).

The dataset is written into a hidden sibling folder and renamed into place when complete, so an
interrupted or failed conversion leaves nothing under the final name.
"""

from __future__ import annotations

import logging
import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.errors import DatasetError, WorkspaceError
from autounet.hardware import ram_gb
from autounet.io.atomic import atomic_folder, check_writable
from autounet.io.dataset_json import write_dataset_json
from autounet.io.geometry import FLAT_AXIS_SPACING, Geometry
from autounet.io.image_io import write_image
from autounet.io.targets import write_targets
from autounet.parallel import map_parallel
from autounet.workspace import RawPaths, checked_name

log = logging.getLogger("autounet")

SPLITS = ("train", "val", "test")
REQUIRED_SPLITS = ("train", "val")
HOLDOUTS = (*SPLITS, "none")
DATASET_NAME = re.compile(r"Dataset(\d{3,})_(.+)")
CHUNK = 256  # images per job: enough to amortise a job's overhead, small enough for a live progress bar
GRAY_CHANNELS = ["image"]  # a neutral name: the planner z-scores it
RGB_CHANNELS = ["R", "G", "B"]
MAX_CLASSES = 1000  # MedMNIST has at most 11; a larger value is a damaged or hostile file (one dict entry per class)
MEMORY_SHARE = 0.5  # a file is converted only while its arrays fit in this share of the machine's memory


@dataclass(frozen=True)
class _Split:
    """One MedMNIST split: its uint8 images and its (N, K) integer labels."""

    name: str
    images: np.ndarray
    labels: np.ndarray


@dataclass(frozen=True)
class _Chunk:
    """Consecutive images of one split to write into the (temporary) dataset folder ``out``."""

    out: Path
    split: str  # "Tr" or "Ts"
    case_ids: tuple[str, ...]
    images: np.ndarray


def case_ids(split: str, n: int) -> list[str]:
    """``split_00000``..: 5 digits, more where ``n`` needs them."""
    width = max(5, len(str(max(n - 1, 0))))
    return [f"{split}_{i:0{width}d}" for i in range(n)]


def _member_header(archive: zipfile.ZipFile, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of the array ``key`` without reading its data."""
    with archive.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return tuple(shape), dtype


def _headers(npz: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array in the file; DatasetError when it is no readable .npz."""
    if not npz.is_file():
        raise DatasetError(f"{npz}: file not found (expected a MedMNIST .npz file such as pathmnist.npz)")
    try:
        with zipfile.ZipFile(npz) as archive:
            keys = [n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
            return {key: _member_header(archive, key) for key in keys}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DatasetError(f"{npz}: not a readable .npz archive ({e})") from e


def _split_problems(npz: Path, split: str, headers: dict) -> list[str]:
    """What is wrong with one split's two arrays, judged from their headers."""
    (ishape, idtype), (lshape, ldtype) = headers[f"{split}_images"], headers[f"{split}_labels"]
    problems = []
    if idtype != np.uint8:
        problems.append(f"{npz}: {split}_images has dtype {idtype}; MedMNIST images are uint8")
    if len(ishape) not in (3, 4):
        problems.append(f"{npz}: {split}_images has shape {ishape}; expected (N, H, W), (N, H, W, 3) or (N, D, H, W)")
    if ldtype.kind not in "iub":
        problems.append(f"{npz}: {split}_labels has dtype {ldtype}; MedMNIST labels are integers")
    if len(lshape) not in (1, 2):
        problems.append(f"{npz}: {split}_labels has shape {lshape}; expected (N, 1) or (N, K)")
    if ishape[:1] != lshape[:1]:
        problems.append(f"{npz}: {split}_images holds {ishape[0] if ishape else 0} image(s) but {split}_labels "
                        f"{lshape[0] if lshape else 0} label row(s)")
    return problems


def _check_headers(npz: Path, headers: dict, holdout: str) -> list[str]:
    """The splits present; DatasetError listing every missing key and malformed array."""
    present = [s for s in SPLITS if f"{s}_images" in headers or f"{s}_labels" in headers]
    problems = []
    for split in sorted(set(present) | set(REQUIRED_SPLITS), key=SPLITS.index):
        missing = [k for k in (f"{split}_images", f"{split}_labels") if k not in headers]
        if missing:
            problems.append(f"{npz}: missing key(s) {', '.join(missing)} (a MedMNIST file has "
                            "train_images, train_labels, val_images, val_labels and usually test_images, test_labels)")
        else:
            problems += _split_problems(npz, split, headers)
    shapes = {s: headers[f"{s}_images"][0][1:] for s in present if f"{s}_images" in headers}
    if len(set(shapes.values())) > 1:
        problems.append(f"{npz}: the splits' images differ in shape: {shapes}")
    widths = {s: headers[f"{s}_labels"][0][1:] or (1,) for s in present if f"{s}_labels" in headers}
    if len(set(widths.values())) > 1:
        problems.append(f"{npz}: the splits' labels differ in width: {widths}")
    if holdout not in ("none", "test") and holdout not in present:
        problems.append(f"{npz}: holdout split {holdout!r} is not in the file")
    needed = sum(math.prod(shape) * dtype.itemsize for shape, dtype in headers.values()) / 1024**3
    if needed > MEMORY_SHARE * ram_gb():
        problems.append(f"{npz}: its arrays need {needed:.1f} GB in memory, more than {MEMORY_SHARE:.0%} of this "
                        f"machine's {ram_gb():.1f} GB; split the file or convert on a larger machine")
    if problems:
        raise DatasetError("\n".join(problems))
    return present


def _load(npz: Path, holdout: str) -> list[_Split]:
    """Every split in the file, checked; DatasetError naming the file and every problem."""
    present = _check_headers(npz, _headers(npz), holdout)
    splits = []
    try:
        with np.load(npz, allow_pickle=False) as data:
            for split in present:
                labels = np.asarray(data[f"{split}_labels"])
                splits.append(_Split(split, data[f"{split}_images"], labels[:, None] if labels.ndim == 1 else labels))
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise DatasetError(f"{npz}: unreadable ({e})") from e
    return splits


def _task(npz: Path, splits: list[_Split], class_names: Sequence[str] | None) -> tuple[str, dict[str, int]]:
    """("classification" | "multilabel", labels name -> value or column index)."""
    k = splits[0].labels.shape[1]
    values = np.concatenate([s.labels.ravel() for s in splits]).astype(np.int64)
    task = "multilabel" if k > 1 else "classification"
    if values.size and values.min() < 0:
        raise DatasetError(f"{npz}: labels hold negative values ({values.min()})")
    if task == "multilabel" and not np.isin(values, (0, 1)).all():
        raise DatasetError(f"{npz}: multi-label labels (shape (N, {k})) must be 0 or 1, found {np.unique(values)}")
    n = k if task == "multilabel" else int(values.max(initial=0)) + 1
    if n > MAX_CLASSES:
        raise DatasetError(f"{npz}: {'label columns' if task == 'multilabel' else 'class values'} up to {n - 1}: "
                           f"more than {MAX_CLASSES} classes is not a MedMNIST file (MedMNIST has at most 11)")
    if class_names is None:
        return task, {f"class_{i}": i for i in range(n)}
    names = list(class_names)
    if len(names) != n or len(set(names)) != n or not all(isinstance(c, str) and c for c in names):
        what = f"{k} label columns" if task == "multilabel" else f"class values 0..{n - 1}"
        raise ValueError(f"class_names must be {n} distinct non-empty names ({npz.name} has {what}), got {names}")
    return task, {name: i for i, name in enumerate(names)}


def _checked_target(target: Path) -> Path:
    """The dataset folder to write: named DatasetNNN_Name, not there yet, and no other folder
    beside it with the same id; WorkspaceError otherwise."""
    target = Path(target).resolve()
    m = DATASET_NAME.fullmatch(target.name)
    if m is None:
        raise WorkspaceError(f"{target}: a raw dataset folder must be named DatasetNNN_Name "
                             "(e.g. Dataset201_PathMNIST)")
    checked_name(target.name, "dataset name")
    if target.exists():
        raise WorkspaceError(f"{target}: exists; remove it or choose another dataset name")
    same_id = sorted(target.parent.glob(f"Dataset{m.group(1)}_*")) if target.parent.is_dir() else []
    if same_id:
        raise WorkspaceError(f"{target.parent}: {', '.join(p.name for p in same_id)} already use(s) dataset id "
                             f"{m.group(1)}; choose another dataset id")
    check_writable(target.parent)
    return target


def _geometry(shape: tuple[int, ...]) -> Geometry:
    """Unit spacing: MedMNIST keeps no physical size. ``shape``: one image, (H, W[, 3]) or (D, H, W)."""
    if len(shape) == 3 and shape[-1] != 3:
        return Geometry(spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                        direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0), shape=shape, file_dims=3)
    return Geometry(spacing=(FLAT_AXIS_SPACING, 1.0, 1.0), origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0),
                    shape=(1, *shape[:2]), file_dims=2)


def _kind(image_shape: tuple[int, ...]) -> tuple[str, list[str]]:
    """(file ending, channel names) for images of shape (H, W), (H, W, 3) or (D, H, W)."""
    if len(image_shape) == 2:
        return ".png", GRAY_CHANNELS
    if image_shape[-1] == 3:
        return ".png", RGB_CHANNELS
    return ".nii.gz", GRAY_CHANNELS


def _write_chunk(chunk: _Chunk) -> int:
    """Write one chunk's images (as :func:`write_image` takes them); returns how many."""
    raw = RawPaths(chunk.out)
    ending, _ = _kind(chunk.images.shape[1:])
    geometry = _geometry(chunk.images.shape[1:])
    for case, image in zip(chunk.case_ids, chunk.images):
        if geometry.file_dims == 3:
            array = image
        elif image.ndim == 3:  # RGB: (C, 1, Y, X), one file
            array = np.moveaxis(image, -1, 0)[:, None]
        else:
            array = image[None]
        write_image(array, geometry, raw.image_file(case, 0, ending, chunk.split))
    return len(chunk.case_ids)


def _targets(split: _Split, ids: list[str], task: str) -> dict[str, list[int] | int]:
    if task == "classification":
        return {c: int(row[0]) for c, row in zip(ids, split.labels)}
    return {c: [int(v) for v in row] for c, row in zip(ids, split.labels)}


def _write(out: Path, splits: list[_Split], holdout: str, task: str, labels: dict[str, int],
           processes: int) -> int:
    """Images and targets of every split into the empty folder ``out``; returns numTraining."""
    raw = RawPaths(out)
    targets: dict[str, dict] = {"Tr": {}, "Ts": {}}
    chunks = []
    for split in splits:
        where = "Ts" if split.name == holdout else "Tr"
        ids = case_ids(split.name, len(split.labels))
        if ids or where == "Tr":
            raw.images(where).mkdir(exist_ok=True)
        targets[where].update(_targets(split, ids, task))
        chunks += [_Chunk(out, where, tuple(ids[i:i + CHUNK]), split.images[i:i + CHUNK])
                   for i in range(0, len(ids), CHUNK)]
    map_parallel(_write_chunk, chunks, processes, desc="write MedMNIST images", unit=f"{CHUNK}-image chunk")
    for where, rows in targets.items():
        if rows or where == "Tr":
            write_targets(raw.targets(where), task, labels, rows)
    return len(targets["Tr"])


def convert_medmnist(npz: Path, target: Path, holdout: str = "test", class_names: Sequence[str] | None = None,
                     processes: int = 1) -> Path:
    """Convert a MedMNIST ``.npz`` file into the raw dataset folder ``target`` (``DatasetNNN_Name``).

    holdout : the split written as test cases ("train", "val", "test" or "none"); the others
    become training cases. A file without a test split and holdout "test" gives no test cases.
    class_names : names of the class values 0..K-1 (or of the K label columns of a multi-label
    file); default ``class_0``... processes : worker processes writing images.
    Returns the dataset folder. Raises DatasetError naming the file and every problem with it,
    WorkspaceError when ``target`` exists or is misnamed, ValueError for bad arguments.
    """
    if holdout not in HOLDOUTS:
        raise ValueError(f"holdout must be one of {', '.join(HOLDOUTS)}, got {holdout!r}")
    npz, target = Path(npz).resolve(), _checked_target(target)
    splits = _load(npz, holdout)
    task, labels = _task(npz, splits, class_names)
    counts = {s.name: len(s.labels) for s in splits}
    if not sum(n for s, n in counts.items() if s != holdout):
        raise DatasetError(f"{npz}: no training cases once the {holdout!r} split is held out ({counts})")
    if holdout == "test" and "test" not in counts:
        log.info("%s has no test split: the dataset gets no test cases", npz.name)
    ending, channels = _kind(splits[0].images.shape[1:])
    log.info("%s: %s %s, images %s, %s case(s); holding out %r", npz.name, task, list(labels),
             splits[0].images.shape[1:], counts, holdout)
    with atomic_folder(target) as tmp:
        num_training = _write(tmp, splits, holdout, task, labels, processes)
        write_dataset_json(tmp, channels, labels, num_training, ending, target.name, task=task,
                           source=npz.name, medmnist_splits=counts, medmnist_holdout=holdout)
    log.info("converted %s: %d training and %d test case(s) into %s", npz.name, num_training,
             sum(counts.values()) - num_training, target)
    return target
