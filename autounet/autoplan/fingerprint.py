"""The dataset fingerprint: per-case spacing and shapes, per-channel foreground intensities.

Verification and fingerprinting share one read of every case: the worker checks a case and,
when it is sound, measures it. Nothing is written unless every case passed.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from autounet.autoplan.plans import CaseFingerprint, Fingerprint, IntensityStats, load_fingerprint
from autounet.errors import DatasetVerificationError
from autounet.io.atomic import write_json
from autounet.io.dataset_json import CaseFiles, DatasetSpec
from autounet.io.targets import class_counts
from autounet.io.verify import (check_layout, foreground_problems, label_warnings, labels_present, load_case,
                                load_targets)
from autounet.parallel import map_parallel
from autounet.workspace import DatasetPaths, RawPaths
from autounet.io.geometry import crop, nonzero_box

log = logging.getLogger(__name__)

# Foreground voxels sampled for the intensity statistics, over the whole dataset. Percentiles
# at 0.5/99.5 are stable to well under 1% of the range with this many samples.
INTENSITY_SAMPLES_TOTAL = 2_000_000


def source_signature(spec: DatasetSpec, cases: list[CaseFiles]) -> str:
    """A digest of dataset.json and every case file's name, size and modification time."""
    h = hashlib.sha256(RawPaths(spec.path).dataset_json.read_bytes())
    if spec.case_level:
        h.update(RawPaths(spec.path).targets("Tr").read_bytes())
    for c in cases:
        h.update((c.signature() + "\n").encode())
    return h.hexdigest()[:24]


def _case_worker(args: tuple[CaseFiles, DatasetSpec, int, int, int]):
    case, spec, seed, index, n_samples = args
    loaded, problems = load_case(case, spec)
    if loaded is None:
        return None, None, problems, set()
    if spec.case_level:  # the whole image is the input: not cropped, every voxel counts
        images, foreground = loaded.images, np.ones(loaded.images.shape[1:], dtype=bool)
    else:
        box = nonzero_box(loaded.images)
        images, seg = crop(loaded.images, box), crop(loaded.seg, box)
        foreground = seg > 0
        if spec.ignore_label is not None:
            foreground &= seg != spec.ignore_label
    where = np.flatnonzero(foreground)
    rng = np.random.default_rng([seed, index])
    if where.size > n_samples:
        where = rng.choice(where, n_samples, replace=False)
    samples = images.reshape(images.shape[0], -1)[:, where].astype(np.float32)
    fp = CaseFingerprint(
        case_id=case.case_id,
        spacing=tuple(loaded.geometry.spacing),
        shape_before_crop=tuple(int(s) for s in loaded.images.shape[1:]),
        shape_after_crop=tuple(int(s) for s in images.shape[1:]),
    )
    return fp, samples, [], labels_present(loaded)


def intensity_stats(samples: np.ndarray) -> IntensityStats:
    """Statistics of a 1D sample of foreground intensities."""
    s = samples.astype(np.float64)
    lo, med, hi = np.percentile(s, [0.5, 50.0, 99.5])
    return IntensityStats(
        mean=float(s.mean()), median=float(med), std=float(s.std()), min=float(s.min()), max=float(s.max()),
        percentile_00_5=float(lo), percentile_99_5=float(hi), num_samples=int(s.size),
    )


def extract_fingerprint(dataset_dir: Path, processes: int = 1, seed: int = 0,
                        layout: tuple[DatasetSpec, list[CaseFiles]] | None = None) -> Fingerprint:
    """Verify every case of a raw dataset and compute its fingerprint.

    Raises DatasetVerificationError listing every problem found (and writes nothing).
    """
    spec, cases = layout or check_layout(dataset_dir)
    n_samples = max(1, INTENSITY_SAMPLES_TOTAL // len(cases))
    results = map_parallel(_case_worker, [(c, spec, seed, i, n_samples) for i, c in enumerate(cases)],
                           processes, desc="verify + fingerprint")
    problems = [p for _, _, probs, _ in results for p in probs]
    presence = {c.case_id: labels for c, (_, _, _, labels) in zip(cases, results)}
    problems += foreground_problems(spec, presence) if not problems else []
    if problems:
        raise DatasetVerificationError(str(dataset_dir), problems)
    for warning in label_warnings(spec, presence):
        log.warning("%s", warning)
    per_channel = np.concatenate([s for _, s, _, _ in results], axis=1)
    case_fps = tuple(fp for fp, _, _, _ in results)
    rel = [np.prod(c.shape_after_crop) / np.prod(c.shape_before_crop) for c in case_fps]
    file_dims = 2 if all(c.shape_before_crop[0] == 1 for c in case_fps) else 3
    return replace(Fingerprint(
        dataset_name=spec.path.name,
        file_dims=file_dims,
        channel_names=spec.channel_names,
        cases=case_fps,
        intensity=tuple(intensity_stats(ch) for ch in per_channel),
        median_relative_size_after_crop=float(np.median(rel)),
        source_signature=source_signature(spec, cases),
        seed=seed,
    ), **target_summary(spec, cases))


def target_summary(spec: DatasetSpec, cases: list[CaseFiles]) -> dict:
    """A case-level task's fingerprint fields: class frequencies, or the targets' mean and spread;
    a warning for each class too rare for every fold to validate it."""
    if not spec.case_level:
        return {}
    targets, _ = load_targets(spec, cases)
    values = np.stack([targets[c.case_id] for c in cases])
    if spec.task == "regression":
        return {"task": spec.task, "target_mean": tuple(float(v) for v in values.mean(0)),
                "target_std": tuple(float(v) for v in values.std(0))}
    counts = class_counts(targets, spec.task, len(spec.labels))
    for name, n in zip(spec.target_names, counts):
        if n < 5:
            log.warning("%s: '%s' has %d case(s): fewer than the 5 folds, so some folds never validate it",
                        RawPaths(spec.path).targets("Tr"), name, n)
    return {"task": spec.task, "class_counts": tuple(int(n) for n in counts)}


def fingerprint_dataset(paths: DatasetPaths, layout: tuple[DatasetSpec, list[CaseFiles]], processes: int,
                        seed: int = 0, force: bool = False) -> Fingerprint:
    """The dataset's fingerprint: reused when the raw files have not changed since it was
    written (verification passed then), else computed (which verifies every case) and written."""
    spec, cases = layout
    if paths.fingerprint.is_file() and not force:
        try:
            old = load_fingerprint(paths.fingerprint)
        except (ValueError, KeyError, TypeError):
            old = None
        if old is not None and old.seed == seed and old.source_signature == source_signature(spec, cases):
            log.info("raw files unchanged since %s: reusing it (verification passed then)", paths.fingerprint)
            return old
    fp = extract_fingerprint(paths.raw, processes, seed, layout)
    write_json(paths.fingerprint, fp.to_json())
    return fp
