"""Segmentation losses: cross-entropy + soft Dice, BCE + soft Dice for regions, deep supervision.

Shapes: logits (B, K, *S) with S of 2 or 3 axes; targets (B, 1, *S) of integer labels (any
integer or float dtype holding whole numbers). Losses are computed in float32 whatever the
logits' dtype, with autocast switched off, so they are safe under mixed precision.

Voxels equal to ``ignore_label`` count for nothing: they are left out of the cross-entropy's
mean and both the probabilities and the one-hot target are zeroed there before the Dice sums.
If every voxel is ignored the loss is 0.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from autounet.autoplan.plans import Plans, StagePlan


def deep_supervision_weights(n: int) -> list[float]:
    """Weights of ``n`` outputs, finest first: 1, 1/2, 1/4, ..., the coarsest set to 0
    (it is too coarse to be a useful target), normalized to sum to 1. ``n = 1`` gives [1.0]."""
    if n < 1:
        raise ValueError(f"need at least one output, got {n}")
    w = [0.5**i for i in range(n)]
    if n > 1:
        w[-1] = 0.0
    total = sum(w)
    return [v / total for v in w]


def soft_dice(probs: torch.Tensor, onehot: torch.Tensor, batch_dice: bool, smooth: float) -> torch.Tensor:
    """Soft Dice per class (and per sample unless ``batch_dice``).

    probs, onehot : (B, C, *S), already zeroed where ignored.
    Returns (C,) with ``batch_dice`` (sums over batch and space), else (B, C) (sums over space).
    """
    axes = tuple(range(2, probs.ndim))
    if batch_dice:
        axes = (0,) + axes
    tp = (probs * onehot).sum(axes)
    fp = probs.sum(axes) - tp
    fn = onehot.sum(axes) - tp
    return (2 * tp + smooth) / torch.clamp(2 * tp + fp + fn + smooth, min=1e-8)


def _labels_and_mask(logits: torch.Tensor, target: torch.Tensor,
                     ignore_label: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels (B, *S) as int64 with ignored voxels set to 0, and the valid mask (B, *S) or None."""
    if target.ndim != logits.ndim or target.shape[1] != 1 or target.shape[2:] != logits.shape[2:] \
            or target.shape[0] != logits.shape[0]:
        raise ValueError(f"target must have shape (B, 1, *S) = {(logits.shape[0], 1, *logits.shape[2:])} "
                         f"to match logits {tuple(logits.shape)}, got {tuple(target.shape)}")
    labels = target[:, 0].long()
    if ignore_label is None:
        return labels, None
    valid = labels != ignore_label
    # The ignore label may be >= K; replace it so that one-hot encoding never indexes past K.
    return torch.where(valid, labels, torch.zeros_like(labels)), valid


def _masked_mean(values: torch.Tensor, valid: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``values`` (B, *S) over valid voxels; 0 when there are none."""
    if valid is None:
        return values.mean()
    return (values * valid).sum() / valid.sum().clamp(min=1)


class DiceCELoss(nn.Module):
    """Cross-entropy + (1 - mean soft Dice over the foreground classes 1..K-1).

    forward(logits (B, K, *S), target (B, 1, *S)) -> scalar float32; 0 is the minimum.
    batch_dice : Dice sums over batch and space (one Dice per class) rather than per sample.
    """

    def __init__(self, batch_dice: bool, ignore_label: int | None = None, smooth: float = 1e-5) -> None:
        super().__init__()
        self.batch_dice = batch_dice
        self.ignore_label = ignore_label
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] < 2:
            raise ValueError(f"DiceCELoss needs at least 2 classes (background + one), got {logits.shape[1]}")
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits.float()
            labels, valid = _labels_and_mask(logits, target, self.ignore_label)
            ce = _masked_mean(F.cross_entropy(logits, labels, reduction="none"), valid)
            probs = torch.softmax(logits, dim=1)
            onehot = torch.zeros_like(probs).scatter_(1, labels.unsqueeze(1), 1.0)
            if valid is not None:
                m = valid.unsqueeze(1).to(probs.dtype)
                probs, onehot = probs * m, onehot * m
            dice = soft_dice(probs[:, 1:], onehot[:, 1:], self.batch_dice, self.smooth)
            return ce + (1 - dice.mean())


class RegionDiceBCELoss(nn.Module):
    """BCE-with-logits + (1 - mean soft Dice over regions), for overlapping regions.

    Region r's target is "label is in ``regions[r]``"; its probability is sigmoid(logits[:, r]).
    forward(logits (B, R, *S), target (B, 1, *S) integer labels) -> scalar float32.
    """

    def __init__(self, regions: Sequence[tuple[int, ...]], batch_dice: bool, ignore_label: int | None = None,
                 smooth: float = 1e-5) -> None:
        super().__init__()
        if not regions or any(len(r) == 0 for r in regions):
            raise ValueError(f"regions must be a non-empty list of non-empty label tuples, got {regions}")
        self.regions = [tuple(int(v) for v in r) for r in regions]
        self.batch_dice = batch_dice
        self.ignore_label = ignore_label
        self.smooth = smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if logits.shape[1] != len(self.regions):
            raise ValueError(f"logits have {logits.shape[1]} channels but there are {len(self.regions)} regions")
        with torch.autocast(device_type=logits.device.type, enabled=False):
            logits = logits.float()
            labels, valid = _labels_and_mask(logits, target, self.ignore_label)
            region_target = torch.stack(
                [torch.isin(labels, torch.tensor(r, device=labels.device)) for r in self.regions], dim=1
            ).float()
            bce = F.binary_cross_entropy_with_logits(logits, region_target, reduction="none").mean(1)
            bce = _masked_mean(bce, valid)
            probs = torch.sigmoid(logits)
            if valid is not None:
                m = valid.unsqueeze(1).to(probs.dtype)
                probs, region_target = probs * m, region_target * m
            dice = soft_dice(probs, region_target, self.batch_dice, self.smooth)
            return bce + (1 - dice.mean())


def downsample_target(target: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Nearest-neighbour resize of a label map (B, 1, *S) to spatial ``size``; labels stay labels."""
    if tuple(target.shape[2:]) == tuple(size):
        return target
    resized = F.interpolate(target.float(), size=tuple(size), mode="nearest")
    return resized.to(target.dtype)


class DeepSupervisionLoss(nn.Module):
    """Weighted sum of ``loss`` over deep-supervision outputs.

    forward(outputs, target):
      outputs : list of logits (B, K, *S_i), finest first, one per weight;
                a bare tensor is taken as the full-resolution output alone (no deep supervision).
      target : (B, 1, *S_full) labels, downsampled (nearest) to each output's size;
               or a list with one target per output, used as is.
    Outputs with weight 0 are not evaluated, but stay in the graph (times zero) so that every
    parameter receives a gradient, as data-parallel training requires.
    """

    def __init__(self, loss: nn.Module, weights: Sequence[float]) -> None:
        super().__init__()
        self.loss = loss
        self.weights = [float(w) for w in weights]

    def forward(self, outputs: torch.Tensor | Sequence[torch.Tensor],
                target: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            return self.loss(outputs, target if isinstance(target, torch.Tensor) else target[0])
        if len(outputs) != len(self.weights):
            raise ValueError(f"got {len(outputs)} outputs for {len(self.weights)} deep-supervision weights")
        total, unused = None, None
        for i, (out, w) in enumerate(zip(outputs, self.weights)):
            if w == 0:
                unused = out.float().sum() * 0.0 if unused is None else unused + out.float().sum() * 0.0
                continue
            t = downsample_target(target, out.shape[2:]) if isinstance(target, torch.Tensor) else target[i]
            term = w * self.loss(out, t)
            total = term if total is None else total + term
        if total is None:
            raise ValueError("every deep-supervision weight is 0")
        return total if unused is None else total + unused


def build_loss(plans: Plans, stage: StagePlan, deep_supervision: bool) -> nn.Module:
    """Dice + CE (or Dice + BCE for regions), weighted over the deep-supervision outputs."""
    if plans.regions is not None:
        base: nn.Module = RegionDiceBCELoss(plans.regions, stage.batch_dice, plans.ignore_label)
    else:
        base = DiceCELoss(stage.batch_dice, plans.ignore_label)
    n = stage.network.num_stages - 1 if deep_supervision else 1
    return DeepSupervisionLoss(base, deep_supervision_weights(n))
