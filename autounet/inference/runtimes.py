"""ONNX runtimes that run one network's windows on the CPU without torch: ONNX Runtime and OpenVINO.

Each is imported only when asked for, and a missing one is named with the command that installs
it. A runtime session is a plain function from a batch of windows (B, C, *patch) float32 to their
logits (B, K, *patch) float32, which :func:`autounet.inference.windows.sliding_window_numpy` takes.

Precision: ONNX Runtime computes in float32. OpenVINO computes in bfloat16 when asked for
(autounet asks on CPUs with native bf16, unless ``--no-amp``), else in float32 (set explicitly:
OpenVINO's own default on such CPUs is bfloat16).
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Callable

import numpy as np

from autounet.errors import AutounetError
from autounet.hardware import cpu_cores
from autounet.inference.settings import ONNX_BACKENDS

Session = Callable[[np.ndarray], np.ndarray]


def require(package: str):
    """Import an optional package, or fail with how to install it."""
    try:
        return importlib.import_module(package)
    except ImportError as e:
        extra = "openvino" if package == "openvino" else "onnx"
        raise AutounetError(f"the {package} backend needs the {package} package, which is not installed: "
                            f"pip install 'autounet[{extra}]'") from e


def available(backend: str) -> bool:
    """Whether a backend's package can be imported (torch counts too)."""
    return importlib.util.find_spec(backend) is not None


def _onnxruntime(model: bytes, threads: int) -> Session:
    ort = require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: np.ascontiguousarray(x, np.float32)})[0]


def _openvino(model: bytes, threads: int, bfloat16: bool) -> Session:
    ov = require("openvino")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(model), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "bf16" if bfloat16 else "f32",
        "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        result = request.infer({0: np.ascontiguousarray(x, np.float32)})
        return np.array(result[compiled.output(0)], np.float32)  # a copy: the request reuses its buffer

    return run


def open_session(model: bytes, backend: str, bfloat16: bool = False, threads: int | None = None) -> Session:
    """A function running one network (ONNX bytes with one input and one output) on the CPU.

    bfloat16 : let OpenVINO compute in bfloat16 (ignored by ONNX Runtime, which has no bf16 kernels).
    threads : intra-op threads (default: the cores this process may use)."""
    threads = threads or cpu_cores()
    if backend == "onnxruntime":
        return _onnxruntime(model, threads)
    if backend == "openvino":
        return _openvino(model, threads, bfloat16)
    raise AutounetError(f"unknown ONNX backend {backend!r}; choose one of {', '.join(ONNX_BACKENDS)}")
