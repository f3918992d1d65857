"""Ejection fraction from videos: the synthetic echocardiography-like videos get an area-based EF
target, and ``autounet run`` learns it on the case-level regression path with the time axis as
the third axis."""

from __future__ import annotations

import subprocess
import sys

import numpy as np

from autounet import api
from autounet.autoplan.plans import load_plans
from autounet.example_data import ejection_fraction, synth_video
from autounet.io.targets import read_targets
from autounet.io.verify import check_layout
from autounet.workspace import RawPaths, dataset_paths


def test_each_video_has_its_own_ejection_fraction_from_its_ventricle_areas(tmp_path):
    raw = api.make_video_dataset(tmp_path / "Dataset984_EF", cases=6, frames=20, size=(32, 32), test_cases=2,
                                 seed=4, ef=True)
    spec, cases = check_layout(raw)
    assert spec.task == "regression" and spec.labels == {"ef": 0} and len(cases) == 6
    ids = [c.case_id for c in cases]
    targets = read_targets(RawPaths(raw).targets("Tr"), "regression", spec.labels, ids)
    amplitude = float(np.random.default_rng([4, 0, False, 1]).uniform(0.06, 0.3))
    _, seg, (ed, es) = synth_video(np.random.default_rng([4, 0, False]), 20, (32, 32), amplitude)
    assert targets["echo_000"][0] == round(ejection_fraction(seg, ed, es), 3)
    values = np.array([targets[c][0] for c in ids])
    assert values.min() > 10 and values.max() < 80 and values.std() > 3  # every case contracts its own way
    seg = np.zeros((2, 4, 4), np.uint8)
    seg[0, :, :] = 1
    seg[1, :2, :2] = 1
    assert ejection_fraction(seg, 0, 1) == 75.0  # 16 -> 4 pixels


def test_ef_without_video_is_refused(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "autounet", "make_example_dataset", str(tmp_path / "D"), "--ef"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "--ef gives videos an ejection fraction: add --video FRAMES" in proc.stderr
    assert not (tmp_path / "D").exists()


def test_a_run_learns_ejection_fractions_from_videos_as_volumes(tmp_path):
    raw = api.make_video_dataset(tmp_path / "raw" / "Dataset984_EF", cases=10, frames=16, size=(32, 32),
                                 test_cases=2, ef=True)
    schedule = api.TrainingConfig(epochs=1, iterations_per_epoch=2, val_iterations_per_epoch=1, num_workers=0)
    result = api.run(raw, tmp_path, api.RunOptions(schedule=schedule, device="cpu", processes=1))
    plans = load_plans(dataset_paths(tmp_path, raw.name).plans)
    assert plans.task == "regression" and result["configurations"] == ["3d_fullres"]
    assert plans.configurations["3d_fullres"].patch_size[0] == 16  # the whole video, time as the first axis
    api.predict(RawPaths(raw).images("Ts"), tmp_path / "ef.csv", dataset=raw, root=tmp_path)
    scores = api.evaluate(RawPaths(raw).targets("Ts"), tmp_path / "ef.csv")
    assert scores["task"] == "regression" and np.isfinite(scores["mae"])
