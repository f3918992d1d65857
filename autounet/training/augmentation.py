"""Data augmentation with batchgenerators, with nnU-Net's documented probabilities and ranges.

Spatial: rotation (3D +-30 deg per axis, 2D +-180 deg; p=0.2) and scaling (0.7-1.4, p=0.2),
third-order for images. Intensity: Gaussian noise (p=0.1), Gaussian blur (sigma 0.5-1, p=0.2),
brightness (x0.75-1.25, p=0.15), contrast (p=0.15), simulated low resolution (zoom 0.5-1,
p=0.25), inverted gamma (0.7-1.5, p=0.1), gamma (0.7-1.5, p=0.3), then mirroring.
Anisotropic 3D patches ("dummy 2D"): spatial transforms and low-resolution simulation act
in-plane only, because rotating across thick slices would interpolate between far-apart slices.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from batchgenerators.transforms.abstract_transforms import AbstractTransform, Compose
from batchgenerators.transforms.color_transforms import (BrightnessMultiplicativeTransform,
                                                         ContrastAugmentationTransform, GammaTransform)
from batchgenerators.transforms.noise_transforms import GaussianBlurTransform, GaussianNoiseTransform
from batchgenerators.transforms.resample_transforms import SimulateLowResolutionTransform
from batchgenerators.transforms.spatial_transforms import MirrorTransform, SpatialTransform
from batchgenerators.transforms.utility_transforms import RemoveLabelTransform

from autounet.inference.cascade import one_hot

DUMMY_2D_ANISOTROPY = 3.0  # a 3D patch whose in-plane size is > 3x its depth augments in 2D
# Case-level tasks see the whole image: milder rotation (+-15 deg; a diagnosis may depend on the
# orientation an image is taken in) and scaling (0.85-1.15: the image's edge stays in view), more often.
CASE_ROTATION_DEG, CASE_SCALE, CASE_P_SPATIAL = 15.0, (0.85, 1.15), 0.3


@dataclass(frozen=True)
class AugmentationParams:
    """The sampled ranges and probabilities (angles in radians, per spatial axis)."""

    rotation: tuple[float, float, float]
    dummy_2d: bool
    mirror_axes: tuple[int, ...]
    scale: tuple[float, float] = (0.7, 1.4)
    p_rotation: float = 0.2
    p_scale: float = 0.2
    p_noise: float = 0.1
    p_blur: float = 0.2
    p_brightness: float = 0.15
    p_contrast: float = 0.15
    p_low_resolution: float = 0.25
    p_gamma_inverted: float = 0.1
    p_gamma: float = 0.3


def augmentation_params(patch_size: Sequence[int], mirror_axes: Sequence[int]) -> AugmentationParams:
    """The default augmentation for a patch: 2D, 3D, or dummy 2D for anisotropic 3D patches."""
    if len(patch_size) == 2:
        return AugmentationParams((math.pi, 0.0, 0.0), False, tuple(mirror_axes))
    dummy = max(patch_size) / patch_size[0] > DUMMY_2D_ANISOTROPY
    if dummy:
        return AugmentationParams((math.pi, 0.0, 0.0), True, tuple(a for a in mirror_axes if a != 0) or ())
    a = math.radians(30)
    return AugmentationParams((a, a, a), False, tuple(mirror_axes))


def _rotations(angles: Sequence[float], steps: int) -> list[np.ndarray]:
    """Rotation matrices about one axis at a time, over angles in [-a, a] (2 or 3 spatial dims)."""
    out = []
    for axis, a in enumerate(angles):
        for t in np.linspace(-a, a, steps):
            r2 = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
            if len(angles) == 1:
                out.append(r2)
                continue
            r = np.eye(3)
            keep = [i for i in range(3) if i != axis]
            r[np.ix_(keep, keep)] = r2
            out.append(r)
    return out


def enlarged_patch_size(patch_size: Sequence[int], params: AugmentationParams, min_scale: float = 0.85
                        ) -> tuple[int, ...]:
    """The patch to sample so that rotated and scaled-down views rarely reach padding: the
    bounding box of the patch under the largest rotations, divided by a typical smallest scale."""
    spatial = list(patch_size[1:]) if params.dummy_2d else list(patch_size)
    angles = params.rotation[:1] if len(spatial) == 2 else params.rotation
    corners = np.array(list(itertools.product(*[(-s / 2, s / 2) for s in spatial])))
    rotations = _rotations(angles, 65)
    extent = np.max([np.ptp(corners @ r.T, axis=0) for r in rotations], axis=0)
    out = [max(int(math.ceil(e / min_scale - 1e-6)), p) for e, p in zip(extent, spatial)]
    return tuple([patch_size[0]] + out) if params.dummy_2d else tuple(out)


class SeedPythonRandom(AbstractTransform):
    """Seed Python's ``random`` from numpy's global generator.

    batchgenerators draws most parameters from numpy (seeded per worker by its augmenters) but
    the noise variance from Python's ``random``, which nobody seeds; this makes both follow the
    one seed.
    """

    def __call__(self, **batch):
        random.seed(int(np.random.randint(0, 2**31 - 1)))
        return batch


class To2D(AbstractTransform):
    """(B, C, Z, Y, X) -> (B, C*Z, Y, X) so that 2D transforms act on every slice alike."""

    def __call__(self, **batch):
        for key in ("data", "seg"):
            b, c, z = batch[key].shape[:3]
            batch[f"{key}_channels"] = c
            batch[key] = batch[key].reshape((b, c * z) + batch[key].shape[3:])
        return batch


class To3D(AbstractTransform):
    """Undo :class:`To2D`."""

    def __call__(self, **batch):
        for key in ("data", "seg"):
            c = batch.pop(f"{key}_channels")
            b, cz = batch[key].shape[:2]
            batch[key] = batch[key].reshape((b, c, cz // c) + batch[key].shape[2:])
        return batch


class PreviousStageToOneHot(AbstractTransform):
    """Cascade: move the previous stage's labels (seg channel 1) into data as one-hot channels."""

    def __init__(self, num_classes: int):
        self.num_classes = num_classes

    def __call__(self, **batch):
        seg = batch["seg"]
        if seg.shape[1] > 1:
            batch["data"] = np.concatenate([batch["data"], one_hot(seg[:, 1], self.num_classes, axis=1)], 1)
            batch["seg"] = seg[:, :1]
        return batch


def training_transforms(patch_size: Sequence[int], params: AugmentationParams, num_previous_classes: int = 0,
                        ignore_label: int | None = None) -> Compose:
    """The augmentation pipeline producing patches of ``patch_size`` from enlarged samples.
    Labels rotated or scaled in from outside the sample become background, or ``ignore_label``."""
    spatial_patch = list(patch_size[1:]) if params.dummy_2d else list(patch_size)
    ax, ay, az = params.rotation
    t: list[AbstractTransform] = [SeedPythonRandom()] + ([To2D()] if params.dummy_2d else [])
    t.append(SpatialTransform(
        spatial_patch, patch_center_dist_from_border=None, do_elastic_deform=False,
        do_rotation=True, angle_x=(-ax, ax), angle_y=(-ay, ay), angle_z=(-az, az), p_rot_per_axis=1,
        do_scale=True, scale=params.scale, border_mode_data="constant", border_cval_data=0, order_data=3,
        border_mode_seg="constant", border_cval_seg=-1, order_seg=1, random_crop=False,
        p_el_per_sample=0, p_scale_per_sample=params.p_scale, p_rot_per_sample=params.p_rotation,
        independent_scale_for_each_axis=False))
    if params.dummy_2d:
        t.append(To3D())
    t += [
        GaussianNoiseTransform(p_per_sample=params.p_noise),
        GaussianBlurTransform((0.5, 1.0), different_sigma_per_channel=True, p_per_sample=params.p_blur,
                              p_per_channel=0.5),
        BrightnessMultiplicativeTransform(multiplier_range=(0.75, 1.25), p_per_sample=params.p_brightness),
        ContrastAugmentationTransform(p_per_sample=params.p_contrast),
        SimulateLowResolutionTransform(zoom_range=(0.5, 1), per_channel=True, p_per_channel=0.5,
                                       order_downsample=0, order_upsample=3, p_per_sample=params.p_low_resolution,
                                       ignore_axes=(0,) if params.dummy_2d else None),
        GammaTransform((0.7, 1.5), True, True, retain_stats=True, p_per_sample=params.p_gamma_inverted),
        GammaTransform((0.7, 1.5), False, True, retain_stats=True, p_per_sample=params.p_gamma),
    ]
    if params.mirror_axes:
        t.append(MirrorTransform(params.mirror_axes))
    t.append(RemoveLabelTransform(-1, 0 if ignore_label is None else ignore_label))
    if num_previous_classes:
        t.append(PreviousStageToOneHot(num_previous_classes))
    return Compose(t)


def validation_transforms(num_previous_classes: int = 0) -> Compose:
    """No augmentation; only the cascade's one-hot conversion."""
    return Compose([PreviousStageToOneHot(num_previous_classes)] if num_previous_classes else [])


def case_level_transforms(input_size: Sequence[int], mirror_axes: Sequence[int], augment: bool) -> Compose:
    """Augmentation of whole-case inputs (case-level tasks): in-plane rotation for 2D inputs,
    rotation about every axis for 3D ones, scaling, the intensity transforms above, and
    mirroring along ``mirror_axes``; only the target travels with the batch (no label map)."""
    if not augment:
        return Compose([])
    a = math.radians(CASE_ROTATION_DEG)
    three_d = len(input_size) == 3
    return Compose([
        SeedPythonRandom(),
        SpatialTransform(list(input_size), patch_center_dist_from_border=None, do_elastic_deform=False,
                         do_rotation=True, angle_x=(-a, a), angle_y=(-a, a) if three_d else (0, 0),
                         angle_z=(-a, a) if three_d else (0, 0), p_rot_per_axis=1, do_scale=True, scale=CASE_SCALE,
                         border_mode_data="constant", border_cval_data=0, order_data=3, random_crop=False,
                         p_el_per_sample=0, p_scale_per_sample=CASE_P_SPATIAL, p_rot_per_sample=CASE_P_SPATIAL),
        GaussianNoiseTransform(p_per_sample=0.1),
        GaussianBlurTransform((0.5, 1.0), different_sigma_per_channel=True, p_per_sample=0.1, p_per_channel=0.5),
        BrightnessMultiplicativeTransform(multiplier_range=(0.75, 1.25), p_per_sample=0.15),
        ContrastAugmentationTransform(p_per_sample=0.15),
        GammaTransform((0.7, 1.5), False, True, retain_stats=True, p_per_sample=0.15),
    ] + ([MirrorTransform(tuple(mirror_axes))] if mirror_axes else []))
