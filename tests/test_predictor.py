"""Prediction where users run it: the in-memory Predictor answers as the command writes, voxel for
voxel (3D, 2D, exported zip and ONNX); DICOM series in, NIfTI or DICOM SEG out; --continue after
a SIGKILL ends as an uninterrupted run; parts of a folder cover each case once; the run manifest."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autounet import Predictor, api
from autounet.cli import main
from autounet.inference.cases import share
from autounet.inference.settings import OutputOptions
from autounet.io.image_io import ImageReadError
from autounet.predictor.folder import predict_folder
from tests.inference.test_predict import ROTATION, _write
from tests.io.test_dicom import OBLIQUE, write_series

TINY = api.TrainingConfig(epochs=1, iterations_per_epoch=2, val_iterations_per_epoch=1, num_workers=0,
                          validation=api.PredictSettings(mirror=False, processes=0))


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """Tiny 3D (two folds) and 2D models, and new 3D cases in odd geometries."""
    tmp = tmp_path_factory.mktemp("predictor")
    out = {"root": tmp}
    for dims, name in ((3, "Dataset931_Use3D"), (2, "Dataset932_Use2D")):
        raw = api.make_example_dataset(tmp / "raw" / name, dims=dims, cases=5, shape=(8, 20, 20) if dims == 3 else None,
                                       test_cases=3)
        configuration = "3d_fullres" if dims == 3 else "2d"
        api.plan_and_preprocess(raw, root=tmp, processes=1, configurations=[configuration])
        for fold in ((0, 1) if dims == 3 else (0,)):
            api.train(raw, configuration, fold, root=tmp, device="cpu", config=TINY)
        out[dims] = (raw, configuration)
    inputs = tmp / "new3d"
    inputs.mkdir()
    rng = np.random.default_rng(5)
    for i in range(5):  # new shapes, odd spacings, offset origins, rotated axes
        shape = tuple(int(s) for s in rng.integers((7, 18, 17), (11, 26, 25)))
        _write(rng.normal(0.4, 0.3, shape).astype(np.float32), inputs / f"new{i}_0000.nii.gz",
               (0.9, 1.1, 2.3 + i / 10), (12.5, -40.0, 7.25 + i), ROTATION)
    out["inputs"] = inputs
    return out


def _cli(*args) -> int:
    return main(["predict", *map(str, args), "--device", "cpu", "-npp", "0"])


def _array(path: Path) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(path)))


def test_the_predictor_answers_as_the_command_writes_in_3d(trained, tmp_path):
    raw, configuration = trained[3]
    out = tmp_path / "out"
    assert _cli("-i", trained["inputs"], "-o", out, "-d", raw, "-c", configuration, "--root", trained["root"],
                "--save-probabilities") == 0
    predictor = Predictor.from_results(raw, configurations=[configuration], root=trained["root"], device="cpu")
    for path in sorted(trained["inputs"].glob("*.nii.gz"))[:3]:
        image = sitk.ReadImage(str(path))
        volume = sitk.GetArrayFromImage(image)
        result = predictor.predict(volume, spacing=image.GetSpacing()[::-1], origin=image.GetOrigin(),
                                   direction=image.GetDirection(), probabilities=True)
        written = out / path.name.replace("_0000", "")
        assert result.mask.shape == volume.shape
        assert np.array_equal(result.mask, _array(written)), path.name
        with np.load(written.with_name(written.name.replace(".nii.gz", ".npz"))) as saved:
            assert np.array_equal(result.probabilities.astype(np.float16), saved["probabilities"])
        again = predictor.predict(image)  # a SimpleITK image carries its geometry
        assert np.array_equal(again.mask, result.mask)
        back = again.mask_image()
        assert (back.GetSpacing(), back.GetOrigin(), back.GetDirection()) == \
            (image.GetSpacing(), image.GetOrigin(), image.GetDirection())


def test_the_predictor_answers_as_the_command_writes_in_2d(trained, tmp_path):
    raw, configuration = trained[2]
    images = raw / "imagesTs"
    out = tmp_path / "out"
    assert _cli("-i", images, "-o", out, "-d", raw, "-c", configuration, "--root", trained["root"]) == 0
    predictor = Predictor.from_results(raw.name, configurations=[configuration], root=trained["root"], device="cpu")
    files = sorted(images.iterdir())
    assert files
    for path in files:
        from autounet.io.image_io import read_image, reader_for, file_ending

        pixels = read_image(path, reader_for(file_ending(path)))[0][0, 0]  # (Y, X) as the user holds it
        result = predictor.predict(pixels)
        written = out / path.name.replace("_0000", "")
        assert result.mask.shape == pixels.shape
        assert np.array_equal(result.mask, read_image(written, reader_for(file_ending(written)))[0][0, 0])


def test_exported_models_answer_as_the_command_writes(trained, tmp_path):
    raw, configuration = trained[3]
    zipped = api.export_model(raw, tmp_path / "model.zip", configurations=[configuration], root=trained["root"])
    models = [zipped]
    if __import__("importlib").util.find_spec("onnxruntime") is not None:
        models.append(api.export_model(raw, tmp_path / "model.onnx", configurations=[configuration],
                                       root=trained["root"]))
    case = trained["inputs"] / "new0_0000.nii.gz"
    for model in models:
        settings = api.PredictSettings(device="cpu", amp=False, processes=0)
        out = tmp_path / model.suffix[1:]
        assert not api.predict(case, out, model=model, settings=settings).failed
        result = Predictor.from_model(model, settings=settings).predict(sitk.ReadImage(str(case)))
        assert np.array_equal(result.mask, _array(out / "new0.nii.gz")), model.name


def test_the_predictor_refuses_what_it_cannot_take(trained):
    raw, configuration = trained[3]
    predictor = Predictor.from_results(raw, configurations=[configuration], root=trained["root"], device="cpu")
    with pytest.raises(ValueError, match="needs its spacing"):
        predictor.predict(np.zeros((8, 20, 20), np.float32))
    with pytest.raises(ImageReadError, match=r"takes \(Z, Y, X\) or \(C, Z, Y, X\)"):
        predictor.predict(np.zeros((20, 20), np.float32), spacing=(1, 1))
    with pytest.raises(ImageReadError, match="NaN or Inf"):
        predictor.predict(np.full((8, 20, 20), np.nan, np.float32), spacing=(1, 1, 1))
    with pytest.raises(ImageReadError, match="2 channel"):
        predictor.predict(np.zeros((2, 8, 20, 20), np.float32), spacing=(1, 1, 1))


def test_dicom_series_in_nifti_and_dicom_seg_out(trained, tmp_path):
    pytest.importorskip("highdicom")
    from autounet.io.dicom import find_series, read_seg

    raw, configuration = trained[3]
    rng = np.random.default_rng(2)
    volume = (rng.normal(0.4, 0.3, (9, 22, 21)) * 1000).astype(np.int16)
    dicom = tmp_path / "dicom"
    write_series(dicom / "a", volume, direction=OBLIQUE, patient="P1", uid="oblique")
    write_series(dicom / "b", volume[::-1], patient="P2", uid="axial")
    common = ("-i", dicom, "-d", raw, "-c", configuration, "--root", trained["root"])
    assert _cli(*common, "-o", tmp_path / "nifti") == 0
    assert _cli(*common, "-o", tmp_path / "seg", "--output-format", "dicom-seg") == 0
    series = {s.case_id: s for s in find_series(dicom)[0]}
    assert sorted(series) == ["P1", "P2"]
    for case_id, s in series.items():
        mask = sitk.ReadImage(str(tmp_path / "nifti" / f"{case_id}.nii.gz"))
        source = sitk.ReadImage([str(f) for f in s.files])
        assert mask.GetSize() == source.GetSize()
        np.testing.assert_allclose(mask.GetDirection(), source.GetDirection(), atol=1e-6)
        np.testing.assert_allclose(mask.GetOrigin(), source.GetOrigin(), atol=1e-4)
        np.testing.assert_allclose(mask.GetSpacing(), source.GetSpacing(), atol=1e-4)
        assert np.array_equal(read_seg(tmp_path / "seg" / f"{case_id}.dcm", s), sitk.GetArrayFromImage(mask))
    with pytest.raises(ValueError, match="needs DICOM input"):
        api.predict(trained["inputs"], tmp_path / "x", raw, configurations=[configuration], root=trained["root"],
                    output_format="dicom-seg")


_KILL_AT_THIRD_WRITE = textwrap.dedent("""
    import os, signal, sys
    import autounet.inference.run as run
    from autounet.cli import main
    real, calls = run._write, {"n": 0}
    def hooked(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*args, **kwargs)
    run._write = hooked
    sys.exit(main(sys.argv[1:]))
""")


def test_continue_after_a_sigkill_completes_the_folder_as_an_uninterrupted_run(trained, tmp_path):
    raw, configuration = trained[3]
    args = ["predict", "-i", trained["inputs"], "-d", raw, "-c", configuration, "--root", trained["root"],
            "--device", "cpu", "-npp", "0", "--save-probabilities", "--no-tta"]
    assert main([*map(str, args), "-o", str(tmp_path / "whole")]) == 0
    killed = subprocess.run([sys.executable, "-c", _KILL_AT_THIRD_WRITE, *map(str, args), "-o", str(tmp_path / "cut")],
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    kept = sorted(p.name for p in (tmp_path / "cut").glob("*.nii.gz"))
    assert len(kept) == 2  # two cases written, the third was being written
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "cut").iterdir()}
    assert main([*map(str, args), "-o", str(tmp_path / "cut"), "--continue"]) == 0
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p.name in kept)  # kept, not redone
    whole = sorted(p.name for p in (tmp_path / "whole").iterdir())
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == whole  # no temporary file left
    for name in whole:
        if name.endswith(".nii.gz"):
            assert np.array_equal(_array(tmp_path / "cut" / name), _array(tmp_path / "whole" / name))
    # without --continue the outputs are refused, with their names
    assert main([*map(str, args), "-o", str(tmp_path / "cut")]) == 2
    # with every output complete, --continue loads no model (an int8 one would calibrate first)
    report = predict_folder(trained["inputs"], lambda: pytest.fail("a model was loaded with nothing to predict"),
                            OutputOptions(tmp_path / "cut", overwrite=False, resume=True, part=None),
                            with_probabilities=True)
    assert len(report.skipped) == 5 and not report.failed and not report.written


def test_parts_cover_every_case_exactly_once_and_manifests_record_them(trained, tmp_path):
    raw, configuration = trained[3]
    out, parts = tmp_path / "out", 3
    for k in range(parts):
        report = api.predict(trained["inputs"], out, raw, configurations=[configuration], root=trained["root"],
                             settings=api.PredictSettings(device="cpu", processes=0, mirror=False), part=(k, parts),
                             report=tmp_path / f"run_{k}.json")
        assert not report.failed
    manifests = [json.loads((tmp_path / f"run_{k}.json").read_text()) for k in range(parts)]
    predicted = [c for m in manifests for c in m["cases"]]
    cases = sorted(p.name.replace("_0000.nii.gz", "") for p in trained["inputs"].iterdir())
    assert sorted(predicted) == cases and len(predicted) == len(set(predicted))
    assert sorted(p.name for p in out.iterdir()) == [f"{c}.nii.gz" for c in cases]
    first = manifests[0]
    assert first["model"]["configurations"] == [configuration] and first["model"]["folds"] == ["0", "1"]
    assert len(first["model"]["sha256"]) == 64 and len(first["model"]["files"]) == 2
    assert first["backend"] == "torch" and first["device"] == "cpu" and first["precision"] in ("float32", "bfloat16")
    assert first["part"] == [0, 3] and first["autounet_version"]
    record = next(iter(first["cases"].values()))
    assert record["inputs"][0].endswith("_0000.nii.gz") and Path(record["output"]).is_file()
    assert record["predict_s"] > 0 and record["peak_memory_mb"] > 0
    assert {m["model"]["sha256"] for m in manifests} == {first["model"]["sha256"]}


def test_shares_are_deterministic_and_disjoint():
    keys = [f"case{i:02d}" for i in range(11)]
    shares = [share(keys[::-1], (k, 4)) for k in range(4)]
    assert set().union(*shares) == set(keys) and sum(map(len, shares)) == len(keys)
    assert shares[1] == share(keys, (1, 4)) == {"case01", "case05", "case09"}
    with pytest.raises(ValueError, match="from 0 to 3"):
        api.predict("in", "out", "4", part=(4, 4))
