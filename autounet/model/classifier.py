"""The case-level network: the U-Net's encoder, global average pooling and a linear head.

Built from a ``NetworkTopology`` with ``head="pooled"`` alone (the encoder's stages, blocks,
kernels, strides and normalization as described there), so that inference rebuilds it without
any planning or training code. Input (B, C, Y, X) or (B, C, Z, Y, X) of any size the strides
allow; output (B, num_outputs): logits of each class or target, or standardized values.
"""

from __future__ import annotations

import torch
from torch import nn

from autounet.autoplan.plans import NetworkTopology
from autounet.model.network import init_weights, encoder_stem


class CaseNetwork(nn.Module):
    """Encoder -> global average pooling -> linear head (see the module docstring)."""

    def __init__(self, topology: NetworkTopology) -> None:
        super().__init__()
        if topology.head != "pooled" or topology.dims not in (2, 3) or topology.num_stages < 1:
            raise ValueError(f"invalid case-level topology: head {topology.head!r}, dims {topology.dims}, "
                             f"{topology.num_stages} stage(s)")
        self.topology = topology
        self.deep_supervision = False  # one output; kept for the interface the U-Net shares
        self.stem, self.encoder = encoder_stem(topology)
        self.head = nn.Linear(topology.features_per_stage[-1], topology.num_outputs)
        self.apply(init_weights)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.topology
        if x.ndim != t.dims + 2 or x.shape[1] != t.input_channels:
            raise ValueError(f"expected input of shape (B, {t.input_channels}, {t.dims} spatial axes), "
                             f"got {tuple(x.shape)}")
        h = self.stem(x)
        for stage in self.encoder:
            h = stage(h)
        return self.head(torch.flatten(h.mean(dim=tuple(range(2, h.ndim))), 1))
