"""Estimated training memory of a U-Net (or of its encoder alone, for a case-level network with a
pooled head): what decides patch and batch size.

The estimate counts the activations stored for the backward pass (every conv - norm -
nonlinearity block keeps about three tensors of its output size; the decoder also keeps the
transposed-convolution output and the concatenation) plus weights, gradients and momentum.
``BYTES_PER_ACTIVATION`` converts counted elements to bytes under mixed precision. Its values
place the 8 GB limit where nnU-Net's planner places it (measured on 17 real dataset profiles,
benchmarks/plan_comparison.md): this count is 2.97x nnU-Net's feature-map count for every network
planned there, nnU-Net accepts up to 560 million of its elements for a 3D batch of 2 at 8 GB
(2.22 bytes each here, with a 31M-parameter network) and plans 2D 512^2 with batch 12 even with
16 classes (2.35 bytes). The networks nnU-Net plans for an 8 GB GPU, 3D 128^3 with batch 2 and
2D 512^2 with batch 12, are estimated at 6.5-8 GB (tests/autoplan/test_memory.py).
"""

from __future__ import annotations

import math
from typing import Sequence

from autounet.autoplan.plans import NetworkTopology

GIB = 1024**3
BYTES_PER_ACTIVATION = {2: 2.35, 3: 2.22}  # by network dimensionality (see above)
FIXED_OVERHEAD_BYTES = 0.6 * GIB  # framework context, cuDNN workspace, data on the device
BYTES_PER_PARAMETER = 16  # fp32 weights, gradients, momentum, and a spare copy


def _stage_voxels(patch_size: Sequence[int], net: NetworkTopology) -> list[int]:
    size = list(patch_size)
    out = []
    for stride in net.strides:
        size = [s // st for s, st in zip(size, stride)]
        out.append(math.prod(size))
    return out


def activation_elements(patch_size: Sequence[int], net: NetworkTopology) -> int:
    """Activation elements stored for backward, per sample."""
    vox = _stage_voxels(patch_size, net)
    f = net.features_per_stage
    total = 0
    for s in range(net.num_stages):
        total += 3 * net.convs_per_stage_encoder[s] * f[s] * vox[s]
        if s < net.num_stages - 1 and net.head == "segmentation":  # decoder stage s (the bottleneck has none)
            total += (3 * net.convs_per_stage_decoder[s] + 3) * f[s] * vox[s] + net.num_outputs * vox[s]
    return total


def parameter_count(net: NetworkTopology) -> int:
    """Convolution weights of encoder and decoder (norm parameters are negligible)."""
    n, cin = 0, net.input_channels
    for s in range(net.num_stages):
        k = math.prod(net.kernel_sizes[s])
        f = net.features_per_stage[s]
        n += k * cin * f + (net.convs_per_stage_encoder[s] - 1) * k * f * f
        cin = f
        if s < net.num_stages - 1 and net.head == "segmentation":
            up = net.features_per_stage[s + 1]
            n += math.prod(net.strides[s + 1]) * up * f  # transposed conv
            n += k * 2 * f * f + (net.convs_per_stage_decoder[s] - 1) * k * f * f + f * net.num_outputs
    if net.head == "pooled":
        n += net.features_per_stage[-1] * net.num_outputs  # the linear head after global pooling
    return n


def estimate_training_bytes(patch_size: Sequence[int], net: NetworkTopology, batch_size: int) -> float:
    """Estimated peak device memory of one training step, in bytes."""
    per_sample = activation_elements(patch_size, net) * BYTES_PER_ACTIVATION[net.dims]
    return FIXED_OVERHEAD_BYTES + parameter_count(net) * BYTES_PER_PARAMETER + batch_size * per_sample


def max_batch_size(patch_size: Sequence[int], net: NetworkTopology, memory_bytes: float) -> int:
    """The largest batch whose estimate fits ``memory_bytes`` (0 when not even one sample fits)."""
    fixed = estimate_training_bytes(patch_size, net, 0)
    per_sample = activation_elements(patch_size, net) * BYTES_PER_ACTIVATION[net.dims]
    return max(0, int((memory_bytes - fixed) // per_sample))
