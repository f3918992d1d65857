"""Ejection fraction from echocardiography-like videos (2D+time, the time axis as the third axis):
``autounet run`` on the case-level regression path against a small (2+1)D convolutional regressor
written here, trained for the same wall-clock budget; MAE on held-out videos.

The dataset is ``make_example_dataset --video FRAMES --ef``: each video's target is its area-based
ejection fraction (%), from the ventricle at end-diastole and end-systole; each case contracts by
its own amount. The baseline z-scores each video, standardizes the targets, and trains (2+1)D
blocks (a 1x3x3 spatial then a 3x1x1 temporal convolution, batch norm, ReLU, pooling) with Adam,
random spatial flips, batch 4, until the budget is spent; it predicts with its last weights.

    python benchmarks/bench_ef.py --out bench_out/ef --budget 5m

Run on a quiet machine; nothing else meanwhile.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from torch import nn

NAME = "Dataset984_EF"


def _autounet(*args: str) -> list[str]:
    return [sys.executable, "-m", "autounet", *args]


def _targets(path: Path) -> dict[str, float]:
    with open(path, newline="") as f:
        return {row["case"]: float(row["ef"]) for row in csv.DictReader(f)}


def _videos(folder: Path, ids: list[str]) -> np.ndarray:
    out = []
    for case in ids:
        v = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / f"{case}_0000.nii.gz"))).astype(np.float32)
        out.append((v - v.mean()) / (v.std() + 1e-6))
    return np.stack(out)[:, None]  # (N, 1, T, Y, X)


def block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv3d(cin, cout, (1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(cout), nn.ReLU(),
                         nn.Conv3d(cout, cout, (3, 1, 1), padding=(1, 0, 0)), nn.BatchNorm3d(cout), nn.ReLU(),
                         nn.MaxPool3d(2))


def baseline(raw: Path, budget_s: float, seed: int = 0) -> tuple[float, int]:
    """The (2+1)D regressor's test MAE and the steps it took in ``budget_s``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train, test = _targets(raw / "labelsTr.csv"), _targets(raw / "labelsTs.csv")
    x, xt = _videos(raw / "imagesTr", list(train)), _videos(raw / "imagesTs", list(test))
    y = np.array(list(train.values()), np.float32)
    mean, std = y.mean(), y.std()
    net = nn.Sequential(block(1, 16), block(16, 32), block(32, 64), nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(64, 1))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    started, steps = time.monotonic(), 0
    net.train()
    while time.monotonic() - started < budget_s:
        idx = rng.choice(len(x), 4, replace=False)
        batch = torch.from_numpy(x[idx].copy())
        for axis in (3, 4):
            if rng.random() < 0.5:
                batch = torch.flip(batch, [axis])
        loss = nn.functional.smooth_l1_loss(net(batch)[:, 0], torch.from_numpy((y[idx] - mean) / std))
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    net.eval()
    with torch.no_grad():
        pred = net(torch.from_numpy(xt))[:, 0].numpy() * std + mean
    return float(np.mean(np.abs(pred - np.array(list(test.values()))))), steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", default="5m")
    parser.add_argument("--cases", type=int, default=40)
    parser.add_argument("--frames", type=int, default=32)
    a = parser.parse_args()
    shutil.rmtree(a.out, ignore_errors=True)
    raw = a.out / "raw" / NAME
    subprocess.run(_autounet("make_example_dataset", str(raw), "--video", str(a.frames), "--shape", "48", "48",
                             "--cases", str(a.cases), "--test-cases", "10", "--ef"), check=True, capture_output=True)
    started = time.monotonic()
    with open(a.out / "run.log", "w") as log:
        subprocess.run(_autounet("run", str(raw), "--root", str(a.out), "--time-budget", a.budget), check=True,
                       stdout=log, stderr=subprocess.STDOUT)
        wall = time.monotonic() - started
        subprocess.run(_autounet("predict", "-i", str(raw / "imagesTs"), "-o", str(a.out / "pred.csv"), "-d", str(raw),
                                 "--root", str(a.out)), check=True, stdout=log, stderr=subprocess.STDOUT)
    pred, truth = _targets(a.out / "pred.csv"), _targets(raw / "labelsTs.csv")
    mae = float(np.mean([abs(pred[c] - truth[c]) for c in truth]))
    budget_s = float(a.budget[:-1]) * {"s": 1, "m": 60, "h": 3600}[a.budget[-1]]
    base_mae, steps = baseline(raw, budget_s)
    spread = float(np.mean(np.abs(np.array(list(truth.values())) - np.mean(list(_targets(raw / "labelsTr.csv").values())))))
    report = {"budget": a.budget, "autounet": {"test_mae": mae, "wall_s": wall},
              "baseline_2plus1d": {"test_mae": base_mae, "steps": steps},
              "predict_the_training_mean": {"test_mae": spread}}
    (a.out / "ef.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
