"""An epoch's work: SGD steps on augmented batches, then the pseudo-Dice on validation patches."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from autounet.progress import progress

from autounet.autoplan.plans import Plans
from autounet.stopping import stop_point
from autounet.hardware import autocast_for
from autounet.postprocess.metrics import dice_from_counts
from autounet.training.batches import to_device
from autounet.training.distributed import all_reduce_sum
from autounet.training.state import Run


def train_epoch(run: Run, batches: Iterator, iterations: int, show_bar: bool) -> float:
    """``iterations`` SGD steps (mixed precision where the device has it); returns the mean loss."""
    run.network.train()
    losses = []
    bar = progress(range(iterations), desc=f"epoch {run.epoch}", unit="it", leave=False,
                   disable=not show_bar)  # a bar on a terminal, else a line every 10 s
    for _ in bar:
        x, y = to_device(next(batches), run.device)
        run.optimizer.zero_grad(set_to_none=True)
        with autocast_for(run.device, run.config.amp):
            loss = run.loss(run.network(x), y)
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.network.parameters(), run.config.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        losses.append(loss.detach().item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
        stop_point()  # a scheduler's SIGTERM during the step: the step is finished, then the fold stops
    return float(np.mean(losses))


def confusion(logits: torch.Tensor, target: torch.Tensor, plans: Plans) -> torch.Tensor:
    """(3, n_classes) TP/FP/FN of the full-resolution output on a batch (for the pseudo-Dice)."""
    valid = (target != plans.ignore_label) if plans.ignore_label is not None else torch.ones_like(target, dtype=torch.bool)
    if plans.regions is not None:
        pred = torch.sigmoid(logits.float()) > 0.5
        ref = torch.cat([torch.isin(target, torch.tensor(r, device=target.device)) for r in plans.regions], 1)
    else:
        k = logits.shape[1]
        labels = torch.arange(1, k, device=logits.device).view(1, -1, *([1] * (logits.ndim - 2)))
        pred = logits.argmax(1, keepdim=True) == labels
        ref = target == labels
    pred, ref = pred & valid, ref & valid
    axes = [0] + list(range(2, logits.ndim))
    tp = (pred & ref).sum(axes)
    return torch.stack([tp, pred.sum(axes) - tp, ref.sum(axes) - tp]).double()


def validation_epoch(run: Run, batches: Iterator) -> tuple[float, list[float]]:
    """Loss and per-class pseudo-Dice on validation patches (no augmentation), summed over ranks."""
    run.network.eval()
    totals = torch.zeros(2, dtype=torch.float64)
    counts = None
    with torch.no_grad():
        for _ in range(run.config.val_iterations_per_epoch):
            x, y = to_device(next(batches), run.device)
            with autocast_for(run.device, run.config.amp):
                out = run.network(x)
                loss = run.loss(out, y)
            full = out[0] if isinstance(out, (list, tuple)) else out
            c = confusion(full, y, run.setup.plans).cpu()
            counts = c if counts is None else counts + c
            totals += torch.tensor([loss.item(), 1.0], dtype=torch.float64)
    all_reduce_sum(totals, run.dist)
    all_reduce_sum(counts, run.dist)
    tp, fp, fn = counts
    dice = [dice_from_counts(float(a), float(b), float(c)) for a, b, c in zip(tp, fp, fn)]
    return float(totals[0] / max(totals[1], 1)), dice
