"""A trained model loaded once for prediction: its networks, its task, its postprocessing, and
what the run manifest says about it. `autounet predict` and :class:`autounet.Predictor` both
start here."""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from autounet.autoplan.plans import Plans
from autounet.errors import WorkspaceError
from autounet.inference.run import Postprocess
from autounet.inference.settings import ONNX_BACKENDS, PredictSettings
from autounet.inference.tasks import PredictionTask, SegmentationPrediction, task_for
from autounet.workspace import resolve_dataset

if TYPE_CHECKING:  # torch only where checkpoints load: an ONNX model predicts without it
    from autounet.inference.source import ModelSource


@dataclass
class LoadedModel:
    """A model ready to predict.

    networks : what the task's ``predict`` takes (stage models, or a case-level model's folds).
    source : where the checkpoints came from (None for an ONNX file).
    files : the files that hold the weights (checkpoints, or the exported zip or ONNX file).
    description : dataset, model file, configurations, folds, checkpoint, postprocessing.
    """

    plans: Plans
    task: PredictionTask
    networks: Any
    source: ModelSource | None
    postprocess: Postprocess | None
    settings: PredictSettings
    files: tuple[Path, ...]
    description: dict[str, Any]

    def backend(self) -> str:
        """What runs the networks: torch, onnxruntime or openvino."""
        if self.source is None:
            from autounet.inference.portable import onnx_backend

            return onnx_backend(self.settings)
        return self.settings.runtime if self.settings.runtime in ONNX_BACKENDS else "torch"

    def device(self) -> str:
        """The device the networks run on."""
        if self.backend() != "torch":
            return "cpu"
        from autounet.hardware import resolve_device

        return str(resolve_device(self.settings.device))

    def precision(self) -> str:
        """float32, or the lower precision the backend computes in on this machine."""
        backend, device = self.backend(), self.device()
        if self.settings.int8:
            return "int8"
        if backend == "torch" and device.startswith("cuda") and self.settings.amp:
            return "float16"
        if backend in ("torch", "openvino") and device == "cpu" and self.settings.cpu_bfloat16():
            return "bfloat16"
        return "float32"

    def sha256(self) -> str:
        """One hash over the weight files, in order: what identifies the model that predicted."""
        digest = hashlib.sha256()
        for path in self.files:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        return digest.hexdigest()


def load_model(dataset: str | Path | None = None, model: Path | None = None,
               configurations: Sequence[str] | None = None, folds: Sequence[str] | None = None,
               checkpoint: str = "final", settings: PredictSettings | None = None, postprocessing: bool = True,
               root: Path | None = None) -> LoadedModel:
    """Load a dataset's trained model (the ``configurations`` given, else the chosen best
    configuration or ensemble with its postprocessing) or an exported ``model`` (.zip or .onnx)."""
    settings = settings or PredictSettings()
    if model is None and dataset is None:
        raise WorkspaceError("say which model to use: -d DATASET (trained in this workspace) or -m MODEL.zip")
    if model is not None and Path(model).suffix.lower() == ".onnx":
        if configurations or folds or checkpoint != "final":
            raise WorkspaceError(f"{model}: an ONNX model predicts with the configurations and folds it was exported "
                                 "with; leave out -c/-f/-chk, or export again with them")
        return _load_onnx(Path(model), settings, postprocessing)
    return _load_checkpoints(dataset, model, configurations, folds, checkpoint, settings, postprocessing, root)


def _load_onnx(model: Path, settings: PredictSettings, postprocessing: bool) -> LoadedModel:
    """An exported .onnx model: no torch is imported on this path."""
    from autounet.inference.portable import load_onnx_model
    from autounet.postprocess.tasks import postprocessor_for

    models, manifest = load_onnx_model(model, settings)
    post = postprocessor_for(models[0].plans, manifest.postprocessing if postprocessing else None, model)
    description = {"model_file": str(model), "configurations": list(manifest.configurations),
                   "folds": list(manifest.folds), "checkpoint": None,
                   "postprocessing": bool(manifest.postprocessing) and postprocessing}
    return LoadedModel(models[0].plans, SegmentationPrediction(), models, None, post, settings, (model,), description)


def _load_checkpoints(dataset, model: Path | None, configurations, folds, checkpoint: str, settings: PredictSettings,
                      postprocessing: bool, root: Path | None) -> LoadedModel:
    """A dataset's checkpoints, or those of an exported model zip (unpacked while they load)."""
    from autounet.inference.source import archived_model, dataset_model
    from autounet.postprocess.selection import rules_in
    from autounet.postprocess.tasks import postprocessor_for

    paths = resolve_dataset(dataset, root) if model is None else None
    with (archived_model(model, configurations, folds, checkpoint) if model is not None else
          nullcontext(dataset_model(paths, configurations, folds, checkpoint))) as source:
        plans = source.plans()
        rules = rules_in(source.postprocessing) if postprocessing and source.postprocessing else None
        post = postprocessor_for(plans, rules, source.postprocessing)
        task = task_for(plans)
        networks = task.load(source, settings)
        files = (Path(model),) if model is not None else _checkpoint_files(source, plans)
    description = {"dataset": paths.name if paths is not None else None,
                   "model_file": str(model) if model is not None else None,
                   "configurations": list(source.configurations),
                   "folds": source.fold_names(source.configurations[0]),
                   "checkpoint": checkpoint, "postprocessing": rules is not None}
    return LoadedModel(plans, task, networks, source, post, settings, files, description)


def _checkpoint_files(source: ModelSource, plans: Plans | None) -> tuple[Path, ...]:
    """Every checkpoint the model reads: each configuration's folds and a cascade's earlier stages."""
    names = list(source.configurations)
    for name in names:
        earlier = plans.configurations[name].previous_stage if plans and name in plans.configurations else None
        if earlier and earlier not in names:
            names.append(earlier)
    return tuple(source.results.fold(c, f).checkpoint(source.checkpoint)
                 for c in names for f in source.fold_names(c))
