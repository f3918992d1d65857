"""8-bit integer networks for ONNX Runtime on the CPU (``predict --int8``).

A fold's ONNX graph is quantized statically: the convolutions' weights to int8 per output channel,
their inputs and outputs to uint8 with ranges measured (percentiles) on calibration windows taken
from the fold's own training cases (preprocessed), so the same model and data always give the same
quantized network. The first and last convolutions, normalization, activations and the softmax
stay in float32 (ONNX Runtime's QDQ format). On CPUs without native bfloat16 this is the fast way
to predict (benchmarks/README.md measures its speed and checks the Dice on trained models).
Torch-free.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np

from autounet.errors import AutounetError
from autounet.io.atomic import atomic_path, read_json
from autounet.inference.runtimes import require
from autounet.inference.windows import padding
from autounet.workspace import PreprocessedCase, preprocessed_case_ids

log = logging.getLogger("autounet.inference")

# what quantize_int8 does, part of the cache key: change it whenever quantize_int8 changes
RECIPE = "int8 2: Conv and ConvTranspose but the first and last, QDQ uint8/int8 per channel, percentile 99.999"
CACHED_NETWORKS = 24  # int8 networks kept in the user's cache, the most recently used
CALIBRATION_CASES = 8  # windows to measure activation ranges on: one from each of this many cases
CALIBRATION_VOXELS, MIN_DEEPEST = 2**16, 4  # see calibration_patch


def calibration_patch(patch: Sequence[int], strides: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """The size of calibration windows: the patch, its largest axes halved while it holds more
    than CALIBRATION_VOXELS voxels and the deepest stage keeps at least MIN_DEEPEST voxels along
    the axis. Every layer's activations of one window are held at once (3.4 GB for ISBI's
    512 x 512 network, 0.9 GB at 256 x 256); a window much smaller than the patch gives the
    deep layers other ranges (the 3D example at 24^3 instead of 56 x 48 x 56 lost 0.12 Dice)."""
    factors = [int(np.prod([s[axis] for s in strides])) for axis in range(len(patch))]
    size = [int(p) for p in patch]
    while int(np.prod(size)) > CALIBRATION_VOXELS:
        halvable = [a for a in range(len(size)) if (size[a] // 2) // factors[a] >= MIN_DEEPEST]
        if not halvable:
            break
        axis = max(halvable, key=lambda a: size[a])
        size[axis] = (size[axis] // 2) // factors[axis] * factors[axis]
    return tuple(size)


def fold_training_cases(splits: Path, fold: str) -> list[str] | None:
    """The training cases of ``fold`` in a splits.json (None for fold "all", or without splits)."""
    if fold == "all" or not Path(splits).is_file():
        return None
    folds = read_json(splits)
    return list(folds[int(fold)]["train"]) if fold.isdigit() and int(fold) < len(folds) else None


def calibration_windows(folder: Path, patch: Sequence[int], dims: int, among: Sequence[str] | None = None,
                        cases: int = CALIBRATION_CASES) -> list[np.ndarray]:
    """Windows (1, C, *patch) float32 of preprocessed cases in ``folder`` (those ``among`` a fold's
    training cases, when given): each case's centre (its middle slice for a 2D network),
    zero-padded to ``patch``; the first ``cases`` case ids in sorted order, so the choice is
    deterministic."""
    allowed = set(among) if among is not None else None
    ids = [c for c in preprocessed_case_ids(folder) if allowed is None or c in allowed][:cases]
    if not ids:
        raise AutounetError(f"{folder}: no preprocessed training case to calibrate an int8 network on; "
                            "run plan_and_preprocess first, or predict without --int8")
    windows = []
    for case_id in ids:
        data = np.load(PreprocessedCase(Path(folder), case_id).data, mmap_mode="r")  # (C, Z, Y, X)
        if dims == 2:
            data = data[:, data.shape[1] // 2]
        spatial = data.shape[1:]
        starts = [max(0, (s - p) // 2) for s, p in zip(spatial, patch)]
        window = np.asarray(data[(slice(None),) + tuple(slice(a, a + p) for a, p in zip(starts, patch))], np.float32)
        pads = padding(window.shape[1:], patch)
        windows.append(np.pad(window, [(0, 0)] + pads)[None])
    return windows


def quantize_int8(model: bytes, windows: Sequence[np.ndarray], seven_bit_weights: bool = False) -> bytes:
    """The ONNX graph ``model`` (one input, spatial sizes dynamic: :func:`network_onnx` with
    ``any_size``) with its convolutions quantized to int8 (QDQ, weights per output channel),
    activation ranges calibrated on ``windows`` (of :func:`calibration_patch`'s size).

    What is quantized was chosen by the Dice of trained models against float32 (benchmarks/README.md):
    only the convolutions and transposed convolutions, not the first (it reads the image) nor the
    last (it writes the logits); normalizations, activations, additions and concatenations stay
    float32. Each tensor's range is symmetric about 0, the 99.999th percentile of its magnitude
    over the windows: with the largest magnitude (min/max calibration, 5x faster to calibrate) the
    trained 3D example's Dice fell by 0.007 for one class. ONNX Runtime's histograms are slow
    (about 10 s a 512 x 512 window), which :func:`cached_int8` pays once.
    ``seven_bit_weights``: for CPUs whose 8-bit dot products can overflow
    (:func:`autounet.hardware.cpu_int8_may_saturate`)."""
    onnx = require("onnx")
    require("onnxruntime")
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnx.load_from_string(model).graph.input[0].name

    class Windows(CalibrationDataReader):
        """The windows, read one at a time (``set_range``): each window's activations are folded
        into the histograms before the next is run, so memory holds one window's, not all."""

        def __init__(self) -> None:
            self.remaining = iter(())

        def __len__(self) -> int:
            return len(windows)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.remaining = iter(windows[start_index:end_index])

        def get_next(self) -> dict | None:
            x = next(self.remaining, None)
            return None if x is None else {name: x}

    with tempfile.TemporaryDirectory(prefix="autounet-int8-") as tmp:
        source, prepared, quantized = (Path(tmp) / n for n in ("model.onnx", "prepared.onnx", "int8.onnx"))
        source.write_bytes(model)
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)  # sizes are symbolic
        convolutions = [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type == "Conv"]
        with contextlib.redirect_stdout(io.StringIO()):  # its calibrator prints a line per window
            quantize_static(str(prepared), str(quantized), Windows(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=seven_bit_weights,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            op_types_to_quantize=["Conv", "ConvTranspose"],
                            nodes_to_exclude=[convolutions[0], convolutions[-1]],
                            calibrate_method=CalibrationMethod.Percentile,
                            extra_options={"CalibPercentile": 99.999, "CalibStridedMinMax": 1})
        return quantized.read_bytes()


def int8_key(model: bytes, windows: Sequence[np.ndarray], seven_bit_weights: bool = False) -> str:
    """What an int8 network is derived from: the float32 graph, the calibration windows, the recipe
    (weights of 7 or 8 bits) and ONNX Runtime's version (its quantizer)."""
    import onnxruntime

    digest = hashlib.sha256(f"{RECIPE}|{seven_bit_weights}|onnxruntime {onnxruntime.__version__}|".encode())
    digest.update(model)
    for window in windows:
        digest.update(f"|{window.shape}|".encode())
        digest.update(np.ascontiguousarray(window, np.float32).tobytes())
    return digest.hexdigest()[:32]


def cached_int8(model: bytes, windows: Sequence[np.ndarray], cache: Path | None,
                seven_bit_weights: bool = False) -> bytes:
    """:func:`quantize_int8`'s network, kept in the folder ``cache`` (None: not kept) under
    :func:`int8_key`, so that predicting with the same fold again skips calibrating (measured
    20 s a fold for the 3D example, 65 s for ISBI's 512 x 512 network). The
    :data:`CACHED_NETWORKS` most recently used are kept; a cache that cannot be written is
    warned about and prediction goes on."""
    if cache is None:
        return quantize_int8(model, windows, seven_bit_weights)
    path = Path(cache) / f"{int8_key(model, windows, seven_bit_weights)}.onnx"
    try:
        quantized = path.read_bytes()
    except OSError:
        quantized = None
    if quantized is not None:
        with contextlib.suppress(OSError):
            os.utime(path)  # used now: pruned last
        log.info("int8 network from the cache: %s", path)
        return quantized
    quantized = quantize_int8(model, windows, seven_bit_weights)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(quantized)
        kept = sorted(Path(cache).glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in kept[CACHED_NETWORKS:]:
            old.unlink(missing_ok=True)
    except OSError as e:
        log.warning("could not keep the int8 network in %s (it will be calibrated again next time): %s", cache, e)
    return quantized
