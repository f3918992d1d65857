"""Intensity normalization per channel, as the plan chose it."""

from __future__ import annotations

import numpy as np

from autounet.autoplan.plans import ChannelNormalization


def normalize_channel(x: np.ndarray, norm: ChannelNormalization, mask: np.ndarray | None) -> np.ndarray:
    """Normalize one channel (Z, Y, X) float32 in place and return it.

    mask : the non-zero region, used when ``norm.use_nonzero_mask`` (outside it becomes 0).
    """
    if norm.scheme == "ct":
        np.clip(x, norm.clip_low, norm.clip_high, out=x)
        x -= np.float32(norm.mean)
        x /= np.float32(max(norm.std or 0.0, 1e-8))
    elif norm.scheme == "zscore":
        if norm.use_nonzero_mask and mask is not None:
            values = x[mask]
            mean, std = (values.mean(), values.std()) if values.size else (0.0, 1.0)
            x -= np.float32(mean)
            x /= np.float32(max(std, 1e-8))
            x[~mask] = 0
        else:
            mean, std = x.mean(dtype=np.float64), x.std(dtype=np.float64)
            x -= np.float32(mean)
            x /= np.float32(max(std, 1e-8))
    elif norm.scheme == "rescale_to_0_1":
        lo, hi = x.min(), x.max()
        x -= lo
        x /= np.float32(max(hi - lo, 1e-8))
    elif norm.scheme == "rgb_to_0_1":
        x /= np.float32(255.0)
    elif norm.scheme != "noNorm":
        raise ValueError(f"unknown normalization scheme '{norm.scheme}'")
    return x


def normalize(image: np.ndarray, norms: tuple[ChannelNormalization, ...], mask: np.ndarray | None) -> np.ndarray:
    """Normalize every channel of ``image`` (C, Z, Y, X) float32 in place."""
    if image.shape[0] != len(norms):
        raise ValueError(f"image has {image.shape[0]} channels, the plan normalizes {len(norms)}")
    for c, norm in enumerate(norms):
        normalize_channel(image[c], norm, mask)
    return image
