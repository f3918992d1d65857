"""ONNX export and the torch-free backends: the exported model predicts what torch predicts, on a
case whose geometry exercises every step of preprocessing and its inverse, without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autounet import api
from autounet.errors import AutounetError
from autounet.inference.settings import PredictSettings
from autounet.training.config import TrainingConfig
from tests.inference.test_predict import ROTATION, _blobs, _oracle_dataset, _write

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
BACKENDS = ["onnxruntime"] + (["openvino"] if __import__("importlib").util.find_spec("openvino") else [])
FP32 = dict(device="cpu", amp=False, processes=0, save_probabilities=True)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict:
    """A tiny model trained (two folds, a few iterations) on anisotropic volumes whose coarse axis
    is last (so the plan transposes), exported to ONNX, and a new rotated, differently spaced case."""
    tmp = tmp_path_factory.mktemp("onnx")
    raw = _oracle_dataset(tmp)
    plans = api.plan_and_preprocess(raw, root=tmp, processes=1)
    assert plans.transpose_forward != (0, 1, 2)
    cfg = TrainingConfig(epochs=1, iterations_per_epoch=3, val_iterations_per_epoch=1, num_workers=0,
                         validation=PredictSettings(mirror=False, processes=0))
    for fold in (0, 1):
        api.train(raw, "3d_fullres", fold, root=tmp, device="cpu", config=cfg)
    model = api.export_model(raw, tmp / "model.onnx", configurations=["3d_fullres"], root=tmp)
    inputs = tmp / "in"
    inputs.mkdir()
    seg = np.zeros((45, 33, 11), np.uint8)
    seg[2:43, 2:31] = _blobs((41, 29, 11), np.random.default_rng(9))
    noise = np.random.default_rng(1).normal(0, 20, seg.shape)
    _write((seg * 100.0 + noise).astype(np.float32), inputs / "new_0000.nii.gz", (3.1, 0.85, 0.75),
           (5.0, 6.0, 7.0), ROTATION)
    torch_out = tmp / "torch"
    report = api.predict(inputs, torch_out, dataset=raw, configurations=["3d_fullres"], root=tmp,
                         settings=PredictSettings(**FP32, backend="torch"))
    assert not report.failed
    return {"raw": raw, "root": tmp, "model": model, "inputs": inputs, "torch": torch_out}


def _mask(folder: Path) -> sitk.Image:
    return sitk.ReadImage(str(folder / "new.nii.gz"))


def _same_prediction(torch_folder: Path, other: Path) -> None:
    """Masks agree on at least 99.99% of voxels, in the same geometry; probabilities within 1e-3."""
    a, b = _mask(torch_folder), _mask(other)
    assert (b.GetSize(), b.GetSpacing(), b.GetOrigin(), b.GetDirection()) == \
        (a.GetSize(), a.GetSpacing(), a.GetOrigin(), a.GetDirection())
    agreement = (sitk.GetArrayFromImage(a) == sitk.GetArrayFromImage(b)).mean()
    assert agreement >= 0.9999
    with np.load(torch_folder / "new.npz") as p, np.load(other / "new.npz") as q:
        assert np.abs(p["probabilities"].astype(np.float32) - q["probabilities"].astype(np.float32)).max() < 1e-3


def test_the_onnx_file_carries_the_plans_in_its_metadata_and_beside_it(exported):
    graph = onnx.load(str(exported["model"]))
    meta = json.loads({p.key: p.value for p in graph.metadata_props}["autounet"])
    beside = json.loads(exported["model"].with_suffix(".json").read_text())
    assert meta == beside
    assert meta["configurations"] == ["3d_fullres"] and meta["folds"] == ["0", "1"]
    plans = meta["plans"]["3d_fullres"]
    stage = plans["configurations"]["3d_fullres"]
    assert plans["transpose_forward"] != [0, 1, 2] and stage["spacing"] and stage["patch_size"]
    assert plans["normalization"] and stage["mirror_axes"] is not None
    assert [i.name for i in graph.graph.input] == ["image:3d_fullres"]
    assert [o.name for o in graph.graph.output] == ["logits:3d_fullres:0", "logits:3d_fullres:1"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_onnx_model_predicts_what_torch_predicts(exported, tmp_path, backend):
    out = tmp_path / backend
    report = api.predict(exported["inputs"], out, model=exported["model"],
                         settings=PredictSettings(**FP32, backend=backend))
    assert not report.failed
    _same_prediction(exported["torch"], out)


def test_checkpoints_run_by_onnxruntime_predict_what_torch_predicts(exported, tmp_path):
    out = tmp_path / "ort"
    report = api.predict(exported["inputs"], out, dataset=exported["raw"], configurations=["3d_fullres"],
                         root=exported["root"], settings=PredictSettings(**FP32, backend="onnxruntime"))
    assert not report.failed
    _same_prediction(exported["torch"], out)


def test_int8_checkpoints_predict_close_to_float32_and_need_the_training_data(exported, tmp_path, monkeypatch,
                                                                              caplog):
    from autounet.inference.quantize import calibration_patch

    monkeypatch.setenv("AUTOUNET_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "int8"
    report = api.predict(exported["inputs"], out, dataset=exported["raw"], configurations=["3d_fullres"],
                         root=exported["root"], settings=PredictSettings(**{**FP32, "save_probabilities": False},
                                                                         int8=True), report=tmp_path / "run.json")
    assert not report.failed
    a, b = _mask(exported["torch"]), _mask(out)
    assert (b.GetSize(), b.GetSpacing(), b.GetDirection()) == (a.GetSize(), a.GetSpacing(), a.GetDirection())
    assert (sitk.GetArrayFromImage(a) == sitk.GetArrayFromImage(b)).mean() > 0.95  # 8 bits, not the same arithmetic
    assert json.loads((tmp_path / "run.json").read_text())["precision"] == "int8"
    assert len(list((tmp_path / "cache" / "int8").glob("*.onnx"))) == 2  # one network per fold, kept
    with caplog.at_level("INFO", logger="autounet.inference"):  # a second run reads them: the same masks
        api.predict(exported["inputs"], tmp_path / "again", dataset=exported["raw"], configurations=["3d_fullres"],
                    root=exported["root"], settings=PredictSettings(**{**FP32, "save_probabilities": False}, int8=True))
    assert caplog.text.count("int8 network from the cache") == 2
    assert sitk.GetArrayFromImage(_mask(tmp_path / "again")).tobytes() == sitk.GetArrayFromImage(b).tobytes()
    with pytest.raises(AutounetError, match="--int8 calibrates on the dataset's preprocessed training cases"):
        api.predict(exported["inputs"], tmp_path / "x", model=exported["model"], settings=PredictSettings(int8=True))
    with pytest.raises(ValueError, match="--int8 runs with ONNX Runtime"):
        PredictSettings(int8=True, backend="openvino")
    isbi = ((1, 1),) + ((2, 2),) * 6  # 512 x 512, 64x downsampled: halved to 256 x 256 (4 x 4 deepest)
    assert calibration_patch((512, 512), isbi) == (256, 256)
    assert calibration_patch((56, 48, 56), ((1, 1, 1),) + ((2, 2, 2),) * 3) == (56, 48, 56)  # 3 deepest: kept


def test_the_onnx_model_predicts_without_torch(exported, tmp_path):
    """A stand-in `torch` package that fails on import comes first on the path, for the worker too."""
    blocker = tmp_path / "blocked" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('torch is not installed here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(blocker.parent), str(Path.cwd())]))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "autounet.cli", "predict", "-i", str(exported["inputs"]), "-o",
                           str(out), "-m", str(exported["model"]), "--backend", "onnxruntime", "--no-amp",
                           "--save-probabilities", "-p", "1"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    _same_prediction(exported["torch"], out)


def test_a_file_that_is_not_an_autounet_onnx_model_is_named(exported, tmp_path):
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(exported["model"].read_bytes()[:5000])
    with pytest.raises(AutounetError, match="damaged.onnx: not a readable ONNX file"):
        api.predict(exported["inputs"], tmp_path / "o1", model=damaged, settings=PredictSettings(**FP32))
    foreign = onnx.load(str(exported["model"]))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    with pytest.raises(AutounetError, match="foreign.onnx: not an autounet ONNX model"):
        api.predict(exported["inputs"], tmp_path / "o2", model=tmp_path / "foreign.onnx",
                    settings=PredictSettings(**FP32))
    assert not (tmp_path / "o1").exists() or not any((tmp_path / "o1").iterdir())


def test_external_data_is_never_followed(exported, tmp_path):
    """onnx.load follows a file's external-data paths (CVE-2024-27318 in onnx 1.15 escaped the
    model's folder); autounet never writes external data, so a file that has some is refused."""
    from onnx.external_data_helper import convert_model_to_external_data

    model = onnx.load(str(exported["model"]))
    convert_model_to_external_data(model, all_tensors_to_one_file=True, location="../weights.bin", size_threshold=0)
    hostile = tmp_path / "sub" / "hostile.onnx"
    hostile.parent.mkdir()
    hostile.write_bytes(model.SerializeToString())  # the tensors now point outside; the data is not even there
    with pytest.raises(AutounetError, match="hostile.onnx: tensors stored outside the file"):
        api.predict(exported["inputs"], tmp_path / "out", model=hostile, settings=PredictSettings(**FP32))


@pytest.mark.parametrize("damage, message", [
    (lambda m: m["plans"]["3d_fullres"].update(labels=[]), "'labels' must be an object"),
    (lambda m: m["plans"]["3d_fullres"]["configurations"]["3d_fullres"].update(previous_stage="3d_fullres"),
     "the previous stages of 3d_fullres form a cycle")], ids=["labels-list", "previous-stage-cycle"])
def test_hostile_metadata_is_a_clear_error(exported, tmp_path, damage, message):
    """"labels": [] was an AttributeError, a previous_stage cycle a RecursionError."""
    model = onnx.load(str(exported["model"]))
    meta = {p.key: p for p in model.metadata_props}["autounet"]
    manifest = json.loads(meta.value)
    damage(manifest)
    meta.value = json.dumps(manifest)
    onnx.save(model, str(tmp_path / "hostile.onnx"))
    with pytest.raises(AutounetError, match=message):
        api.predict(exported["inputs"], tmp_path / "out", model=tmp_path / "hostile.onnx",
                    settings=PredictSettings(**FP32))


def test_a_missing_runtime_says_how_to_install_it(exported, tmp_path, monkeypatch):
    import importlib

    real = importlib.import_module
    monkeypatch.setattr(importlib, "import_module",
                        lambda name, *a: (_ for _ in ()).throw(ImportError(name)) if name == "openvino" else real(name, *a))
    with pytest.raises(AutounetError, match=r"pip install 'autounet\[openvino\]'"):
        api.predict(exported["inputs"], tmp_path / "out", model=exported["model"],
                    settings=PredictSettings(**FP32, backend="openvino"))


def test_an_onnx_model_refuses_the_torch_backend_and_a_gpu(exported, tmp_path):
    with pytest.raises(AutounetError, match="--backend onnxruntime or openvino"):
        api.predict(exported["inputs"], tmp_path / "o", model=exported["model"],
                    settings=PredictSettings(**FP32 | {"backend": "torch"}))
    with pytest.raises(AutounetError, match="runs on the CPU"):
        api.predict(exported["inputs"], tmp_path / "o", model=exported["model"],
                    settings=PredictSettings(**FP32 | {"device": "cuda"}))


def test_export_refuses_to_overwrite_the_json_beside_and_a_mismatched_name(exported, tmp_path):
    raw, root = exported["raw"], exported["root"]
    (tmp_path / "m.json").write_text("a file of the user's")
    with pytest.raises(AutounetError, match=r"m\.json: exists"):
        api.export_model(raw, tmp_path / "m.onnx", configurations=["3d_fullres"], root=root)
    assert (tmp_path / "m.json").read_text() == "a file of the user's" and not (tmp_path / "m.onnx").exists()
    with pytest.raises(AutounetError, match="written to a .onnx file"):
        api.export_model(raw, tmp_path / "m.zip", configurations=["3d_fullres"], root=root, format="onnx")
    assert not (tmp_path / "m.zip").exists()


def test_an_onnx_model_refuses_a_choice_of_folds_it_cannot_make(exported, tmp_path):
    with pytest.raises(AutounetError, match="exported with"):
        api.predict(exported["inputs"], tmp_path / "o", model=exported["model"], folds=["0"],
                    settings=PredictSettings(**FP32))
