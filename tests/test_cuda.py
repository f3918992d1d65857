"""Training and prediction on a CUDA GPU (skipped without one; ``benchmarks/gpu_check.sh`` runs
them with ``-m cuda`` on a GPU machine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autounet import api
from autounet.io.image_io import read_segmentation

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")]

TINY = api.TrainingConfig(epochs=1, iterations_per_epoch=3, val_iterations_per_epoch=1, num_workers=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cuda")
    raw = api.make_example_dataset(root / "raw" / "Dataset930_Cuda", dims=3, cases=6, shape=(16, 32, 32), test_cases=2)
    api.plan_and_preprocess(raw, root=root, processes=1, configurations=["3d_fullres"], gpu_memory_gb=4)
    api.train(raw, "3d_fullres", 0, root=root, config=TINY, device="cuda")
    return root, raw


def test_a_fold_trains_and_validates_on_the_gpu_with_mixed_precision(trained):
    root, raw = trained
    fold = root / "results" / raw.name / "3d_fullres" / "fold_0"
    assert (fold / "checkpoint_final.pt").is_file() and (fold / "validation" / "summary.json").is_file()


def test_float16_prediction_agrees_with_float32_on_the_gpu(trained, tmp_path):
    root, raw = trained
    for name, amp in (("fp16", True), ("fp32", False)):
        report = api.predict(raw / "imagesTs", tmp_path / name, raw, configurations=["3d_fullres"], folds=["0"],
                             root=root, settings=api.PredictSettings(device="cuda", amp=amp))
        assert not report.failed
    for mask in sorted((tmp_path / "fp32").glob("*.nii.gz")):
        a, _ = read_segmentation(mask, "simpleitk")
        b, _ = read_segmentation(tmp_path / "fp16" / mask.name, "simpleitk")
        assert np.mean(a == b) >= 0.999, mask.name


def test_a_case_level_model_trains_and_predicts_on_the_gpu(tmp_path):
    raw = api.make_case_dataset(tmp_path / "raw" / "Dataset931_CudaCls", cases=20, test_cases=4)
    api.run(raw, tmp_path, api.RunOptions(schedule=TINY, device="cuda", processes=1))
    report = api.predict(raw / "imagesTs", tmp_path / "p.csv", raw, root=tmp_path,
                         settings=api.PredictSettings(device="cuda"))
    assert not report.failed and len((tmp_path / "p.csv").read_text().splitlines()) == 5
