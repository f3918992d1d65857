"""bfloat16 on CPUs that compute it natively: the same masks as float32, training's network untouched."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import torch

from autounet import api
from autounet.inference import settings as predict_settings
from autounet.inference.folds import FoldEnsemble
from autounet.inference.settings import PredictSettings
from autounet.model.trained import load_trained_model
from autounet.workspace import dataset_paths
from tests.inference.test_onnx import FP32, exported  # noqa: F401 -- the shared trained model


def test_bfloat16_on_the_cpu_gives_the_float32_masks(exported, tmp_path, monkeypatch):
    monkeypatch.setattr(predict_settings, "cpu_has_native_bf16", lambda: True)
    settings = PredictSettings(**{**FP32, "amp": True, "backend": "torch"})
    report = api.predict(exported["inputs"], tmp_path / "bf16", dataset=exported["raw"],
                         configurations=["3d_fullres"], root=exported["root"], settings=settings)
    assert not report.failed
    a, b = (sitk.GetArrayFromImage(sitk.ReadImage(str(f / "new.nii.gz"))) for f in (exported["torch"], tmp_path / "bf16"))
    assert (a == b).mean() > 0.99
    with np.load(exported["torch"] / "new.npz") as p, np.load(tmp_path / "bf16" / "new.npz") as q:
        assert np.abs(p["probabilities"].astype(np.float32) - q["probabilities"].astype(np.float32)).max() < 0.1


def test_a_network_handed_in_for_validation_is_copied_not_cast(exported, monkeypatch):
    monkeypatch.setattr(predict_settings, "cpu_has_native_bf16", lambda: True)
    paths = dataset_paths(exported["root"], exported["raw"].name)
    model = load_trained_model(paths.trained, "3d_fullres", ["0"])
    network = model.network(torch.device("cpu"))
    ensemble = FoldEnsemble(model, PredictSettings(device="cpu"), network=network)
    assert next(ensemble.network.parameters()).dtype == torch.bfloat16
    assert next(network.parameters()).dtype == torch.float32
    no_amp = FoldEnsemble(model, PredictSettings(device="cpu", amp=False))
    assert next(no_amp.network.parameters()).dtype == torch.float32
