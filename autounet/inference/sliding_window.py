"""Gaussian-weighted sliding-window prediction over an image of any size.

The predictor is any callable mapping a batch of patches (B, C, *patch) to logits
(B, K, *patch), so the window logic can be tested with an analytic stand-in and no model.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np
import torch

Predictor = Callable[[torch.Tensor], torch.Tensor]


@lru_cache(maxsize=16)
def _gaussian_np(patch: tuple[int, ...], sigma_scale: float) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(p) - (p - 1) / 2 for p in patch], indexing="ij")
    g = np.exp(-sum((x / max(p * sigma_scale, 1e-6)) ** 2 / 2 for x, p in zip(grids, patch)))
    g = g / g.max()
    g[g == 0] = g[g > 0].min()  # never a zero weight: every voxel gets a defined value
    return g.astype(np.float32)


def gaussian_importance(patch: Sequence[int], sigma_scale: float = 1 / 8) -> torch.Tensor:
    """A Gaussian over the patch (max 1, sigma = patch * sigma_scale): centre voxels count most."""
    return torch.from_numpy(_gaussian_np(tuple(int(p) for p in patch), float(sigma_scale)))


def window_starts(size: int, patch: int, step: float) -> list[int]:
    """Evenly spaced window starts covering [0, size) with a step of at most step * patch."""
    if size <= patch:
        return [0]
    n = math.ceil((size - patch) / (patch * step)) + 1
    return [int(round(i * (size - patch) / (n - 1))) for i in range(n)]


def mirrored(predictor: Predictor, mirror_axes: Sequence[int]) -> Predictor:
    """Test-time mirroring: average the predictor over every flip of ``mirror_axes`` (spatial axes)."""
    axes = [a + 2 for a in mirror_axes]
    combos = [c for r in range(len(axes) + 1) for c in itertools.combinations(axes, r)]

    def predict(x: torch.Tensor) -> torch.Tensor:
        total = None
        for flip in combos:
            out = predictor(torch.flip(x, flip) if flip else x)
            out = torch.flip(out, flip) if flip else out
            total = out.float() if total is None else total + out.float()
        return total / len(combos)

    return predict


def sliding_window_predict(image: torch.Tensor, predictor: Predictor, patch_size: Sequence[int], num_outputs: int,
                           step: float = 0.5, batch_size: int = 1, mirror_axes: Sequence[int] = (),
                           accumulate_device: torch.device | str | None = None,
                           progress: Callable[[int], None] | None = None) -> torch.Tensor:
    """Predict logits (K, *spatial) for an image (C, *spatial) with overlapping windows.

    The image's spatial dims must equal ``len(patch_size)``; images smaller than the patch are
    zero-padded and the padding is cropped off again. Windows are weighted with a Gaussian and
    batched ``batch_size`` at a time; ``mirror_axes`` enables test-time mirroring.
    """
    dims = len(patch_size)
    if image.ndim != dims + 1:
        raise ValueError(f"image has shape {tuple(image.shape)}; expected (C, *spatial) with {dims} spatial dims")
    spatial = image.shape[1:]
    pad = [max(0, p - s) for p, s in zip(patch_size, spatial)]
    if any(pad):
        flat = []
        for p in reversed(pad):
            flat += [p // 2, p - p // 2]
        image = torch.nn.functional.pad(image, flat)
    padded = image.shape[1:]
    device = image.device
    acc_device = torch.device(accumulate_device) if accumulate_device is not None else device
    logits = torch.zeros((num_outputs, *padded), dtype=torch.float32, device=acc_device)
    weights = torch.zeros(padded, dtype=torch.float32, device=acc_device)
    gauss = gaussian_importance(patch_size).to(acc_device)
    predict = mirrored(predictor, mirror_axes) if mirror_axes else predictor
    starts = list(itertools.product(*[window_starts(s, p, step) for s, p in zip(padded, patch_size)]))
    for i in range(0, len(starts), batch_size):
        chunk = starts[i:i + batch_size]
        slices = [tuple(slice(s, s + p) for s, p in zip(st, patch_size)) for st in chunk]
        batch = torch.stack([image[(slice(None),) + sl] for sl in slices])
        out = predict(batch).to(acc_device, torch.float32)
        for o, sl in zip(out, slices):
            logits[(slice(None),) + sl] += o * gauss
            weights[sl] += gauss
        if progress is not None:
            progress(len(chunk))
    logits /= weights
    if any(pad):
        logits = logits[(slice(None),) + tuple(slice(p // 2, p // 2 + s) for p, s in zip(pad, spatial))]
    return logits
