"""Sliding windows without torch: where the windows go, how much each voxel of a window counts,
and the Gaussian-weighted average of a predictor over them for numpy arrays.

The torch path (:mod:`autounet.inference.sliding_window`) places and weights its windows with
these same functions; :func:`sliding_window_numpy` is what an ONNX model runs through, so a model
exported to ONNX predicts with autounet's windows on a machine without torch.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Any, Callable, Iterable, Sequence

import numpy as np

ArrayPredictor = Callable[[np.ndarray], np.ndarray]  # (B, C, *patch) -> (B, K, *patch) logits
MAX_WINDOW_BATCH = 8  # windows per forward pass by default: the plan's batch size, at most this


def window_batch(asked: int | None, plan_batch: int) -> int:
    """Windows per forward pass: as asked, else the plan's batch size, at most MAX_WINDOW_BATCH."""
    return asked or max(1, min(plan_batch, MAX_WINDOW_BATCH))


@lru_cache(maxsize=16)
def _gaussian(patch: tuple[int, ...], sigma_scale: float) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(p) - (p - 1) / 2 for p in patch], indexing="ij")
    g = np.exp(-sum((x / max(p * sigma_scale, 1e-6)) ** 2 / 2 for x, p in zip(grids, patch)))
    g = g / g.max()
    g[g == 0] = g[g > 0].min()  # never a zero weight: every voxel gets a defined value
    g = g.astype(np.float32)
    g.flags.writeable = False  # cached and shared: nobody may change it
    return g


def gaussian(patch: Sequence[int], sigma_scale: float = 1 / 8) -> np.ndarray:
    """A Gaussian over the patch (max 1, sigma = patch * sigma_scale): centre voxels count most."""
    return _gaussian(tuple(int(p) for p in patch), float(sigma_scale))


def window_starts(size: int, patch: int, step: float) -> list[int]:
    """Evenly spaced window starts covering [0, size) with a step of at most step * patch."""
    if size <= patch:
        return [0]
    n = math.ceil((size - patch) / (patch * step)) + 1
    return [int(round(i * (size - patch) / (n - 1))) for i in range(n)]


def window_slices(shape: Sequence[int], patch: Sequence[int], step: float) -> list[tuple[slice, ...]]:
    """Every window of an image of spatial ``shape`` (at least the patch along each axis)."""
    starts = itertools.product(*[window_starts(s, p, step) for s, p in zip(shape, patch)])
    return [tuple(slice(s, s + p) for s, p in zip(st, patch)) for st in starts]


def padding(shape: Sequence[int], patch: Sequence[int]) -> list[tuple[int, int]]:
    """(before, after) zero padding per spatial axis that makes an image at least a patch large."""
    return [(max(0, p - s) // 2, max(0, p - s) - max(0, p - s) // 2) for s, p in zip(shape, patch)]


def unpadded(shape: Sequence[int], pads: Sequence[tuple[int, int]]) -> tuple[slice, ...]:
    """The region of the padded image that is the original image of spatial ``shape``."""
    return tuple(slice(before, before + s) for (before, _), s in zip(pads, shape))


def mirror_flips(mirror_axes: Sequence[int], leading: int = 2) -> list[tuple[int, ...]]:
    """Every combination of the spatial ``mirror_axes`` to flip (the first, (), is no flip), as
    array axes of a batch with ``leading`` axes before the spatial ones."""
    axes = [a + leading for a in mirror_axes]
    return [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]


def accumulate_windows(image: Any, predict: Callable[[Any], Any], stack: Callable[[list], Any], patch_size: Sequence[int],
                       step: float, batch_size: int, logits: Any, weights: Any, gauss: Any,
                       progress: Callable[[int], None] | None = None) -> Any:
    """The one sliding-window loop of the torch and numpy paths: every window of ``image`` (C,
    *spatial, at least a patch large), ``batch_size`` at a time through ``predict`` (after
    ``stack``), its output weighted by ``gauss`` and summed into ``logits`` (K, *spatial) and
    ``weights`` (*spatial), both zeros of the caller's kind; returns ``logits / weights`` (in place)."""
    windows = window_slices(weights.shape, patch_size, step)
    for i in range(0, len(windows), batch_size):
        chunk = windows[i:i + batch_size]
        out = predict(stack([image[(slice(None),) + sl] for sl in chunk]))
        for o, sl in zip(out, chunk):
            logits[(slice(None),) + sl] += o * gauss
            weights[sl] += gauss
        if progress is not None:
            progress(len(chunk))
    logits /= weights
    return logits


def volume_or_slices(predict: Callable[[Any], Any], image: Any, dims: int, num_outputs: int,
                     empty: Callable[[tuple], Any], slices: Callable[[range], Iterable[int]] = lambda r: r) -> Any:
    """Logits (K, Z, Y, X) of an image (C, Z, Y, X) from ``predict`` (logits of an image of the
    network's dims): the whole volume for a 3D network, each slice for a 2D one, written into
    ``empty(shape)`` (torch or numpy alike); ``slices`` may wrap the slice numbers (progress)."""
    if dims == 3:
        return predict(image)
    out = empty((num_outputs,) + tuple(image.shape[1:]))
    for z in slices(range(image.shape[1])):
        out[:, z] = predict(image[:, z])
    return out


def mirrored_numpy(predictor: ArrayPredictor, mirror_axes: Sequence[int]) -> ArrayPredictor:
    """Test-time mirroring: the predictor averaged over every flip of ``mirror_axes``."""
    flips = mirror_flips(mirror_axes)

    def predict(x: np.ndarray) -> np.ndarray:
        total = None
        for flip in flips:
            out = predictor(np.ascontiguousarray(np.flip(x, flip)) if flip else x)
            out = np.flip(out, flip) if flip else out
            total = out.astype(np.float32) if total is None else total + out
        return total / len(flips)

    return predict


def sliding_window_numpy(image: np.ndarray, predictor: ArrayPredictor, patch_size: Sequence[int], num_outputs: int,
                         step: float = 0.5, batch_size: int = 1, mirror_axes: Sequence[int] = ()) -> np.ndarray:
    """Logits (K, *spatial) float32 for an image (C, *spatial): Gaussian-weighted windows,
    ``batch_size`` per call, mirrored over ``mirror_axes``; the same windows and weights as the
    torch path. An image smaller than the patch is zero-padded and the padding cropped off."""
    if image.ndim != len(patch_size) + 1:
        raise ValueError(f"image has shape {image.shape}; expected (C, *spatial) with {len(patch_size)} spatial dims")
    spatial = image.shape[1:]
    pads = padding(spatial, patch_size)
    image = np.pad(np.asarray(image, np.float32), [(0, 0)] + pads) if any(sum(p) for p in pads) else image
    logits = np.zeros((num_outputs, *image.shape[1:]), np.float32)
    weights = np.zeros(image.shape[1:], np.float32)
    predict = mirrored_numpy(predictor, mirror_axes) if mirror_axes else predictor
    logits = accumulate_windows(image, predict, lambda xs: np.stack(xs).astype(np.float32, copy=False), patch_size,
                                step, batch_size, logits, weights, gaussian(patch_size))
    return logits[(slice(None),) + unpadded(spatial, pads)]
