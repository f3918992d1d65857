"""Prediction without torch: a configuration's folds run by ONNX Runtime or OpenVINO.

:class:`PortableFolds` answers prediction's questions (:class:`~autounet.inference.stage_model.
StageModel`) as the torch path's ``FoldEnsemble`` does: the same windows, Gaussian weights,
mirroring, softmax and fold average, in numpy. Its sessions come from an exported ``.onnx`` file
(:func:`load_onnx_model`, which imports neither torch nor anything that does) or from trained
checkpoints exported in memory (``predict --backend``; see :mod:`autounet.inference.source`).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from autounet.autoplan.plans import Plans, StagePlan
from autounet.errors import AutounetError
from autounet.inference.probabilities import average_probabilities, probabilities_from_logits
from autounet.inference.runtimes import Session, available, open_session, require
from autounet.inference.settings import ONNX_BACKENDS, PredictSettings
from autounet.inference.windows import sliding_window_numpy, volume_or_slices, window_batch
from autounet.model.onnx_format import METADATA_KEY, OnnxManifest, input_name, output_name

log = logging.getLogger("autounet.inference")


def predict_logits_numpy(session: Session, data: np.ndarray, stage: StagePlan, settings: PredictSettings
                         ) -> np.ndarray:
    """Logits (K, Z, Y, X) float32 for preprocessed data (C, Z, Y, X); 2D configurations slice by slice."""
    k = stage.network.num_outputs
    mirror_axes = stage.mirror_axes if settings.mirror else ()
    batch = window_batch(settings.window_batch, stage.batch_size)
    image = np.asarray(data, np.float32)

    def windows(x: np.ndarray) -> np.ndarray:
        return sliding_window_numpy(x, session, stage.patch_size, k, settings.step, batch, mirror_axes)

    return volume_or_slices(windows, image, stage.network.dims, k, lambda shape: np.empty(shape, np.float32))


class PortableFolds:
    """Every fold of a configuration as a runtime session; ``previous`` is a cascade's previous stage."""

    def __init__(self, configuration: str, plans: Plans, sessions: dict[str, Session], settings: PredictSettings,
                 previous: "PortableFolds | None" = None):
        self.configuration, self.plans, self.sessions = configuration, plans, sessions
        self.settings, self.previous = settings, previous

    @property
    def stage(self) -> StagePlan:
        return self.plans.configurations[self.configuration]

    def probabilities(self, data: np.ndarray) -> np.ndarray:
        """Mean probabilities over folds (K, z, y, x) for preprocessed data (C, z, y, x)."""
        regions = self.plans.regions_class_order is not None
        return average_probabilities(
            probabilities_from_logits(predict_logits_numpy(s, data, self.stage, self.settings), regions)
            for s in self.sessions.values())


def onnx_backend(settings: PredictSettings) -> str:
    """The runtime for an ONNX model: as asked, else OpenVINO when installed, else ONNX Runtime."""
    if settings.backend in ONNX_BACKENDS:
        return settings.backend
    if settings.backend == "torch":
        raise AutounetError("an ONNX model runs with --backend onnxruntime or openvino, not torch; "
                            "torch runs the trained checkpoints (-d DATASET or a model zip)")
    return "openvino" if available("openvino") else "onnxruntime"


def read_manifest(path: Path):
    """An ONNX model's graph (``onnx.ModelProto``) and its :class:`OnnxManifest`; AutounetError
    naming the file when it is not a readable autounet ONNX model."""
    onnx = require("onnx")
    try:  # autounet never writes external data: following a file's external-data paths could read anywhere
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 -- protobuf raises its own errors for damaged files
        raise AutounetError(f"{path}: not a readable ONNX file ({type(e).__name__}: {e})") from e
    external = [t.name for t in graph.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise AutounetError(f"{path}: tensors stored outside the file ({', '.join(external[:3])}"
                            f"{', ...' if len(external) > 3 else ''}); autounet's ONNX models hold every weight "
                            "inside, so this file was not written by autounet export_model")
    meta = {p.key: p.value for p in graph.metadata_props}
    try:
        manifest = OnnxManifest.from_json(json.loads(meta.get(METADATA_KEY, "null")), str(path))
    except json.JSONDecodeError as e:
        raise AutounetError(f"{path}: damaged autounet metadata ({e})") from e
    names = {i.name for i in graph.graph.input} | {o.name for o in graph.graph.output}
    wanted = {input_name(s) for s in manifest.stages} | {output_name(s, f) for s in manifest.stages
                                                          for f in manifest.folds}
    missing = sorted(wanted - names)
    if missing:
        raise AutounetError(f"{path}: the graph lacks {', '.join(missing)} that its metadata names")
    return graph, manifest


def load_onnx_model(path: Path, settings: PredictSettings) -> tuple[list[PortableFolds], OnnxManifest]:
    """An exported ``.onnx`` model's configurations, each fold a session of ``settings.backend``
    (see :func:`onnx_backend`), and its manifest (postprocessing, labels)."""
    settings.check_cpu_only(f"{path}: an ONNX model")
    if settings.int8:
        raise AutounetError(f"{path}: --int8 calibrates on the dataset's preprocessed training cases, which an ONNX "
                            "file does not hold: predict with -d DATASET, or without --int8")
    onnx = require("onnx")
    graph, manifest = read_manifest(path)
    backend, bfloat16 = onnx_backend(settings), settings.cpu_bfloat16()
    extractor = onnx.utils.Extractor(graph)
    built: dict[str, PortableFolds] = {}

    def stage(name: str) -> PortableFolds:
        if name not in built:
            sessions = {f: open_session(extractor.extract_model([input_name(name)], [output_name(name, f)])
                                        .SerializeToString(), backend, bfloat16) for f in manifest.folds}
            plans = manifest.plans[name]
            previous = plans.configurations[name].previous_stage
            built[name] = PortableFolds(name, plans, sessions, settings, stage(previous) if previous else None)
        return built[name]

    models = [stage(c) for c in manifest.configurations]
    log.info("%s: %s, folds %s, %s%s", Path(path).name, " + ".join(manifest.configurations), " ".join(manifest.folds),
             backend, " (bfloat16)" if bfloat16 and backend == "openvino" else "")
    return models, manifest
