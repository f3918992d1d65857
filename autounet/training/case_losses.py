"""Losses of case-level tasks; targets come as (B, K) float: the class value in column 0
(classification), 0/1 per target (multi-label), or standardized values (regression)."""

from __future__ import annotations

import torch
from torch import nn

from autounet.autoplan.plans import CaseTaskPlan


class CaseLoss(nn.Module):
    """The plan's loss (``CaseTaskPlan.loss``) on logits (B, K) and targets (B, K)."""

    def __init__(self, plan: CaseTaskPlan) -> None:
        super().__init__()
        self.kind = plan.loss
        weights = torch.tensor(plan.class_weights, dtype=torch.float32) if plan.class_weights else None
        if self.kind == "cross_entropy":
            self.loss: nn.Module = nn.CrossEntropyLoss()
        elif self.kind == "binary_cross_entropy":
            self.loss = nn.BCEWithLogitsLoss(pos_weight=weights)
        elif self.kind == "smooth_l1":
            self.loss = nn.SmoothL1Loss()
        else:
            raise ValueError(f"unknown case-level loss {self.kind!r}")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        if self.kind == "cross_entropy":
            return self.loss(logits, target[:, 0].long())
        return self.loss(logits, target.float())
