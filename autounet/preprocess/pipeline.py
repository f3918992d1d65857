"""Preprocess training cases for every planned configuration.

Per case: read once, crop to the non-zero region, transpose, normalize, then for each
distinct data folder resample and write the case's arrays (data, labels, foreground locations)
and, last, its metadata (geometry, shape, plan hash), which marks the case as finished (file
names: :class:`autounet.workspace.PreprocessedCase`); and copy each raw label map to the
references folder (what evaluation compares against).

Every file is written atomically, so a killed run leaves finished cases intact and no
half-written file that could pass for finished. A re-run skips cases whose .json matches the
current plan.
"""

from __future__ import annotations

import logging
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from autounet.autoplan.plans import Plans, StagePlan
from autounet.io.atomic import copy_file, read_json, remove_stale_temporaries, write_json, write_npy, write_npz
from autounet.io.dataset_json import CaseFiles, DatasetSpec
from autounet.io.geometry import Geometry, crop, nonzero_box
from autounet.io.verify import load_case
from autounet.parallel import map_parallel
from autounet.preprocess.crop import nonzero_mask
from autounet.preprocess.normalize import normalize
from autounet.preprocess.resample import resample_image, resample_labels
from autounet.workspace import DatasetPaths, PreprocessedCase

LabelTransform = Callable[[np.ndarray], np.ndarray] | None
# Foreground coordinates kept per label: enough to sample patch centres well, small on disk.
MAX_LOCATIONS_PER_LABEL = 10_000
MIN_LOCATION_FRACTION = 0.01


def data_folders(plans: Plans, configurations: list[str] | None = None) -> dict[str, str]:
    """data_identifier -> the configuration whose spacing defines it (one entry per folder)."""
    out: dict[str, str] = {}
    for name, stage in plans.configurations.items():
        if configurations is None or name in configurations:
            out.setdefault(stage.data_identifier, name)
    return out


def arrays_readable(out: PreprocessedCase) -> bool:
    """Whether a case's arrays open as what their headers declare (a truncated file does not)."""
    try:
        for f in (out.data, out.seg):
            np.load(f, mmap_mode="r")
        with np.load(out.locations, allow_pickle=False):  # opening reads the archive's directory, at its end
            pass
        return True
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return False


def is_finished(out: PreprocessedCase, expected_hash: str, source_signature: str) -> bool:
    """A case is finished when its metadata exists and matches the plan and the raw files as they
    are now (an edited label is preprocessed again), and its arrays are whole."""
    if not all(f.is_file() for f in out.files):
        return False
    try:
        meta = read_json(out.meta)
    except (ValueError, OSError):
        return False
    return (meta.get("preprocessing_hash") == expected_hash and meta.get("source_signature") == source_signature
            and arrays_readable(out))


def label_locations(seg: np.ndarray, labels: tuple[int, ...], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A seeded sample of voxel coordinates (N, 3) int32 for each of ``labels`` present in ``seg``."""
    out = {}
    for label in labels:
        where = np.flatnonzero(seg.ravel() == label)
        if where.size == 0:
            continue
        n = min(where.size, max(MAX_LOCATIONS_PER_LABEL, int(np.ceil(where.size * MIN_LOCATION_FRACTION))))
        if n < where.size:
            where = np.sort(rng.choice(where, n, replace=False))
        out[f"label_{label}"] = np.stack(np.unravel_index(where, seg.shape), axis=1).astype(np.int32)
    return out


def _case_seed(seed: int, case_id: str) -> list[int]:
    return [seed, zlib.crc32(case_id.encode())]


def preprocess_arrays(images: np.ndarray, seg: np.ndarray | None, spacing: tuple[float, ...], plans: Plans
                      ) -> tuple[np.ndarray, np.ndarray | None, tuple, tuple[float, ...]]:
    """Crop, transpose and normalize one case (pure): returns images, seg, crop box, spacing.

    images : (C, Z, Y, X); seg : (Z, Y, X) or None (inference). Resampling is per configuration.
    """
    box = nonzero_box(images)
    images = np.array(crop(images, box), dtype=np.float32)  # a copy: normalization works in place
    mask = nonzero_mask(images) if any(n.use_nonzero_mask for n in plans.normalization) else None
    t = plans.transpose_forward
    images = np.ascontiguousarray(images.transpose((0,) + tuple(i + 1 for i in t)))
    if seg is not None:
        seg = np.ascontiguousarray(crop(seg, box).transpose(t))
    if mask is not None:
        mask = mask.transpose(t)
    normalize(images, plans.normalization, mask)
    return images, seg, box, tuple(spacing[i] for i in t)


def preprocess_for_prediction(images: np.ndarray, geometry: Geometry, plans: Plans, stage: StagePlan
                              ) -> tuple[np.ndarray, Geometry]:
    """A new image (C, Z, Y, X) prepared exactly as the training data of ``stage`` was;
    returns the data and the geometry (with crop box and transpose) needed to map back."""
    data, _, box, spacing = preprocess_arrays(images, None, geometry.spacing, plans)
    data = resample_image(data, spacing, stage.spacing, stage.anisotropy_threshold)
    return data, geometry.with_crop(box).with_transpose(plans.transpose_forward)


@dataclass(frozen=True)
class DataFolder:
    """One preprocessed data folder: where it is, which configuration defines it, its plan hash."""

    path: Path
    configuration: str
    preprocessing_hash: str


def copy_reference(case: CaseFiles, target: Path) -> Path:
    """Copy a case's raw label map into the preprocessed folder: the reference that later stages
    evaluate against, so that they never need the raw dataset. The copy keeps the label's
    modification time, so an edited label (another size or time) is copied again."""
    if case.label is None:
        return target
    src, old = case.label.stat(), target.stat() if target.is_file() else None
    if old is None or (old.st_size, old.st_mtime_ns) != (src.st_size, src.st_mtime_ns):
        copy_file(case.label, target, keep_times=True)
    return target


def _preprocess_case(args: tuple[CaseFiles, DatasetSpec, Plans, list[DataFolder], int, LabelTransform]) -> float:
    case, spec, plans, folders, seed, label_transform = args
    start, signature = time.perf_counter(), case.signature()
    loaded, problems = load_case(case, spec)
    if loaded is None:
        raise ValueError("\n".join(problems))
    geometry = loaded.geometry
    seg = label_transform(loaded.seg) if label_transform is not None else loaded.seg
    images, seg, box, spacing = preprocess_arrays(loaded.images, seg, geometry.spacing, plans)
    del loaded  # the raw arrays are no longer needed; keep peak memory at one case
    geometry = geometry.with_crop(box).with_transpose(plans.transpose_forward)
    # Sparsely annotated data (an ignore label) also records where background was annotated:
    # training centres its patches on annotated voxels of every class.
    labels = tuple(sorted(set(plans.foreground_labels) | ({0} if plans.ignore_label is not None else set())))
    for folder in folders:
        stage = plans.configurations[folder.configuration]
        data = resample_image(images, spacing, stage.spacing, stage.anisotropy_threshold)
        seg_out = resample_labels(seg, spacing, stage.spacing, stage.anisotropy_threshold)
        locs = label_locations(seg_out, labels, np.random.default_rng(_case_seed(seed, case.case_id)))
        out = PreprocessedCase(folder.path, case.case_id)
        write_npy(out.data, data)
        write_npy(out.seg, seg_out)
        write_npz(out.locations, locs)
        write_json(out.meta, {
            "case_id": case.case_id,
            "preprocessing_hash": folder.preprocessing_hash,
            "geometry": geometry.to_json(),
            "spacing": [s if t is None else t for s, t in zip(spacing, stage.spacing)],
            "shape": list(seg_out.shape),
            "labels_present": [int(k.split("_")[1]) for k in locs if k != "label_0"],
            "source_signature": signature,
        })
    return time.perf_counter() - start


def preprocess_segmentation(spec: DatasetSpec, cases: list[CaseFiles], plans: Plans, paths: DatasetPaths,
                            configurations: list[str] | None = None, processes: int = 1, force: bool = False,
                            seed: int = 0, label_transform: LabelTransform = None) -> dict[str, int]:
    """Preprocess every case of a segmentation dataset for the chosen configurations (images and
    label maps, sampling locations, references); returns {"done": n, "skipped": m}.
    ``label_transform``: what the network learns from a raw label map (a picklable function;
    the references keep the raw labels)."""
    log = logging.getLogger(__name__)
    folders = [DataFolder(paths.data_folder(ident), config, plans.preprocessing_hash(config))
               for ident, config in data_folders(plans, configurations).items()]
    for path in [f.path for f in folders] + [paths.references]:
        path.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path)
    for case in cases:
        copy_reference(case, paths.reference(case.case_id, spec.file_ending))
    todo = [c for c, signature in ((c, c.signature()) for c in cases) if force or not all(
        is_finished(PreprocessedCase(f.path, c.case_id), f.preprocessing_hash, signature) for f in folders)]
    names = "+".join(f.path.name for f in folders)
    if len(todo) < len(cases):
        log.info("%d of %d case(s) already preprocessed for %s; skipping them (use --force to redo)",
                 len(cases) - len(todo), len(cases), names)
    map_parallel(_preprocess_case, [(c, spec, plans, folders, seed, label_transform) for c in todo], processes,
                 desc=f"preprocess {names}")
    return {"done": len(todo), "skipped": len(cases) - len(todo)}
