"""Network topology from patch size and spacing: pooling per axis, kernel sizes, features.

The rules (nnU-Net's documented heuristics):
- an axis is downsampled only while it holds at least 8 voxels (so the coarsest feature map
  keeps at least 4) and its spacing is within 2x of the finest spacing among such axes — a
  coarse axis waits until the finer ones have caught up, so that the receptive field grows
  about equally in physical units; sizes halve rounding up (the patch is padded to fit), and an
  axis pooled alone needs at least 12 voxels (pooling one axis to 4 on its own buys little);
- a convolution kernel is 3 along axes within 2x of the finest spacing, 1 otherwise (no point
  mixing far-apart slices before in-plane pooling has made them comparable); once 3, it stays 3;
- features start at 32 and double per stage up to a cap (320 in 3D, 512 in 2D).
"""

from __future__ import annotations

import math
from typing import Sequence

# ResEnc-style encoders: residual blocks per stage (nnU-Net's ResEnc presets use these counts)
RESIDUAL_BLOCKS_PER_STAGE = (1, 3, 4, 6, 6, 6, 6, 6, 6, 6)
MIN_POOL_SIZE = 8           # an axis is pooled only while it has at least this many voxels
MIN_POOL_SIZE_ALONE = 12    # ... or this many when it is the only axis left to pool
SPACING_RATIO_FOR_POOL = 2.0  # ... and is within this factor of the finest spacing


def _kernel(spacing: Sequence[float], previous: Sequence[int] | None) -> tuple[int, ...]:
    finest = min(spacing)
    k = [3 if s / finest < SPACING_RATIO_FOR_POOL else 1 for s in spacing]
    if previous is not None:
        k = [max(a, b) for a, b in zip(k, previous)]
    return tuple(k)


def pooling_and_kernels(patch_size: Sequence[int], spacing: Sequence[float]
                        ) -> tuple[tuple[tuple[int, ...], ...], tuple[tuple[int, ...], ...]]:
    """Strides and kernel sizes per stage for a patch at a spacing (finest stage first)."""
    size = [float(p) for p in patch_size]
    sp = [float(s) for s in spacing]
    kernels = [_kernel(sp, None)]
    strides = [tuple(1 for _ in sp)]
    while True:
        valid = [i for i in range(len(sp)) if size[i] >= MIN_POOL_SIZE]
        if not valid:
            break
        finest = min(sp[i] for i in valid)
        pool = [i for i in valid if sp[i] / finest < SPACING_RATIO_FOR_POOL]
        if len(pool) == 1 and size[pool[0]] < MIN_POOL_SIZE_ALONE:
            break
        stride = tuple(2 if i in pool else 1 for i in range(len(sp)))
        size = [math.ceil(s / st) for s, st in zip(size, stride)]
        sp = [s * st for s, st in zip(sp, stride)]
        strides.append(stride)
        kernels.append(_kernel(sp, kernels[-1]))
    return tuple(strides), tuple(kernels)


def pad_to_multiple(patch_size: Sequence[int], factor: Sequence[int]) -> tuple[int, ...]:
    """Round each axis up to a multiple of its downsampling factor."""
    return tuple(int(math.ceil(p / f) * f) for p, f in zip(patch_size, factor))


def features_per_stage(num_stages: int, base: int, cap: int) -> tuple[int, ...]:
    """``base`` doubling per stage, capped."""
    return tuple(min(base * 2**s, cap) for s in range(num_stages))
