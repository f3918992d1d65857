"""int8 quantization (``predict --int8``): which layers become 8-bit, and the result stays close to
float32 on windows like the calibration's."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from autounet.inference.quantize import quantize_int8  # noqa: E402


def _three_convolutions(rng: np.random.Generator) -> bytes:
    """image (1, 1, H, W) -> conv 3x3 -> LeakyReLU -> conv 3x3 -> LeakyReLU -> conv 1x1 -> logits."""
    shapes = {"w0": (8, 1, 3, 3), "w1": (8, 8, 3, 3), "w2": (2, 8, 1, 1)}
    weights = [numpy_helper.from_array((rng.normal(0, 0.4, s)).astype(np.float32), n) for n, s in shapes.items()]
    biases = [numpy_helper.from_array(rng.normal(0, 0.1, s[0]).astype(np.float32), f"b{i}")
              for i, s in enumerate(shapes.values())]
    nodes = [helper.make_node("Conv", ["image", "w0", "b0"], ["c0"], "first", pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c0"], ["a0"], alpha=0.01),
             helper.make_node("Conv", ["a0", "w1", "b1"], ["c1"], "middle", pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c1"], ["a1"], alpha=0.01),
             helper.make_node("Conv", ["a1", "w2", "b2"], ["logits"], "last")]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 1, "y", "x"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 2, "y", "x"])],
                              weights + biases)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _run(model: bytes, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]


def test_the_first_and_last_convolutions_stay_float32_and_the_rest_is_close():
    rng = np.random.default_rng(0)
    model = _three_convolutions(rng)
    windows = [rng.normal(0, 1, (1, 1, 24, 24)).astype(np.float32) for _ in range(3)]
    quantized = quantize_int8(model, windows)
    graph = onnx.load_from_string(quantized).graph
    produced_by = {out: node for node in graph.node for out in node.output}
    convolutions = {node.name: node for node in graph.node if node.op_type == "Conv"}
    assert set(convolutions) == {"first", "middle", "last"}

    def dequantized(node) -> list[bool]:  # per input: read through a DequantizeLinear
        return [i in produced_by and produced_by[i].op_type == "DequantizeLinear" for i in node.input[:2]]

    assert dequantized(convolutions["first"]) == [False, False]  # reads the image in float32
    assert dequantized(convolutions["last"]) == [False, False]  # writes the logits in float32
    assert dequantized(convolutions["middle"]) == [True, True]  # 8-bit activations and weights
    assert quantize_int8(model, windows) == quantized  # the same windows give the same network
    x = rng.normal(0, 1, (1, 1, 40, 32)).astype(np.float32)  # another size than the calibration's
    reference, result = _run(model, x), _run(quantized, x)
    assert result.shape == reference.shape
    assert np.abs(result - reference).max() < 0.08 * np.abs(reference).max()  # 3% here
    assert (result.argmax(1) == reference.argmax(1)).mean() > 0.97


def _largest_int8_weight(model: bytes) -> int:
    return max(int(np.abs(numpy_helper.to_array(t).astype(int)).max())
               for t in onnx.load_from_string(model).graph.initializer if t.data_type == TensorProto.INT8)


def test_cpus_whose_8_bit_dot_products_overflow_get_7_bit_weights():
    rng = np.random.default_rng(3)
    model = _three_convolutions(rng)
    windows = [rng.normal(0, 1, (1, 1, 16, 16)).astype(np.float32)]
    assert _largest_int8_weight(quantize_int8(model, windows)) > 64
    assert _largest_int8_weight(quantize_int8(model, windows, seven_bit_weights=True)) <= 64


def test_an_int8_network_is_calibrated_once_then_read_from_the_cache(tmp_path, monkeypatch, caplog):
    from autounet.inference import quantize

    rng = np.random.default_rng(1)
    model = _three_convolutions(rng)
    windows = [rng.normal(0, 1, (1, 1, 16, 16)).astype(np.float32) for _ in range(2)]
    cache = tmp_path / "cache" / "int8"
    first = quantize.cached_int8(model, windows, cache)
    assert [p.name for p in cache.iterdir()] == [f"{quantize.int8_key(model, windows)}.onnx"]
    calls = []
    monkeypatch.setattr(quantize, "quantize_int8", lambda *a: calls.append(a) or b"")
    with caplog.at_level("INFO", logger="autounet.inference"):
        assert quantize.cached_int8(model, windows, cache) == first and not calls
    assert "int8 network from the cache" in caplog.text
    other = [windows[0] + 1, windows[1]]  # other calibration data: another network
    assert quantize.int8_key(model, other) != quantize.int8_key(model, windows)
    quantize.cached_int8(model, other, cache)
    assert len(calls) == 1 and len(list(cache.iterdir())) == 2
    monkeypatch.setattr(quantize, "CACHED_NETWORKS", 1)  # only the most recently used is kept
    quantize.cached_int8(model, [windows[0] + 2, windows[1]], cache)
    assert len(list(cache.iterdir())) == 1


def test_a_cache_that_cannot_be_written_is_named_and_prediction_goes_on(tmp_path, caplog):
    from autounet.inference import quantize

    rng = np.random.default_rng(2)
    model = _three_convolutions(rng)
    windows = [rng.normal(0, 1, (1, 1, 16, 16)).astype(np.float32)]
    blocked = tmp_path / "a file"
    blocked.write_text("not a folder")
    with caplog.at_level("WARNING", logger="autounet.inference"):
        quantized = quantize.cached_int8(model, windows, blocked / "int8")
    assert quantized == quantize.quantize_int8(model, windows)
    assert "could not keep the int8 network in" in caplog.text and "a file" in caplog.text
