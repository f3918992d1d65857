"""Prediction of new images: geometry, inverse preprocessing, bad inputs, portable models, ensembles."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autounet import api
from autounet.errors import AutounetError
from autounet.inference.cases import find_inputs
from autounet.inference.folds import FoldEnsemble
from autounet.inference.run import predict
from autounet.inference.settings import PredictSettings
from autounet.model.trained import TrainedModel
from autounet.io.dataset_json import write_dataset_json
from autounet.training.config import TrainingConfig
from autounet.model.build import build_network

ROTATION = (0.0, -1.0, 0.0, 0.8, 0.0, 0.6, -0.6, 0.0, 0.8)  # a proper rotation, far from identity


@pytest.fixture(scope="module")
def trained_3d(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny anisotropic 3D model (2 channels), trained for a few iterations on fold 0 and 1."""
    tmp = tmp_path_factory.mktemp("trained")
    raw = api.make_example_dataset(tmp / "raw" / "Dataset001_Tiny3D", dims=3, cases=6, channels=2,
                                   anisotropic=True, shape=(10, 24, 24), test_cases=2)
    api.plan_and_preprocess(raw, root=tmp, processes=1)
    cfg = TrainingConfig(epochs=1, iterations_per_epoch=2, val_iterations_per_epoch=1, num_workers=0,
                         validation=PredictSettings(mirror=False, save_probabilities=True, processes=0))
    for fold in (0, 1):
        api.train(raw, "3d_fullres", fold, root=tmp, device="cpu", config=cfg)
    return raw, tmp


def _write(arr: np.ndarray, path: Path, spacing, origin, direction) -> None:
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing(spacing)
    img.SetOrigin(origin)
    img.SetDirection(direction)
    sitk.WriteImage(img, str(path))


def test_mask_has_exactly_the_input_geometry(trained_3d, tmp_path):
    raw, root = trained_3d
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(0)
    for c in range(2):  # a new shape, odd spacing, offset origin, rotated axes
        _write(rng.normal(100, 20, (13, 31, 27)).astype(np.float32), inputs / f"odd_{c:04d}.nii.gz",
               (0.7, 0.9, 3.3), (12.5, -40.0, 7.25), ROTATION)
    report = api.predict(inputs, tmp_path / "out", dataset=raw, configurations=["3d_fullres"], root=root,
                         settings=PredictSettings(device="cpu"))
    assert not report.failed
    ref = sitk.ReadImage(str(inputs / "odd_0000.nii.gz"))
    out = sitk.ReadImage(str(tmp_path / "out" / "odd.nii.gz"))
    assert out.GetSize() == ref.GetSize()
    assert out.GetSpacing() == ref.GetSpacing()
    assert out.GetOrigin() == ref.GetOrigin()
    assert out.GetDirection() == ref.GetDirection()
    assert set(np.unique(sitk.GetArrayFromImage(out))) <= {0, 1, 2}


def _oracle_dataset(root: Path) -> Path:
    """Anisotropic volumes whose intensity is 100 x label (channel 'noNorm'), coarse axis last."""
    raw = root / "raw" / "Dataset005_Oracle"
    rng = np.random.default_rng(3)
    for i in range(5):
        shape = tuple(int(v) for v in rng.integers((30, 34, 9), (40, 44, 13)))
        seg = _blobs(shape, rng)
        sp = (float(rng.uniform(0.7, 0.9)), float(rng.uniform(0.7, 0.9)), float(rng.uniform(2.8, 3.4)))
        for folder, arr in (("imagesTr", seg * 100.0), ("labelsTr", seg)):
            (raw / folder).mkdir(parents=True, exist_ok=True)
            name = f"c{i}_0000.nii.gz" if folder == "imagesTr" else f"c{i}.nii.gz"
            _write(arr.astype(np.float32 if folder == "imagesTr" else np.uint8), raw / folder / name, sp[::-1],
                   (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    write_dataset_json(raw, ["noNorm"], {"background": 0, "a": 1, "b": 2}, 5, ".nii.gz", raw.name)
    return raw


def _blobs(shape, rng) -> np.ndarray:
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    c = rng.uniform(-0.2, 0.2, 3)
    seg = np.zeros(shape, np.uint8)
    seg[((z - c[0]) / 0.7) ** 2 + ((y - c[1]) / 0.6) ** 2 + ((x - c[2]) / 0.8) ** 2 < 1] = 1
    seg[((z - c[0]) / 0.4) ** 2 + ((y - c[1] - 0.1) / 0.3) ** 2 + ((x - c[2]) / 0.5) ** 2 < 1] = 2
    return seg


def test_full_inverse_geometry_with_an_oracle_predictor(tmp_path, monkeypatch):
    """Preprocessing then the inverse mapping must give back the label map of a new, differently
    shaped, rotated, anisotropic case when the network is replaced by an oracle."""
    raw = _oracle_dataset(tmp_path)
    plans = api.plan_and_preprocess(raw, root=tmp_path, processes=1, preprocess=False)
    assert plans.transpose_forward == (2, 0, 1)  # the coarse axis (x in array order) moves first
    stage = plans.configurations["3d_fullres"]
    model = TrainedModel(plans, "3d_fullres", {"0": build_network(stage.network).state_dict()})

    def oracle(self, data):  # intensity 100 x label survives cubic resampling well enough
        labels = np.clip(np.rint(data[0] / 100), 0, 2).astype(int)
        return np.stack([(labels == k) for k in range(3)]).astype(np.float32)

    monkeypatch.setattr(FoldEnsemble, "probabilities", oracle)
    inputs = tmp_path / "in"
    inputs.mkdir()
    seg = _blobs((41, 29, 11), np.random.default_rng(9))
    padded = np.zeros((45, 33, 11), np.uint8)  # a zero border: the crop must be undone too
    padded[2:43, 2:31] = seg
    _write((padded * 100.0).astype(np.float32), inputs / "new_0000.nii.gz", (3.1, 0.85, 0.75), (5.0, 6.0, 7.0), ROTATION)
    cases, _ = find_inputs(inputs, tmp_path / "out")
    settings = PredictSettings(device="cpu", processes=0)
    report = predict([FoldEnsemble(model, settings)], cases, settings)
    assert not report.failed
    out = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "new.nii.gz")))
    assert out.shape == padded.shape
    for label in (1, 2):
        p, r = out == label, padded == label
        assert 2 * (p & r).sum() / (p.sum() + r.sum()) > 0.95


def test_corrupt_file_is_reported_and_the_others_written(trained_3d, tmp_path):
    raw, root = trained_3d
    inputs = tmp_path / "in"
    shutil.copytree(raw / "imagesTs", inputs)
    victim = sorted(inputs.glob("*_0001.nii.gz"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])  # truncated
    (inputs / "lonely_0000.nii.gz").write_bytes((inputs / sorted(p.name for p in inputs.iterdir())[0]).read_bytes())
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "autounet.cli", "predict", "-i", str(inputs), "-o", str(out),
                           "-d", str(raw), "-c", "3d_fullres", "--root", str(root), "--device", "cpu", "--no-tta"],
                          capture_output=True, text=True)
    assert proc.returncode == 1
    bad_case = victim.name[: -len("_0001.nii.gz")]
    assert victim.name in proc.stderr and "truncated" in proc.stderr
    assert "lonely" in proc.stderr and "channel" in proc.stderr  # one channel file of two
    written = sorted(p.name for p in out.iterdir())
    good = sorted({p.name[: -len("_0000.nii.gz")] for p in inputs.glob("*_0000.nii.gz")} - {bad_case, "lonely"})
    assert written == [f"{c}.nii.gz" for c in good] and good


def test_existing_outputs_are_refused_per_case_unless_overwrite(trained_3d, tmp_path):
    """`predict -i raw/X/imagesTs -o raw/X/labelsTs` replaced the ground truth, exit code 0."""
    raw, root = trained_3d
    truth = tmp_path / "labelsTs"
    shutil.copytree(raw / "labelsTs", truth)
    first, *others = sorted(truth.iterdir())
    for other in others:
        other.unlink()  # one reference left: its case is refused, the others predicted
    before = first.read_bytes()

    def predict(*extra):
        return subprocess.run([sys.executable, "-m", "autounet.cli", "predict", "-i", str(raw / "imagesTs"),
                               "-o", str(truth), "-d", str(raw), "-c", "3d_fullres", "--root", str(root),
                               "--device", "cpu", "--no-tta", *extra], capture_output=True, text=True)

    proc = predict()
    assert proc.returncode == 1 and f"{first}: exists already; not replaced" in proc.stderr, proc.stderr
    assert first.read_bytes() == before
    assert sorted(p.name for p in truth.iterdir()) == sorted(p.name for p in (raw / "labelsTs").iterdir())
    proc = predict()  # now every output exists: nothing to do, said at once
    assert proc.returncode == 2 and "the output of every case exists already" in proc.stderr, proc.stderr
    assert predict("--overwrite").returncode == 0 and first.read_bytes() != before


def test_wrong_dimensionality_is_rejected(trained_3d, tmp_path):
    raw, root = trained_3d
    inputs = tmp_path / "in"
    inputs.mkdir()
    for c in range(2):
        img = sitk.GetImageFromArray(np.zeros((20, 20), np.float32))
        sitk.WriteImage(img, str(inputs / f"flat_{c:04d}.nii.gz"))
    report = api.predict(inputs, tmp_path / "out", dataset=raw, configurations=["3d_fullres"], root=root,
                         settings=PredictSettings(device="cpu"))
    assert "2D image" in report.failed["flat"] and not report.written


def test_export_import_and_predict_from_zip(trained_3d, tmp_path):
    raw, root = trained_3d
    zip_path = tmp_path / "model.zip"
    assert subprocess.run([sys.executable, "-m", "autounet.cli", "export_model", str(raw), "-c", "3d_fullres", "-o",
                           str(zip_path), "--root", str(root)], capture_output=True).returncode == 0
    with zipfile.ZipFile(zip_path) as z:
        names = set(z.namelist())
    assert {"3d_fullres/fold_0/checkpoint_final.pt", "3d_fullres/fold_1/checkpoint_final.pt", "dataset.json"} <= names
    case = sorted((raw / "imagesTs").glob("*_0000.nii.gz"))[0]
    out = tmp_path / "one.nii.gz"
    report = api.predict(case, out, model=zip_path, settings=PredictSettings(device="cpu", mirror=False))
    assert report.written == [out] and sitk.ReadImage(str(out)).GetSize() == sitk.ReadImage(str(case)).GetSize()


def test_predicting_from_a_zip_leaves_no_unpacked_copy_behind(trained_3d, tmp_path, monkeypatch):
    raw, root = trained_3d
    zip_path = api.export_model(raw, tmp_path / "model.zip", configurations=["3d_fullres"], root=root)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    case = sorted((raw / "imagesTs").glob("*_0000.nii.gz"))[0]
    report = api.predict(case, tmp_path / "out", model=zip_path, settings=PredictSettings(device="cpu", mirror=False))
    assert len(report.written) == 1 and not list(scratch.iterdir())


def test_import_rejects_paths_escaping_the_target(tmp_path):
    from autounet.model.archive import import_model

    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("autounet_model.json", json.dumps({"configuration": "2d", "folds": ["0"]}))
        z.writestr("../outside.txt", "gotcha")
    with pytest.raises(AutounetError, match="outside"):
        import_model(evil, tmp_path / "target")
    assert not (tmp_path / "outside.txt").exists()


def test_ensemble_averages_saved_probabilities(trained_3d, tmp_path):
    raw, root = trained_3d
    outs = []
    for fold in ("0", "1"):
        out = tmp_path / f"f{fold}"
        api.predict(raw / "imagesTs", out, dataset=raw, configurations=["3d_fullres"], folds=[fold], root=root,
                    settings=PredictSettings(device="cpu", mirror=False, save_probabilities=True))
        outs.append(out)
    both = tmp_path / "both"
    api.predict(raw / "imagesTs", both, dataset=raw, configurations=["3d_fullres"], folds=["0", "1"], root=root,
                settings=PredictSettings(device="cpu", mirror=False, save_probabilities=True))
    ens = tmp_path / "ens"
    assert subprocess.run([sys.executable, "-m", "autounet.cli", "ensemble", "-i", str(outs[0]), str(outs[1]), "-o",
                           str(ens), "--save-probabilities"], capture_output=True).returncode == 0
    for p in sorted(both.glob("*.npz")):
        with np.load(p) as a, np.load(ens / p.name) as b:
            np.testing.assert_allclose(a["probabilities"].astype(np.float32), b["probabilities"].astype(np.float32),
                                       atol=2e-3)
        name = p.stem + ".nii.gz"
        agree = sitk.GetArrayFromImage(sitk.ReadImage(str(both / name))) == sitk.GetArrayFromImage(
            sitk.ReadImage(str(ens / name)))
        assert agree.mean() > 0.999


def test_cross_validation_outputs_can_be_ensembled(trained_3d, tmp_path):
    raw, root = trained_3d
    val = root / "results" / raw.name / "3d_fullres" / "fold_0" / "validation"
    assert list(val.glob("*.npz")) and (val / "summary.json").is_file()
    written = __import__("autounet.inference.ensemble", fromlist=["x"]).ensemble_folders([val, val], tmp_path / "e")
    assert len(written) == len(list(val.glob("*.npz")))
