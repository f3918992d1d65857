"""Run a network over a preprocessed array: 3D windows, or 2D windows slice by slice."""

from __future__ import annotations

import logging

import numpy as np
import torch
from autounet.progress import progress

from autounet.autoplan.plans import StagePlan
from autounet.hardware import autocast_for
from autounet.inference.settings import PredictSettings
from autounet.inference.sliding_window import sliding_window_predict

MAX_WINDOW_BATCH = 8  # windows per forward pass by default: the plan's batch size, at most this


def predict_logits(network: torch.nn.Module, data: np.ndarray, stage: StagePlan, device: torch.device,
                   settings: PredictSettings, show_progress: bool = False) -> torch.Tensor:
    """Logits (K, Z, Y, X) on the CPU for preprocessed data (C, Z, Y, X).

    A 2D configuration predicts each slice with 2D windows. ``settings.amp``: float16 on CUDA. A
    CPU predicts in float32 — bfloat16 autocast, which speeds up training steps 2.4x there, made
    sliding-window inference 2x slower in benchmarks/bench_inference.py. On CUDA the windows are
    accumulated on the GPU, falling back to the CPU when the GPU runs out of memory.
    """
    if device.type == "cuda":
        try:
            return _predict(network, data, stage, device, settings, show_progress, device)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            logging.getLogger("autounet.inference").info("GPU memory too small to accumulate; using the CPU")
    return _predict(network, data, stage, device, settings, show_progress, torch.device("cpu"))


def _predict(network: torch.nn.Module, data: np.ndarray, stage: StagePlan, device: torch.device,
             settings: PredictSettings, show_progress: bool, accumulate: torch.device) -> torch.Tensor:
    network.eval()
    was = getattr(network, "deep_supervision", False)
    network.deep_supervision = False
    amp = autocast_for(device, settings.amp and device.type == "cuda")
    image = torch.from_numpy(np.array(data, dtype=np.float32)).to(device)  # a writable copy of the memmap
    k = stage.network.num_outputs
    mirror_axes = stage.mirror_axes if settings.mirror else ()
    batch_size = settings.window_batch or max(1, min(stage.batch_size, MAX_WINDOW_BATCH))

    def run(x: torch.Tensor) -> torch.Tensor:
        with amp:
            return network(x)

    def windows(image_or_slice: torch.Tensor) -> torch.Tensor:
        return sliding_window_predict(image_or_slice, run, stage.patch_size, k, settings.step, batch_size,
                                      mirror_axes, accumulate).cpu()

    try:
        with torch.inference_mode():
            if stage.network.dims == 3:
                return windows(image)
            out = torch.zeros((k,) + tuple(image.shape[1:]), dtype=torch.float32)
            slices = progress(range(image.shape[1]), desc="slices", unit="slice", leave=False, disable=not show_progress)
            for z in slices:
                out[:, z] = windows(image[:, z])
            return out
    finally:
        network.deep_supervision = was
