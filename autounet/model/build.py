"""The network a topology describes, by its head: a U-Net for segmentation, an encoder with a
pooled linear head for a case-level task. One table, so that a new head is one new row."""

from __future__ import annotations

from torch import nn

from autounet.autoplan.plans import NetworkTopology
from autounet.model.classifier import CaseNetwork
from autounet.model.network import UNet

HEADS = {"segmentation": lambda t, deep_supervision: UNet(t, deep_supervision),
         "pooled": lambda t, deep_supervision: CaseNetwork(t)}


def build_network(topology: NetworkTopology, deep_supervision: bool = True) -> nn.Module:
    """The network of ``topology`` with fresh He-initialised weights (``deep_supervision`` only
    matters for a U-Net); a ValueError names an unknown head."""
    if topology.head not in HEADS:
        raise ValueError(f"unknown network head {topology.head!r}; known: {', '.join(HEADS)}")
    return HEADS[topology.head](topology, deep_supervision)
