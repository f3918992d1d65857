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
from autounet.inference.windows import volume_or_slices, window_batch


def cpu_bfloat16(device: torch.device, settings: PredictSettings) -> bool:
    """Whether the network predicts in bfloat16 on this device: a CPU, as ``settings`` rules."""
    return device.type == "cpu" and settings.cpu_bfloat16()


def for_cpu(network: torch.nn.Module, dims: int, bfloat16: bool) -> torch.nn.Module:
    """The network as :func:`predict_logits` runs it on a CPU: channels-last layout (per window
    1.2-1.3x faster in float32 for ISBI's 2D network, the same for the 3D example's), and in
    bfloat16 where ``bfloat16`` (2.0-3.3x faster than float32 on this project's AVX512-BF16
    machine; bfloat16 *autocast* gained 1.7-2.3x). Measured with benchmarks/bench_backends.py.
    Fold weights loaded later are cast on load. Changes ``network`` in place."""
    layout = torch.channels_last_3d if dims == 3 else torch.channels_last
    return network.to(torch.bfloat16 if bfloat16 else torch.float32).to(memory_format=layout)


def logits_to_probabilities(logits: torch.Tensor, regions: bool) -> torch.Tensor:
    """Softmax over classes, or independent sigmoids for region-based training. (K, ...) -> (K, ...)"""
    return torch.sigmoid(logits) if regions else torch.softmax(logits, 0)


def predict_logits(network: torch.nn.Module, data: np.ndarray, stage: StagePlan, device: torch.device,
                   settings: PredictSettings, show_progress: bool = False) -> torch.Tensor:
    """Logits (K, Z, Y, X) on the CPU for preprocessed data (C, Z, Y, X).

    A 2D configuration predicts each slice with 2D windows. ``settings.amp``: float16 autocast on
    CUDA; on a CPU the network's own dtype decides (bfloat16 or float32 after :func:`for_cpu`),
    and windows go in channels-last. Logits are accumulated in float32: on CUDA on the GPU,
    falling back to the CPU when the GPU runs out of memory.
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
    batch_size = window_batch(settings.window_batch, stage.batch_size)

    weight = next(network.parameters())
    layout = (torch.channels_last_3d if stage.network.dims == 3 else torch.channels_last) \
        if device.type == "cpu" else torch.contiguous_format

    def run(x: torch.Tensor) -> torch.Tensor:
        with amp:
            return network(x.to(weight.dtype, memory_format=layout))

    def windows(image_or_slice: torch.Tensor) -> torch.Tensor:
        return sliding_window_predict(image_or_slice, run, stage.patch_size, k, settings.step, batch_size,
                                      mirror_axes, accumulate).cpu()

    try:
        with torch.inference_mode():
            return volume_or_slices(windows, image, stage.network.dims, k,
                                    lambda shape: torch.zeros(shape, dtype=torch.float32),
                                    lambda r: progress(r, desc="slices", unit="slice", leave=False,
                                                       disable=not show_progress))
    finally:
        network.deep_supervision = was
