"""Data-parallel training with torch.distributed (launched by ``torchrun``).

NCCL on GPUs, gloo on CPUs. Every rank starts from the same seed, so the replicas begin
identical and DistributedDataParallel keeps them so by averaging gradients.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun described in the environment (no-op when alone)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def split_batch(batch_size: int, info: DistInfo) -> int:
    """This rank's share of the global batch (the first ranks take the remainder)."""
    if batch_size < info.world_size:
        raise ValueError(f"batch size {batch_size} is smaller than the {info.world_size} processes")
    return batch_size // info.world_size + (1 if info.rank < batch_size % info.world_size else 0)


def all_reduce_sum(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum a tensor over ranks (in place; identity when not distributed)."""
    if info.enabled:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def check_replicas_identical(module: torch.nn.Module, info: DistInfo) -> float:
    """Compare a checksum of the parameters across ranks; raise if the replicas diverged."""
    with torch.no_grad():
        total = sum(p.double().sum() + (p.double() ** 2).sum() for p in module.parameters())
    value = torch.tensor([float(total)], dtype=torch.float64)
    if info.enabled:
        gathered = [torch.zeros_like(value) for _ in range(info.world_size)]
        dist.all_gather(gathered, value)
        values = [float(g) for g in gathered]
        if max(values) - min(values) > 1e-9 * max(1.0, abs(values[0])):
            raise RuntimeError(f"data-parallel replicas diverged: parameter checksums {values}")
    return float(value)
