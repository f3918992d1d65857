"""Resampling to a target spacing, one axis at a time.

Each axis is resampled by multiplying with a small (n_out, n_in) weight matrix, which BLAS does
fast and deterministically. Sample positions follow the usual pixel-centre convention
(``x_in = (i + 0.5) * n_in / n_out - 0.5``) with edge replication, as scikit-image's resize.

- images: cubic convolution (third order; Keys kernel, a = -0.5);
- label maps: each label's indicator is interpolated linearly and the argmax taken, so no label
  value can appear that was not there before;
- anisotropic data ("separate z"): when the source or the target spacing has one axis more than
  ``anisotropy_threshold`` x coarser than the finest, that axis uses nearest neighbour (images
  and labels) — interpolating across far-apart slices invents structure that is not there.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import numpy as np

KEYS_A = -0.5


def _keys(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    a = KEYS_A
    return np.where(t <= 1, (a + 2) * t**3 - (a + 3) * t**2 + 1,
                    np.where(t < 2, a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a, 0.0))


@lru_cache(maxsize=256)
def axis_weights(n_in: int, n_out: int, kind: str) -> np.ndarray:
    """The (n_out, n_in) float32 matrix resampling one axis ("nearest", "linear" or "cubic")."""
    x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    w = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    if kind == "nearest":
        w[rows, np.clip(np.floor(x + 0.5).astype(int), 0, n_in - 1)] = 1.0
    elif kind == "linear":
        lo = np.floor(x)
        frac = x - lo
        for offset, weight in ((0, 1 - frac), (1, frac)):
            np.add.at(w, (rows, np.clip(lo.astype(int) + offset, 0, n_in - 1)), weight)
    elif kind == "cubic":
        lo = np.floor(x)
        for offset in (-1, 0, 1, 2):
            idx = lo + offset
            np.add.at(w, (rows, np.clip(idx.astype(int), 0, n_in - 1)), _keys(x - idx))
    else:
        raise ValueError(f"unknown interpolation '{kind}'")
    out = w.astype(np.float32)
    out.setflags(write=False)
    return out


def resample_axis(array: np.ndarray, axis: int, n_out: int, kind: str) -> np.ndarray:
    """Resample one axis of a float32 array to ``n_out`` samples."""
    n_in = array.shape[axis]
    if n_in == n_out:
        return array
    pre = int(np.prod(array.shape[:axis]))
    post = int(np.prod(array.shape[axis + 1:]))
    a3 = np.ascontiguousarray(array).reshape(pre, n_in, post)
    w = axis_weights(n_in, n_out, kind)
    out = a3.reshape(pre, n_in) @ w.T if post == 1 else np.matmul(w, a3)
    return out.reshape(array.shape[:axis] + (n_out,) + array.shape[axis + 1:])


def target_shape(shape: Sequence[int], spacing: Sequence[float], target: Sequence[float | None]) -> tuple[int, ...]:
    """Shape after resampling (an axis whose target is None keeps its size)."""
    return tuple(n if t is None else max(1, int(round(n * s / t))) for n, s, t in zip(shape, spacing, target))


def anisotropic_axis(spacing: Sequence[float], target: Sequence[float], threshold: float) -> int | None:
    """The axis to treat "separately" (nearest neighbour), or None when the data is isotropic enough."""
    for sp in (target, spacing):
        sp = [float(v) for v in sp]
        if max(sp) / min(sp) > threshold:
            worst = int(np.argmax(sp))
            if sum(1 for v in sp if v / min(sp) > threshold) == 1:
                return worst
    return None


def _plan(shape, spacing, target, threshold):
    target = [s if t is None else t for s, t in zip(spacing, target)]
    new = target_shape(shape, spacing, target)
    z = anisotropic_axis(spacing, target, threshold)
    # shrink first, grow last: every multiplication then works on the smallest array possible
    order = sorted(range(len(shape)), key=lambda a: new[a] / shape[a])
    return new, z, [a for a in order if new[a] != shape[a]]


def resample_to_shape(image: np.ndarray, new_shape: Sequence[int], separate_axis: int | None = None,
                      kind: str = "cubic") -> np.ndarray:
    """Resample (C, Z, Y, X) float32 to a spatial shape; ``separate_axis`` uses nearest neighbour."""
    new = tuple(int(n) for n in new_shape)
    # shrink first, grow last: every multiplication then works on the smallest array possible
    axes = [a for a in sorted(range(len(new)), key=lambda a: new[a] / image.shape[a + 1]) if new[a] != image.shape[a + 1]]
    if not axes:
        return image
    out = np.empty((image.shape[0],) + new, dtype=np.float32)
    for c in range(image.shape[0]):
        x = image[c]
        for a in axes:
            x = resample_axis(x, a, new[a], "nearest" if a == separate_axis else kind)
        out[c] = x
    return out


def resample_image(image: np.ndarray, spacing: Sequence[float], target: Sequence[float | None],
                   threshold: float = 3.0, kind: str = "cubic") -> np.ndarray:
    """Resample (C, Z, Y, X) float32 from ``spacing`` to ``target`` spacing."""
    new, z, _ = _plan(image.shape[1:], spacing, target, threshold)
    return resample_to_shape(image, new, z, kind)


def resample_labels(seg: np.ndarray, spacing: Sequence[float], target: Sequence[float | None],
                    threshold: float = 3.0) -> np.ndarray:
    """Resample a label map (Z, Y, X): linear interpolation per label, then argmax."""
    new, z, axes = _plan(seg.shape, spacing, target, threshold)
    if not axes:
        return seg
    values = np.flatnonzero(np.bincount(seg.ravel().astype(np.intp))) if seg.min() >= 0 else np.unique(seg)
    if len(values) == 1:
        return np.full(new, values[0], dtype=seg.dtype)
    best = np.full(new, -1.0, dtype=np.float32)
    out = np.zeros(new, dtype=seg.dtype)
    for v in values:
        x = (seg == v).astype(np.float32)
        for a in axes:
            x = resample_axis(x, a, new[a], "nearest" if a == z else "linear")
        take = x > best
        out[take] = v
        np.maximum(best, x, out=best)
    return out
