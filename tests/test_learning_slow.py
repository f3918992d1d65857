"""Slow (not in the fast suite): proof that training learns, end to end on the 3D example.

Run with: python -m pytest -m slow tests/test_learning_slow.py
"""

from pathlib import Path

import pytest

from autounet import api
from autounet.io.atomic import read_json
from autounet.training.config import TrainingConfig


@pytest.mark.slow
def test_a_few_hundred_cpu_iterations_reach_dice_above_0_8(tmp_path: Path):
    raw = api.make_example_dataset(tmp_path / "raw" / "Dataset900_Example", dims=3, cases=20)
    api.plan_and_preprocess(raw, root=tmp_path, processes=2)
    config = TrainingConfig(epochs=12, iterations_per_epoch=25, val_iterations_per_epoch=4)
    folder = api.train(raw, "3d_fullres", 0, root=tmp_path, device="cpu", config=config)
    summary = read_json(folder / "validation" / "summary.json")
    assert summary["foreground_mean_dice"] > 0.8, summary["mean_dice"]
