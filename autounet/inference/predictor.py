"""Run a network over a preprocessed array: 3D windows, or 2D windows slice by slice."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from tqdm import tqdm

from autounet.autoplan.plans import StagePlan
from autounet.inference.sliding_window import sliding_window_predict


def predict_logits(network: torch.nn.Module, data: np.ndarray, stage: StagePlan, device: torch.device,
                   mirror: bool = True, step_fraction: float = 0.5, batch_size: int | None = None,
                   show_progress: bool = False) -> torch.Tensor:
    """Logits (K, Z, Y, X) on the CPU for preprocessed data (C, Z, Y, X).

    A 2D configuration predicts each slice with 2D windows. Mixed precision on CUDA.
    """
    network.eval()
    was = getattr(network, "deep_supervision", False)
    network.deep_supervision = False
    amp = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else nullcontext()
    image = torch.from_numpy(np.array(data, dtype=np.float32)).to(device)  # a writable copy of the memmap
    k = stage.network.num_outputs
    mirror_axes = stage.mirror_axes if mirror else ()
    batch_size = batch_size or max(1, min(stage.batch_size, 8))

    def run(x: torch.Tensor) -> torch.Tensor:
        with amp:
            return network(x)

    try:
        with torch.inference_mode():
            if stage.network.dims == 3:
                return sliding_window_predict(image, run, stage.patch_size, k, step_fraction, batch_size,
                                              mirror_axes, "cpu").cpu()
            out = torch.zeros((k,) + tuple(image.shape[1:]), dtype=torch.float32)
            slices = tqdm(range(image.shape[1]), desc="slices", unit="slice", leave=False, disable=not show_progress)
            for z in slices:
                out[:, z] = sliding_window_predict(image[:, z], run, stage.patch_size, k, step_fraction, batch_size,
                                                   mirror_axes, "cpu").cpu()
            return out
    finally:
        network.deep_supervision = was
