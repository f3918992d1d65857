"""Gaussian-weighted sliding-window prediction over an image of any size, in torch.

The predictor is any callable mapping a batch of patches (B, C, *patch) to logits
(B, K, *patch), so the window logic can be tested with an analytic stand-in and no model. The
windows and their weights come from :mod:`autounet.inference.windows`, which the torch-free
(ONNX) path shares.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from autounet.inference.windows import accumulate_windows, gaussian, mirror_flips, padding, unpadded, window_starts

Predictor = Callable[[torch.Tensor], torch.Tensor]
__all__ = ["Predictor", "gaussian_importance", "mirrored", "sliding_window_predict", "window_starts"]


def gaussian_importance(patch: Sequence[int], sigma_scale: float = 1 / 8) -> torch.Tensor:
    """A Gaussian over the patch (max 1, sigma = patch * sigma_scale): centre voxels count most."""
    return torch.from_numpy(gaussian(patch, sigma_scale).copy())


def mirrored(predictor: Predictor, mirror_axes: Sequence[int]) -> Predictor:
    """Test-time mirroring: average the predictor over every flip of ``mirror_axes`` (spatial axes)."""
    flips = mirror_flips(mirror_axes)

    def predict(x: torch.Tensor) -> torch.Tensor:
        total = None
        for flip in flips:
            out = predictor(torch.flip(x, flip) if flip else x)
            out = torch.flip(out, flip) if flip else out
            total = out.float() if total is None else total + out.float()
        return total / len(flips)

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
    pads = padding(spatial, patch_size)
    if any(sum(p) for p in pads):
        image = torch.nn.functional.pad(image, [n for p in reversed(pads) for n in p])
    padded = image.shape[1:]
    acc_device = torch.device(accumulate_device) if accumulate_device is not None else image.device
    logits = torch.zeros((num_outputs, *padded), dtype=torch.float32, device=acc_device)
    weights = torch.zeros(padded, dtype=torch.float32, device=acc_device)
    predict = mirrored(predictor, mirror_axes) if mirror_axes else predictor
    logits = accumulate_windows(image, lambda x: predict(x).to(acc_device, torch.float32), torch.stack, patch_size,
                                step, batch_size, logits, weights, gaussian_importance(patch_size).to(acc_device), progress)
    return logits[(slice(None),) + unpadded(spatial, pads)]
