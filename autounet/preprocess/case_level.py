"""Preprocessing for case-level tasks: each whole image, normalized and resized to the plan's
input size, and its target, ready to be batched.

Per case: read once, transpose as planned, normalize every channel over the whole image (not
cropped: the framing may matter to a diagnosis), resize to the configuration's input size
(linear interpolation, smoothed first when shrinking so that fine texture does not alias), and
write the array and then its metadata (target, geometry, plan hash), which marks the case as
finished. A re-run skips cases whose metadata matches the plan, the image files and the target.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.autoplan.plans import Plans, StagePlan
from autounet.io.atomic import read_json, remove_stale_temporaries, write_json, write_npy
from autounet.io.dataset_json import CaseFiles, DatasetSpec
from autounet.io.verify import load_case, load_targets
from autounet.parallel import map_parallel
from autounet.preprocess.normalize import normalize
from autounet.workspace import DatasetPaths, PreprocessedCase

log = logging.getLogger(__name__)


def resize(image: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Every channel of ``image`` (C, Z, Y, X) resized to ``shape`` (Z, Y, X), float32."""
    from skimage.transform import resize as sk_resize

    shape = tuple(int(s) for s in shape)
    if tuple(image.shape[1:]) == shape:
        return image.astype(np.float32, copy=False)
    shrinking = any(n < o for n, o in zip(shape, image.shape[1:]))
    return np.stack([sk_resize(c, shape, order=1, mode="edge", anti_aliasing=shrinking, preserve_range=True)
                     for c in image]).astype(np.float32)


def input_shape(stage: StagePlan) -> tuple[int, int, int]:
    """The (Z, Y, X) shape a case is resized to (a 2D configuration's images have Z = 1)."""
    size = tuple(stage.patch_size)
    return (1,) + size if len(size) == 2 else size  # type: ignore[return-value]


def case_input(images: np.ndarray, plans: Plans, stage: StagePlan) -> np.ndarray:
    """One case's network input (C, Z, Y, X) float32 from its image (C, Z, Y, X) as read (pure)."""
    t = plans.transpose_forward
    x = np.array(images.transpose((0,) + tuple(i + 1 for i in t)), dtype=np.float32)  # a copy, normalized in place
    normalize(x, plans.normalization, None)
    return resize(x, input_shape(stage))


def _finished(out: PreprocessedCase, expected_hash: str, signature: str, target: list[float]) -> bool:
    if not (out.data.is_file() and out.meta.is_file()):
        return False
    try:
        meta = read_json(out.meta)
        np.load(out.data, mmap_mode="r")
    except (ValueError, OSError, EOFError):
        return False
    return (meta.get("preprocessing_hash"), meta.get("source_signature"), meta.get("target")) == (
        expected_hash, signature, target)


def _preprocess_case(args: tuple[CaseFiles, DatasetSpec, Plans, str, Path, str, list[float]]) -> None:
    case, spec, plans, config, folder, digest, target = args
    loaded, problems = load_case(case, spec)
    if loaded is None:
        raise ValueError("\n".join(problems))
    data = case_input(loaded.images, plans, plans.configurations[config])
    out = PreprocessedCase(folder, case.case_id)
    write_npy(out.data, data)
    write_json(out.meta, {"case_id": case.case_id, "preprocessing_hash": digest, "target": target,
                          "geometry": loaded.geometry.to_json(), "shape": list(data.shape[1:]),
                          "source_signature": case.signature()})


def preprocess_cases(spec: DatasetSpec, cases: list[CaseFiles], plans: Plans, paths: DatasetPaths,
                     configurations: list[str] | None, processes: int, force: bool) -> dict[str, int]:
    """Preprocess every case of a case-level dataset; returns {"done": n, "skipped": m}."""
    targets, problems = load_targets(spec, cases)
    if problems:
        raise ValueError("\n".join(problems))
    jobs, skipped = [], 0
    for config in configurations or list(plans.configurations):
        folder = paths.data_folder(plans.configurations[config].data_identifier)
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        digest = plans.preprocessing_hash(config)
        for case in cases:
            target = [float(v) for v in targets[case.case_id]]
            if not force and _finished(PreprocessedCase(folder, case.case_id), digest, case.signature(), target):
                skipped += 1
                continue
            jobs.append((case, spec, plans, config, folder, digest, target))
    if skipped:
        log.info("%d case(s) already preprocessed; skipping them (use --force to redo)", skipped)
    map_parallel(_preprocess_case, jobs, processes, desc="preprocess cases")
    return {"done": len(jobs), "skipped": skipped}
