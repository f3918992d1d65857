"""From fingerprint to plan for a case-level task: one label or number per case.

The rules, each with its reason:
- Input size: every case is resized to the median shape (axes in the planner's order). When all
  cases share one shape nothing is resized. A classifier needs one input size for a batch, and
  the median distorts the fewest cases. A note is written when shapes vary by more than
  ``SHAPE_SPREAD_NOTE`` (then the aspect ratio of the outlying cases changes).
- 2D vs 3D: the files decide. 2D images train ``2d``; 3D volumes train ``3d_fullres`` (a slice of
  a volume does not carry the case's label, so no 2D configuration is planned for them).
- Network: the U-Net's encoder, built by the same topology rules (pooling per axis, kernels,
  features 32 doubling to the cap), then global average pooling and a linear head. Batch
  normalization instead of instance normalization: a classifier sees whole images, and instance
  normalization would remove the per-image contrast a diagnosis may rest on.
- Memory: when the median input does not fit ``MIN_CASE_BATCH`` samples in the memory target, the
  input shrinks by ``SHRINK_STEP`` per axis until it does.
- Batch: 5% of the training cases (as the segmentation batch covers at most 5% of the dataset),
  at least ``MIN_CASE_BATCH`` (batch statistics need a few samples) and at most what fits.
- Loss: cross-entropy (classification), binary cross-entropy per target (multi-label), smooth L1
  on standardized targets (regression: robust to a few outlying targets).
- Imbalance: when the largest class holds more than ``IMBALANCE_RATIO`` times the cases of the
  smallest (among the classes that have cases), batches draw every class equally often (classification); for multi-label targets,
  which cannot all be balanced by sampling, each target's positives are weighted by
  negatives/positives, at most ``MAX_POSITIVE_WEIGHT``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

import numpy as np

from autounet.autoplan.memory import GIB, estimate_training_bytes, max_batch_size
from autounet.autoplan.plans import CaseTaskPlan, Fingerprint, NetworkTopology, Plans, StagePlan
from autounet.autoplan.topology import RESIDUAL_BLOCKS_PER_STAGE, features_per_stage, pooling_and_kernels

SHAPE_SPREAD_NOTE = 0.25
MIN_CASE_BATCH = 8
BATCH_FRACTION = 0.05
SHRINK_STEP = 0.85
IMBALANCE_RATIO = 1.5
MAX_POSITIVE_WEIGHT = 10.0
LOSSES = {"classification": "cross_entropy", "multilabel": "binary_cross_entropy", "regression": "smooth_l1"}


def case_network(input_size: Sequence[int], spacing: Sequence[float], in_channels: int, num_outputs: int,
                 base_features: int, cap: int, block: str) -> NetworkTopology:
    """The encoder of the U-Net the topology rules give for ``input_size``, with a pooled head."""
    strides, kernels = pooling_and_kernels(input_size, spacing)
    n = len(strides)
    enc = RESIDUAL_BLOCKS_PER_STAGE[:n] if block == "residual" else (2,) * n
    return NetworkTopology(dims=len(input_size), input_channels=in_channels, num_outputs=num_outputs,
                           features_per_stage=features_per_stage(n, base_features, cap), kernel_sizes=kernels,
                           strides=strides, convs_per_stage_encoder=tuple(enc), convs_per_stage_decoder=(),
                           block=block, head="pooled", norm="batch")


def input_size(shapes: np.ndarray) -> tuple[tuple[int, ...], float]:
    """The median shape per axis, and how far the cases spread around it (largest relative gap)."""
    median = np.median(shapes, axis=0)
    spread = float(np.max(np.abs(shapes / median - 1))) if len(shapes) else 0.0
    return tuple(int(round(v)) for v in median), spread


def fit_input(size: Sequence[int], spacing: Sequence[float], memory_bytes: float, build) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Shrink the input (and coarsen its spacing alike) until ``MIN_CASE_BATCH`` samples fit."""
    size, spacing = list(size), list(spacing)
    while estimate_training_bytes(size, build(size, spacing), MIN_CASE_BATCH) > memory_bytes and max(size) > 8:
        new = [max(1, int(round(v * SHRINK_STEP))) for v in size]
        spacing = [sp * old / n for sp, old, n in zip(spacing, size, new)]
        size = new
    return tuple(size), tuple(spacing)


def case_task_plan(fp: Fingerprint, names: Sequence[str]) -> CaseTaskPlan:
    """Loss and imbalance handling from the task and the class frequencies (rules above)."""
    task, counts = fp.task, [c for c in fp.class_counts]
    imbalance, weights = "none", ()
    present = [c for c in counts if c > 0]  # a declared class without cases cannot be drawn
    if task == "classification" and present and max(present) > IMBALANCE_RATIO * min(present):
        imbalance = "balanced_sampling"
    if task == "multilabel":
        n = len(fp.cases)
        ratios = [(n - c) / c if c > 0 else MAX_POSITIVE_WEIGHT for c in counts]
        if any(r > IMBALANCE_RATIO for r in ratios):
            imbalance = "loss_weights"
            weights = tuple(float(min(MAX_POSITIVE_WEIGHT, max(1.0, r))) for r in ratios)
    return CaseTaskPlan(task=task, names=tuple(names), loss=LOSSES[task], imbalance=imbalance, class_weights=weights,
                        target_mean=fp.target_mean, target_std=tuple(max(s, 1e-8) for s in fp.target_std))


def case_stage(fp: Fingerprint, transpose: Sequence[int], spacing: Sequence[float], settings, num_outputs: int,
               notes: list[str]) -> StagePlan:
    """The one configuration of a case-level task: input size, network, batch."""
    dims = fp.file_dims
    shapes = np.array([[c.shape_before_crop[t] for t in transpose] for c in fp.cases], dtype=float)[:, 3 - dims:]
    size, spread = input_size(shapes)
    if spread > SHAPE_SPREAD_NOTE:
        notes.append(f"case shapes differ from the median {size} by up to {spread:.0%}: every case is resized to it")
    sp = [float(v) for v in spacing][3 - dims:]
    cap = settings.max_features_3d if dims == 3 else settings.max_features_2d
    in_ch, memory = len(fp.channel_names), settings.memory_target_gb * GIB

    def build(sz, spc):
        return case_network(sz, spc, in_ch, num_outputs, settings.base_features, cap, settings.block)

    fitted, sp = fit_input(size, sp, memory, build)
    if fitted != size:
        notes.append(f"input shrunk from the median shape {size} to {fitted} to fit {MIN_CASE_BATCH} samples in "
                     f"{settings.memory_target_gb:g} GB")
    net = build(fitted, sp)
    batch = max(MIN_CASE_BATCH, round(BATCH_FRACTION * len(fp.cases)))
    batch = max(1, min(batch, max_batch_size(fitted, net, memory), len(fp.cases)))
    name = "2d" if dims == 2 else "3d_fullres"
    return StagePlan(
        name=name, data_identifier=f"{name}_cases",
        spacing=((None,) + tuple(sp)) if dims == 2 else tuple(sp),  # type: ignore[arg-type]
        median_shape=((0,) + fitted) if dims == 2 else fitted,  # type: ignore[arg-type]
        patch_size=fitted, batch_size=batch, batch_dice=False, network=net,
        estimated_memory_gb=round(estimate_training_bytes(fitted, net, batch) / GIB, 3), image_resampling_order=1,
        mirror_axes=tuple(range(dims)))


def case_level_plans(base: Plans, fp: Fingerprint, names: Sequence[str], settings) -> Plans:
    """``base`` (the segmentation plan's shared fields: axes, normalization) turned into a
    case-level plan: one configuration and the task's loss and imbalance handling."""
    notes: list[str] = []
    spacing = [float(v) for v in np.median([[c.spacing[t] for t in base.transpose_forward] for c in fp.cases], 0)]
    num_outputs = len(names)
    stage = case_stage(fp, base.transpose_forward, spacing, settings, num_outputs, notes)
    task = case_task_plan(fp, names)
    if task.imbalance != "none":
        notes.append(f"class frequencies {list(fp.class_counts)}: {task.imbalance.replace('_', ' ')}")
    return replace(base, configurations={stage.name: stage}, notes=tuple(notes), case_task=task,
                   foreground_labels=(), ignore_label=None, regions_class_order=None,
                   original_median_shape=tuple(int(round(x)) for x in np.median(  # type: ignore[arg-type]
                       [c.shape_before_crop for c in fp.cases], axis=0)),
                   planner=base.planner + "_case_level")
