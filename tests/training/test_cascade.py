"""The cascade end to end on tiny data: 3d_lowres's cross-validation feeds 3d_cascade_fullres,
in training (stored next-stage labels) and in prediction (the low-resolution stage predicted first)."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from autounet import Predictor, api
from autounet.autoplan.plans import load_plans
from autounet.io.atomic import read_json, write_json
from autounet.io.verify import check_layout
from autounet.preprocess.pipeline import preprocess_segmentation as preprocess_dataset
from autounet.workspace import resolve_dataset

TINY = api.TrainingConfig(epochs=1, iterations_per_epoch=2, val_iterations_per_epoch=1, num_workers=0,
                          validation=api.PredictSettings(mirror=False, processes=0))


def _with_cascade(raw: Path, root: Path) -> None:
    """Plans with a coarser 3d_lowres and a 3d_cascade_fullres on top of it, preprocessed (the
    tiny cases are too small for the planner to add them by itself)."""
    paths = resolve_dataset(raw, root)
    plans = load_plans(paths.plans)
    full = plans.configurations["3d_fullres"]
    low = dataclasses.replace(full, name="3d_lowres", data_identifier="3d_lowres",
                              spacing=(full.spacing[0], full.spacing[1] * 1.5, full.spacing[2] * 1.5))
    cascade = dataclasses.replace(full, name="3d_cascade_fullres", previous_stage="3d_lowres",
                                  network=dataclasses.replace(full.network, input_channels=full.network.input_channels + 2))
    plans = dataclasses.replace(plans, configurations={**plans.configurations, "3d_lowres": low,
                                                       "3d_cascade_fullres": cascade})
    write_json(paths.plans, plans.to_json())
    spec, cases = check_layout(raw)
    preprocess_dataset(spec, cases, plans, paths, ["3d_lowres"], processes=1)


def test_cascade_trains_on_the_low_resolution_cross_validation_and_predicts(tmp_path: Path):
    raw = api.make_example_dataset(tmp_path / "raw" / "Dataset007_Cascade", dims=3, cases=5, channels=1,
                                   anisotropic=True, shape=(10, 24, 24), test_cases=2)
    api.plan_and_preprocess(raw, root=tmp_path, processes=1, configurations=["3d_fullres"])
    _with_cascade(raw, tmp_path)
    for fold in range(5):
        api.train(raw, "3d_lowres", fold, root=tmp_path, device="cpu", config=TINY)
    results = tmp_path / "results" / raw.name
    stored = sorted(p.stem for p in (results / "3d_lowres" / "predicted_next_stage").glob("*.npy"))
    assert stored == sorted(c for s in read_json(tmp_path / "preprocessed" / raw.name / "splits.json") for c in s["val"])
    for case in stored:  # labels at the full-resolution stage's shape, values of the dataset's labels
        labels = np.load(results / "3d_lowres" / "predicted_next_stage" / f"{case}.npy")
        shape = read_json(tmp_path / "preprocessed" / raw.name / "3d_fullres" / f"{case}.json")["shape"]
        assert list(labels.shape) == shape and set(np.unique(labels)) <= {0, 1, 2}

    api.train(raw, "3d_cascade_fullres", 0, root=tmp_path, device="cpu", config=TINY)
    summary = read_json(results / "3d_cascade_fullres" / "fold_0" / "validation" / "summary.json")
    assert set(summary["mean_dice"]) == {"1", "2"}

    out = tmp_path / "predictions"
    report = api.predict(raw / "imagesTs", out, dataset=raw, configurations=["3d_cascade_fullres"], folds=["0"],
                         root=tmp_path, settings=api.PredictSettings(device="cpu", mirror=False))
    assert not report.failed and len(report.written) == 2
    predictor = Predictor.from_results(raw, configurations=["3d_cascade_fullres"], folds=["0"], root=tmp_path,
                                       settings=api.PredictSettings(device="cpu", mirror=False))
    for mask in report.written:
        image = sitk.ReadImage(str(raw / "imagesTs" / mask.name.replace(".nii.gz", "_0000.nii.gz")))
        assert sitk.ReadImage(str(mask)).GetSize() == image.GetSize()
        # in memory, the cascade's two stages chain as they do for files: the same mask, voxel for voxel
        assert np.array_equal(predictor.predict(image).mask, sitk.GetArrayFromImage(sitk.ReadImage(str(mask))))

    if importlib.util.find_spec("onnxruntime") is None:  # the ONNX extra is not installed: the rest needs it
        return
    model = api.export_model(raw, tmp_path / "cascade.onnx", configurations=["3d_cascade_fullres"], folds=["0"],
                             root=tmp_path)
    masks = {}
    for name, source in (("torch", dict(dataset=raw, configurations=["3d_cascade_fullres"], folds=["0"],
                                        root=tmp_path)), ("onnx", dict(model=model))):
        settings = api.PredictSettings(device="cpu", mirror=False, amp=False, backend="torch" if name == "torch"
                                       else "onnxruntime")
        done = api.predict(raw / "imagesTs", tmp_path / name, settings=settings, **source)
        assert not done.failed
        masks[name] = [sitk.GetArrayFromImage(sitk.ReadImage(str(m))) for m in sorted(done.written)]
    for a, b in zip(masks["torch"], masks["onnx"]):  # the ONNX file holds both stages and chains them alike
        assert (a == b).mean() >= 0.9999
