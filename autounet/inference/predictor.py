"""Run a network over a preprocessed array: 3D windows, or 2D windows slice by slice."""

from __future__ import annotations

import logging

import numpy as np
import torch
from tqdm import tqdm

from autounet.autoplan.plans import StagePlan
from autounet.hardware import autocast_for
from autounet.inference.sliding_window import sliding_window_predict


def predict_logits(network: torch.nn.Module, data: np.ndarray, stage: StagePlan, device: torch.device,
                   mirror: bool = True, step_fraction: float = 0.5, batch_size: int | None = None,
                   show_progress: bool = False, amp: bool = True) -> torch.Tensor:
    """Logits (K, Z, Y, X) on the CPU for preprocessed data (C, Z, Y, X).

    A 2D configuration predicts each slice with 2D windows. ``amp``: float16 on CUDA. A CPU
    predicts in float32 — bfloat16 autocast, which speeds up training steps 2.4x there, made
    sliding-window inference 2x slower in benchmarks/bench_inference.py. On CUDA the windows are
    accumulated on the GPU, falling back to the CPU when the GPU runs out of memory.
    """
    if device.type == "cuda":
        try:
            return _predict(network, data, stage, device, mirror, step_fraction, batch_size, show_progress, amp, device)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            logging.getLogger("autounet.inference").info("GPU memory too small to accumulate; using the CPU")
    return _predict(network, data, stage, device, mirror, step_fraction, batch_size, show_progress, amp,
                    torch.device("cpu"))


def _predict(network, data, stage, device, mirror, step_fraction, batch_size, show_progress, amp_enabled,
             accumulate) -> torch.Tensor:
    network.eval()
    was = getattr(network, "deep_supervision", False)
    network.deep_supervision = False
    amp = autocast_for(device, amp_enabled and device.type == "cuda")
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
                                              mirror_axes, accumulate).cpu()
            out = torch.zeros((k,) + tuple(image.shape[1:]), dtype=torch.float32)
            slices = tqdm(range(image.shape[1]), desc="slices", unit="slice", leave=False, disable=not show_progress)
            for z in slices:
                out[:, z] = sliding_window_predict(image[:, z], run, stage.patch_size, k, step_fraction, batch_size,
                                                   mirror_axes, accumulate).cpu()
            return out
    finally:
        network.deep_supervision = was


def with_previous_stage(data: np.ndarray, previous: np.ndarray | None, num_classes: int) -> np.ndarray:
    """Cascade input: image channels plus the one-hot previous-stage labels 1..num_classes."""
    if previous is None:
        return data
    onehot = np.stack([(previous == c) for c in range(1, num_classes + 1)]).astype(np.float32)
    return np.concatenate([np.asarray(data, np.float32), onehot])
