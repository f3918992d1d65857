"""Dataset verification: every problem of a raw dataset, found before any work is done."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autounet.errors import DatasetError, DatasetVerificationError
from autounet.io.dataset_json import CaseFiles, DatasetSpec, load_dataset_json
from autounet.io.geometry import Geometry, geometry_mismatches
from autounet.io.image_io import NATURAL_ENDINGS, ImageReadError, read_image, read_segmentation
from autounet.io.layout import discover_training_cases
from autounet.workspace import RawPaths

log = logging.getLogger("autounet")
MIN_CASES = 2  # cross-validation: every case is validated by a model that did not train on it


@dataclass
class LoadedCase:
    """A verified training case in memory: images (C, Z, Y, X) float32, seg (Z, Y, X) (None for a
    case-level task: its targets are in labelsTr.csv), geometry."""

    case_id: str
    images: np.ndarray
    seg: np.ndarray | None
    geometry: Geometry


def _label_values(seg: np.ndarray) -> np.ndarray:
    """The values a label map holds, as they are in the file (a count per value while they are small)."""
    if seg.size and 0 <= seg.min() and seg.max() < 2**16:
        return np.flatnonzero(np.bincount(seg.ravel().astype(np.intp)))
    return np.unique(seg)


def load_case(case: CaseFiles, spec: DatasetSpec) -> tuple[LoadedCase | None, list[str]]:
    """Read and check one case; returns (case, []) or (None, problems naming each file)."""
    problems: list[str] = []
    arrays, ref_geo, ref_path = [], None, None
    for path in case.images:
        try:
            arr, geo = read_image(path, spec.reader)
        except ImageReadError as e:
            problems.append(str(e))
            continue
        if np.issubdtype(arr.dtype, np.floating):
            bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            if bad:
                problems.append(f"{path}: {bad} NaN or Inf voxel(s)")
        if ref_geo is None:
            ref_geo, ref_path = geo, path
        else:
            problems += [f"{path}: {m} (mismatch with {ref_path.name})" for m in geometry_mismatches(geo, ref_geo)]
        arrays.append(arr)
    n_channels = sum(a.shape[0] for a in arrays)
    if arrays and len(arrays) == len(case.images) and n_channels != len(spec.channel_names):
        problems.append(
            f"{case.images[0]}: case '{case.case_id}' has {n_channels} channel(s) in its image files but "
            f"dataset.json declares {len(spec.channel_names)} ({', '.join(spec.channel_names)})"
        )
    seg = None
    if case.label is not None and case.label.is_file():
        try:
            seg, seg_geo = read_segmentation(case.label, spec.reader)
        except ImageReadError as e:
            problems.append(str(e))
        else:
            if ref_geo is not None:
                problems += [f"{case.label}: {m} (mismatch with {ref_path.name})"
                             for m in geometry_mismatches(seg_geo, ref_geo)]
            values = _label_values(seg)
            unknown = sorted(set(values.tolist()) - spec.allowed_label_values) if not spec.instances else []
            if spec.instances and values.size and values.min() < 0:
                problems.append(f"{case.label}: object ids must be 0 (background) or positive, found {values.min()}")
            if unknown:
                problems.append(
                    f"{case.label}: label value(s) {unknown} are not declared in dataset.json "
                    f"(declared: {sorted(spec.allowed_label_values)})"
                )
    if problems or (seg is None and not spec.case_level) or ref_geo is None:
        return None, problems
    images = np.concatenate(arrays, 0) if len(arrays) > 1 else arrays[0]
    return LoadedCase(case.case_id, images.astype(np.float32, copy=False), seg, ref_geo), []


def check_layout(dataset_dir: Path, processes: int = 1) -> tuple[DatasetSpec, list[CaseFiles]]:
    """dataset.json plus the file layout; raises DatasetVerificationError listing every problem.

    A sound layout is returned without reading any image (the caller reads every case once).
    When the layout has problems, the cases whose files are all there are read too, so that the
    one error lists the problems inside the files as well.
    """
    from autounet.parallel import map_parallel

    try:
        spec = load_dataset_json(dataset_dir)
    except DatasetError as e:
        raise DatasetVerificationError(str(dataset_dir), str(e).splitlines()) from None
    cases, problems = discover_training_cases(spec)
    if spec.case_level:
        problems += load_targets(spec, cases)[1]
    if problems:
        # cases with a missing file are already reported; reading them would only repeat that
        natural = spec.file_ending.lower() in NATURAL_ENDINGS
        n_files = max((len(c.images) for c in cases), default=0) if natural else len(spec.channel_names)
        complete = [c for c in cases if (c.label is not None or spec.case_level) and (spec.cases is not None or len(c.images) == n_files)
                    and all(p.is_file() for p in c.files)]
        results = map_parallel(_verify_one, [(c, spec) for c in complete], processes, desc="verify")
        raise DatasetVerificationError(str(dataset_dir), problems + [p for r, _ in results for p in r])
    if len(cases) < MIN_CASES:
        raise DatasetVerificationError(str(dataset_dir), [
            f"{RawPaths(dataset_dir).dataset_json}: {len(cases)} training case(s); the 5-fold cross-validation needs "
            f"at least {MIN_CASES}"])
    return spec, cases


def load_targets(spec: DatasetSpec, cases: list[CaseFiles]) -> tuple[dict[str, np.ndarray], list[str]]:
    """A case-level dataset's targets (case id -> values, see :func:`autounet.io.targets.read_targets`)
    and the problems of its labelsTr.csv (every case needs a row, every class must be declared)."""
    from autounet.io.targets import read_targets

    try:
        return read_targets(RawPaths(spec.path).targets("Tr"), spec.task, spec.labels, [c.case_id for c in cases]), []
    except DatasetError as e:
        return {}, str(e).splitlines()


def labels_present(case: LoadedCase) -> set[int]:
    """The label values a case's label map holds (none for a case-level task)."""
    return {int(v) for v in _label_values(case.seg)} if case.seg is not None else set()


def _verify_one(args: tuple[CaseFiles, DatasetSpec]) -> tuple[list[str], set[int]]:
    case, problems = load_case(*args)
    return problems, labels_present(case) if case is not None else set()


def foreground_problems(spec: DatasetSpec, presence: dict[str, set[int]]) -> list[str]:
    """A dataset whose label maps hold no foreground at all has nothing to learn."""
    if spec.case_level or any(set(spec.foreground_labels) & labels for labels in presence.values()):
        return []
    return [f"{spec.path}: no label map holds any foreground voxel (labels {list(spec.foreground_labels)}); "
            "nothing to learn"]


def label_warnings(spec: DatasetSpec, presence: dict[str, set[int]]) -> list[str]:
    """Declared labels that occur in no training case (their Dice is 0 or NaN in every mean) or in
    one only (the cross-validation sees them once)."""
    names = {v: k for k, v in spec.labels.items() if isinstance(v, int)}
    out = []
    for label in spec.foreground_labels:
        cases = sorted(c for c, labels in presence.items() if label in labels)
        if len(cases) < 2:
            where = f"only in case {cases[0]}" if cases else "in no training case"
            out.append(f"{RawPaths(spec.path).dataset_json}: label '{names.get(label, label)}' ({label}) occurs "
                       f"{where}: the model can hardly learn it, and the cross-validation scores it "
                       f"{'once' if cases else 'never'}")
    return out


def verify_dataset(dataset_dir: Path, processes: int = 1) -> tuple[DatasetSpec, list[CaseFiles]]:
    """Check a raw dataset completely (layout and every file's content); raises on any problem,
    logs a warning for each label that occurs in fewer than two cases."""
    from autounet.parallel import map_parallel

    spec, cases = check_layout(dataset_dir, processes)
    results = map_parallel(_verify_one, [(c, spec) for c in cases], processes, desc="verify")
    presence = {c.case_id: labels for c, (_, labels) in zip(cases, results)}
    problems = [p for r, _ in results for p in r]
    problems += foreground_problems(spec, presence) if not problems else []
    if problems:
        raise DatasetVerificationError(str(dataset_dir), problems)
    for warning in label_warnings(spec, presence):
        log.warning("%s", warning)
    return spec, cases
