"""From fingerprint to plan: fixed heuristic rules, each with the reason it exists."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np

from autounet.autoplan.case_planner import case_level_plans
from autounet.autoplan.memory import FIXED_OVERHEAD_BYTES, GIB, estimate_training_bytes, max_batch_size
from autounet.autoplan.plans import (INSTANCE_CLASSES, ChannelNormalization, Fingerprint, InstanceTaskPlan, NetworkTopology,
                                     Plans, StagePlan)
from autounet.autoplan.topology import RESIDUAL_BLOCKS_PER_STAGE, features_per_stage, pad_to_multiple, pooling_and_kernels
from autounet.hardware import MIN_MEMORY_TARGET_GB, HardwareInfo
from autounet.hardware import memory_target_gb as hardware_memory_target
from autounet.io.dataset_json import SEGMENTATION, DatasetSpec
from autounet.io.geometry import FLAT_AXIS_SPACING

log = logging.getLogger("autounet")



@dataclass(frozen=True)
class PlannerSettings:
    """The numbers behind the rules. Defaults follow nnU-Net's documented heuristics."""

    memory_target_gb: float = 8.0          # plan for the equivalent of an 8 GB GPU
    base_features: int = 32
    max_features_3d: int = 320
    max_features_2d: int = 512
    min_batch_size: int = 2
    max_batch_fraction: float = 0.05       # one batch covers at most 5% of the dataset's voxels
    reference_batch_3d: int = 2            # the patch shrinks until this batch fits (3D) ...
    reference_batch_2d: int = 12           # ... or this one (2D)
    initial_patch_voxels_3d: int = 256**3  # start large, shrink to fit memory
    initial_patch_voxels_2d: int = 2048**2
    anisotropy_threshold: float = 3.0      # an axis > 3x coarser than the others is "anisotropic"
    lowres_threshold: float = 0.25         # add 3d_lowres when the patch covers < 25% of the image
    lowres_spacing_step: float = 1.03      # lowres spacing grows by 3% per step
    zscore_mask_threshold: float = 0.75    # z-score inside the non-zero mask if cropping shrank below 75%
    block: str = "plain"                   # "plain" U-Net or "residual" encoder


def target_spacing(spacings: np.ndarray, shapes: np.ndarray, threshold: float) -> np.ndarray:
    """Median spacing per axis. When one axis is > ``threshold`` x coarser than the others and
    also holds < 1/``threshold`` of their voxels (few thick slices, not a long thin volume), it
    takes its 10th percentile instead, so that most cases are upsampled along it rather than the
    coarsest cases dictating a resolution that destroys the finer ones. It never goes below the
    other axes."""
    target = np.median(spacings, axis=0)
    size = np.median(shapes, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(len(target)) if i != worst]
    coarse = target[worst] > threshold * max(target[others]) and size[worst] * threshold < min(size[others])
    if target[worst] < FLAT_AXIS_SPACING and coarse:
        target[worst] = max(np.percentile(spacings[:, worst], 10), max(target[others]))
    return target


def coarsest_axis_first(spacing: Sequence[float]) -> tuple[int, int, int]:
    """Transpose putting the coarsest axis first (2D networks then see the finest plane)."""
    worst = int(np.argmax(spacing))
    return (worst,) + tuple(i for i in range(len(spacing)) if i != worst)  # type: ignore[return-value]


def _median_shape(fp: Fingerprint, spacing: Sequence[float | None], transpose: Sequence[int]) -> tuple[int, ...]:
    """Median cropped shape after resampling to ``spacing`` (None: the axis keeps its voxels)."""
    shapes = []
    for c in fp.cases:
        sp = [c.spacing[t] for t in transpose]
        sh = [c.shape_after_crop[t] for t in transpose]
        shapes.append([n if t is None else n * s / t for n, s, t in zip(sh, sp, spacing)])
    return tuple(int(round(v)) for v in np.median(np.array(shapes), axis=0))


def _network(patch: Sequence[int], spacing: Sequence[float], s: PlannerSettings,
             in_channels: int, num_outputs: int) -> NetworkTopology:
    strides, kernels = pooling_and_kernels(patch, spacing)
    n = len(strides)
    cap = s.max_features_3d if len(patch) == 3 else s.max_features_2d
    enc = RESIDUAL_BLOCKS_PER_STAGE[:n] if s.block == "residual" else (2,) * n
    return NetworkTopology(
        dims=len(patch), input_channels=in_channels, num_outputs=num_outputs,
        features_per_stage=features_per_stage(n, s.base_features, cap), kernel_sizes=kernels,
        strides=strides, convs_per_stage_encoder=tuple(enc), convs_per_stage_decoder=(2,) * (n - 1), block=s.block,
    )


def plan_stage(name: str, spacing: Sequence[float], median_shape: Sequence[int], num_cases: int,
               dataset_voxels_per_case: float, s: PlannerSettings, in_channels: int, num_outputs: int,
               batch_dice: bool, data_identifier: str | None = None) -> StagePlan:
    """Patch, batch and network for one configuration.

    spacing, median_shape : of the axes the network sees (2 or 3 values).
    dataset_voxels_per_case : median voxels of a whole case at this configuration's resolution.
    """
    dims = len(spacing)
    target_bytes = s.memory_target_gb * GIB
    ref_batch = s.reference_batch_3d if dims == 3 else s.reference_batch_2d
    # Start from a large patch whose aspect ratio follows 1/spacing (isotropic in mm), no larger
    # than the median image.
    inv = 1.0 / np.asarray(spacing, dtype=float)
    volume = s.initial_patch_voxels_3d if dims == 3 else s.initial_patch_voxels_2d
    patch = [max(1, min(int(round(v)), m)) for v, m in
             zip(inv * (volume / np.prod(inv)) ** (1 / dims), median_shape)]
    net = _network(patch, spacing, s, in_channels, num_outputs)
    patch = list(pad_to_multiple(patch, net.downsampling_factor))
    # Shrink the axis that covers the largest fraction of the median image, one downsampling
    # step at a time, until the reference batch fits. Only axes that can still shrink compete, so
    # the loop ends: at the latest when every axis is down to one downsampling step.
    while estimate_training_bytes(patch, net, ref_batch) > target_bytes:
        shrinkable = [i for i, (p, f) in enumerate(zip(patch, net.downsampling_factor)) if p > f]
        if not shrinkable:
            break  # the smallest patch this network allows; the estimate above the target is recorded
        # ties go to the last axis (in-plane before slices, as nnU-Net breaks them)
        axis = max(reversed(shrinkable), key=lambda i: patch[i] / median_shape[i])
        # Step by the factor the smaller patch will need, not the current one: 256 with factor 64
        # becomes 224 (factor 32 suffices there), not 192.
        trial = patch[:axis] + [patch[axis] - net.downsampling_factor[axis]] + patch[axis + 1:]
        patch[axis] -= _network(trial, spacing, s, in_channels, num_outputs).downsampling_factor[axis]
        net = _network(patch, spacing, s, in_channels, num_outputs)
        patch = list(pad_to_multiple(patch, net.downsampling_factor))
    batch = max_batch_size(patch, net, target_bytes)
    # No batch may cover more than 5% of the dataset: more would mostly see the same voxels again.
    cap = round(s.max_batch_fraction * num_cases * dataset_voxels_per_case / math.prod(patch))
    batch = max(min(batch, cap), s.min_batch_size)
    return StagePlan(
        name=name, data_identifier=data_identifier or name,
        spacing=tuple(float(v) for v in spacing) if dims == 3 else (None,) + tuple(float(v) for v in spacing),  # type: ignore[arg-type]
        median_shape=tuple(median_shape) if dims == 3 else (0,) + tuple(median_shape),  # type: ignore[arg-type]
        patch_size=tuple(patch), batch_size=batch, batch_dice=batch_dice, network=net,
        estimated_memory_gb=round(estimate_training_bytes(patch, net, batch) / GIB, 3),
        anisotropy_threshold=s.anisotropy_threshold, mirror_axes=tuple(range(dims)),
    )


def choose_normalization(fp: Fingerprint, s: PlannerSettings) -> tuple[ChannelNormalization, ...]:
    """Per channel, by name: CT -> global clip + z-score; noNorm / rescale_to_0_1 / rgb_to_0_1 as
    named; anything else -> per-case z-score (inside the non-zero mask when cropping removed
    much of the image, because then the zero background would dominate the statistics)."""
    out = []
    for name, st in zip(fp.channel_names, fp.intensity):
        key = name.strip().lower()
        if key == "ct":
            out.append(ChannelNormalization("ct", False, st.percentile_00_5, st.percentile_99_5, st.mean,
                                            max(st.std, 1e-8)))
        elif key in ("nonorm", "rescale_to_0_1", "rgb_to_0_1"):
            out.append(ChannelNormalization({"nonorm": "noNorm"}.get(key, key)))
        else:
            out.append(ChannelNormalization("zscore", fp.median_relative_size_after_crop < s.zscore_mask_threshold))
    return tuple(out)


def _lowres_stage(fp: Fingerprint, fullres: StagePlan, transpose: Sequence[int], s: PlannerSettings,
                  in_channels: int, num_outputs: int) -> StagePlan | None:
    """Coarser spacing until the patch covers at least ``lowres_threshold`` of the median image.

    Axes more than 2x finer than the coarsest coarsen first (the data becomes more isotropic),
    then all axes together. None when the low-resolution image would hold more than half the
    voxels of the full-resolution one: too similar to be worth a second network. The patch may
    stay the same size; what matters is how much of the (now smaller) image it sees."""
    spacing = np.array(fullres.spacing, dtype=float)
    n = len(fp.cases)
    stage = fullres
    shape = fullres.median_shape
    while math.prod(stage.patch_size) / math.prod(shape) < s.lowres_threshold and min(shape) > 1:
        finer = spacing.max() / spacing > 2
        spacing = spacing * np.where(finer if finer.any() else True, s.lowres_spacing_step, 1.0)
        shape = _median_shape(fp, spacing, transpose)
        stage = plan_stage("3d_lowres", spacing, shape, n, math.prod(shape), s, in_channels, num_outputs, False)
    if math.prod(shape) * 2 > math.prod(fullres.median_shape):
        return None
    return stage


def _plan_3d(fp: Fingerprint, spacing: Sequence[float], shape: Sequence[int], transpose: Sequence[int],
             s: PlannerSettings, n_in: int, num_outputs: int, regions: bool, notes: list[str]) -> dict[str, StagePlan]:
    """``3d_fullres``, and ``3d_lowres`` + ``3d_cascade_fullres`` when the patch sees little of an image."""
    full = plan_stage("3d_fullres", spacing, shape, len(fp.cases), math.prod(shape), s, n_in, num_outputs, False)
    coverage = math.prod(full.patch_size) / math.prod(shape)
    if coverage >= s.lowres_threshold:
        return {"3d_fullres": full}
    low = _lowres_stage(fp, full, transpose, s, n_in, num_outputs)
    if low is None:
        notes.append(f"3d_fullres patch covers {coverage:.0%} of the median image, but a lower resolution "
                     "would keep more than half its voxels: no cascade")
        return {"3d_fullres": full}
    # The full-resolution stages see patches that cover little of each image: averaging Dice over the
    # batch steadies their loss; the low-resolution stage sees much of an image per patch.
    full = replace(full, batch_dice=True)
    cascade_net = replace(full.network, input_channels=n_in + num_outputs - (0 if regions else 1))
    notes.append(f"3d_fullres patch covers {coverage:.0%} of the median image (< {s.lowres_threshold:.0%}): "
                 "3d_lowres and 3d_cascade_fullres added")
    return {"3d_fullres": full, "3d_lowres": low, "3d_cascade_fullres": replace(
        full, name="3d_cascade_fullres", network=cascade_net, previous_stage="3d_lowres")}


def plan_dataset(fp: Fingerprint, spec: DatasetSpec, settings: PlannerSettings = PlannerSettings()) -> Plans:
    """The complete plan: target spacing, axis order, configurations, normalization."""
    if spec.instances:  # a segmentation of the classes objects are told apart by
        semantic = replace(spec, labels=dict(INSTANCE_CLASSES), task=SEGMENTATION)
        plans = plan_dataset(fp, semantic, settings)
        name = next(k for k, v in spec.labels.items() if v == 1)
        return replace(plans, labels=dict(INSTANCE_CLASSES), instance_task=InstanceTaskPlan(name), notes=plans.notes + (
            f"instances: each {name} is learnt as interior and boundary classes; objects are seeded from the "
            "interiors after prediction",))
    s = settings
    if s.memory_target_gb < MIN_MEMORY_TARGET_GB:
        raise ValueError(
            f"a memory target of {s.memory_target_gb:g} GB is too small to plan for: a training step needs "
            f"{FIXED_OVERHEAD_BYTES / GIB:.1f} GB before the first voxel (framework, workspace, weights), and below "
            f"{MIN_MEMORY_TARGET_GB:g} GB patches shrink to a few voxels; plan for at least {MIN_MEMORY_TARGET_GB:g} GB "
            f"(--gpu-memory-gb {MIN_MEMORY_TARGET_GB:g})")
    spacings = np.array([c.spacing for c in fp.cases], dtype=float)
    target = target_spacing(spacings, np.array([c.shape_after_crop for c in fp.cases]), s.anisotropy_threshold)
    transpose = coarsest_axis_first(target) if fp.file_dims == 3 else (0, 1, 2)
    backward = tuple(int(i) for i in np.argsort(transpose))
    notes: list[str] = []
    configs = plan_configurations(fp, spec, [float(target[t]) for t in transpose], transpose, s, notes)
    if transpose != (0, 1, 2):
        notes.append(f"axes transposed {transpose} so the coarsest axis comes first")
    original_shape = np.median([c.shape_after_crop for c in fp.cases], axis=0)
    plans = Plans(
        dataset_name=fp.dataset_name, planner="default" if s.block == "plain" else "residual_encoder",
        channel_names=fp.channel_names,
        labels={k: list(v) if isinstance(v, tuple) else v for k, v in spec.labels.items()},
        regions_class_order=spec.regions_class_order, file_ending=spec.file_ending, reader=spec.reader,
        file_dims=fp.file_dims, transpose_forward=transpose, transpose_backward=backward,  # type: ignore[arg-type]
        original_median_spacing=tuple(float(x) for x in np.median(spacings, axis=0)),  # type: ignore[arg-type]
        original_median_shape=tuple(int(round(x)) for x in original_shape),  # type: ignore[arg-type]
        normalization=choose_normalization(fp, s), configurations=configs, memory_target_gb=s.memory_target_gb,
        foreground_labels=spec.foreground_labels, ignore_label=spec.ignore_label, notes=tuple(notes),
    )
    return case_level_plans(plans, fp, spec.target_names, s) if spec.case_level else plans


def plan_configurations(fp: Fingerprint, spec: DatasetSpec, target_t: list[float], transpose: tuple[int, int, int],
                        s: PlannerSettings, notes: list[str]) -> dict[str, StagePlan]:
    """The configurations (2d, and for 3D data 3d_fullres, maybe 3d_lowres and the cascade) at the
    transposed target spacing ``target_t``; what could not fit the memory target is noted."""
    n_in = len(fp.channel_names)
    if spec.has_regions:
        num_outputs = sum(1 for k, v in spec.labels.items() if k not in ("background", "ignore"))
    else:
        num_outputs = len(spec.foreground_labels) + 1
    n = len(fp.cases)
    configs: dict[str, StagePlan] = {}
    shape_2d = _median_shape(fp, [None] + target_t[1:], transpose)
    shape = _median_shape(fp, target_t, transpose)  # the dataset's size, also for the 2d batch cap
    configs["2d"] = plan_stage("2d", target_t[1:], shape_2d[1:], n, math.prod(shape), s, n_in, num_outputs, True)
    if fp.file_dims == 3:
        configs.update(_plan_3d(fp, target_t, shape, transpose, s, n_in, num_outputs, spec.has_regions, notes))
    for c in configs.values():
        if c.estimated_memory_gb > s.memory_target_gb:
            notes.append(f"{c.name}: even the smallest patch {c.patch_size} needs about {c.estimated_memory_gb:.2f} GB, "
                         f"more than the {s.memory_target_gb:g} GB planned for")
    return configs


def plan_for_machine(fp: Fingerprint, spec: DatasetSpec, hw: HardwareInfo, memory_target_gb: float | None = None,
                     block: str = "plain") -> Plans:
    """The plan for the machine at hand: memory to plan for as given (``--gpu-memory-gb``), else
    read from the device (see :func:`autounet.hardware.memory_target_gb`); the plan records what
    was detected and where the target came from."""
    target = memory_target_gb if memory_target_gb is not None else hardware_memory_target(hw)
    source = "--gpu-memory-gb" if memory_target_gb is not None else "detected"
    plans = plan_dataset(fp, spec, PlannerSettings(memory_target_gb=target, block=block))
    log.info("hardware: %s; planning for %.1f GB (%s)", hw.describe(), target,
             "set with --gpu-memory-gb" if memory_target_gb is not None else "detected")
    return replace(plans, hardware={**hw.to_json(), "memory_target_gb": target, "memory_target_source": source})
