"""Trained networks as ONNX: one fold in memory (for the ONNX Runtime and OpenVINO backends), or
a whole model written to one ``.onnx`` file with its plans (see :mod:`autounet.model.onnx_format`).

The graphs are float32 with a dynamic batch and the patch fixed, exported with torch's
TorchScript-based exporter at opset 17; the ``onnx`` package (``pip install 'autounet[onnx]'``)
is needed only to write the file's metadata.
"""

from __future__ import annotations

import inspect
import io
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

from autounet.version import __version__
from autounet.autoplan.plans import StagePlan
from autounet.errors import WorkspaceError
from autounet.io.atomic import atomic_path, read_json, write_json
from autounet.model.archive import with_previous_stages
from autounet.model.build import build_network
from autounet.model.onnx_format import METADATA_KEY, OPSET, OnnxManifest, input_name, output_name
from autounet.model.trained import TrainedModel, load_trained_model
from autounet.workspace import ResultsPaths


def require_onnx():
    """The ``onnx`` package, or an error saying how to install it."""
    try:
        import onnx
    except ImportError as e:
        raise WorkspaceError("ONNX export needs the onnx package: pip install 'autounet[onnx]'") from e
    return onnx


class _Folds(torch.nn.Module):
    """Every fold of every stage in one module: one input per stage, one output per fold."""

    def __init__(self, models: Sequence[TrainedModel]):
        super().__init__()
        self.stages = torch.nn.ModuleList()
        for model in models:
            nets = torch.nn.ModuleList()
            for weights in model.fold_weights.values():
                net = build_network(model.stage.network, deep_supervision=False)
                net.load_state_dict(weights)
                nets.append(net.eval())
            self.stages.append(nets)

    def forward(self, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(net(x) for x, nets in zip(images, self.stages) for net in nets)


def _example(stage: StagePlan) -> torch.Tensor:
    return torch.zeros((1, stage.network.input_channels, *stage.patch_size))


def _export(module: torch.nn.Module, examples: tuple[torch.Tensor, ...], target: Any, inputs: list[str],
            outputs: list[str], spatial: bool = False) -> None:
    dims = examples[0].ndim - 2
    axes = {0: "batch", **({2 + i: f"size{i}" for i in range(dims)} if spatial else {})}
    batch = {name: axes for name in inputs + outputs}
    legacy = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about the network's shape checks, exporter deprecations
        torch.onnx.export(module, examples, target, input_names=inputs, output_names=outputs, dynamic_axes=batch,
                          opset_version=OPSET, do_constant_folding=True, **legacy)


def network_onnx(network: torch.nn.Module, stage: StagePlan, any_size: bool = False) -> bytes:
    """One network (float32, weights as loaded, no deep supervision) as ONNX bytes with the input
    ``image`` (batch, channels, *patch) and the output ``logits``; ``any_size``: the spatial
    sizes dynamic too (multiples of the network's downsampling), as int8 calibration needs."""
    buffer = io.BytesIO()
    was = getattr(network, "deep_supervision", False)
    network.deep_supervision = False
    try:
        _export(network.float().eval(), (_example(stage),), buffer, ["image"], ["logits"], any_size)
    finally:
        network.deep_supervision = was
    return buffer.getvalue()


def export_onnx(results: ResultsPaths, configurations: Sequence[str], out: Path, folds: Sequence[str] | None = None,
                checkpoint: str = "final", dataset_json: Path | None = None,
                postprocessing: Path | None = None) -> Path:
    """Write the configurations' folds (and cascades' previous stages) to one ONNX file with its
    :class:`OnnxManifest` in the metadata, and the manifest beside it as ``out`` with ``.json``."""
    onnx = require_onnx()
    folds = [str(f) for f in folds] if folds else results.trained_folds(configurations[0], checkpoint)
    if not folds:
        raise WorkspaceError(f"{results.configuration(configurations[0])}: no trained fold to export")
    stages = with_previous_stages(results, configurations, folds[0], checkpoint)
    models = [load_trained_model(results, s, folds, checkpoint) for s in stages]
    if any(m.plans.case_task is not None for m in models):
        raise WorkspaceError("ONNX export covers segmentation models; export a case-level model as a zip "
                             "(autounet export_model DATASET -o model.zip)")
    rules = read_json(postprocessing)["rules"] if postprocessing is not None else None
    dataset = read_json(dataset_json) if dataset_json is not None and Path(dataset_json).is_file() else None
    manifest = OnnxManifest(tuple(configurations), tuple(stages), tuple(folds),
                            {m.configuration: m.plans for m in models}, rules, dataset, __version__)
    inputs = [input_name(s) for s in stages]
    outputs = [output_name(s, f) for s in stages for f in folds]
    out = Path(out)
    buffer = io.BytesIO()
    _export(_Folds(models), tuple(_example(m.stage) for m in models), buffer, inputs, outputs)
    graph = onnx.load_from_string(buffer.getvalue())
    graph.metadata_props.add(key=METADATA_KEY, value=manifest.dumps())
    graph.producer_name, graph.doc_string = "autounet", f"autounet {__version__} model: {', '.join(configurations)}"
    with atomic_path(out) as tmp:
        onnx.save_model(graph, str(tmp))
    write_json(out.with_suffix(".json"), manifest.to_json())
    return out
