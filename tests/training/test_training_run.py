"""Training runs on tiny data: files written, resumption after SIGKILL, data parallelism, cascade."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from autounet import api
from autounet.errors import WorkspaceError
from autounet.io.atomic import read_json, write_json
from autounet.inference.settings import PredictSettings
from autounet.model import checkpoint as ckpt
from autounet.training.config import TrainingConfig

TINY = dict(epochs=2, iterations_per_epoch=2, val_iterations_per_epoch=1, num_workers=0,
            validation=PredictSettings(mirror=False, processes=0))


@pytest.fixture
def prepared_2d(tiny_2d: Path, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "ws"
    api.plan_and_preprocess(tiny_2d, root=root, processes=1)
    return tiny_2d, root


def test_tiny_run_writes_every_file(prepared_2d):
    raw, root = prepared_2d
    folder = api.train(raw, "2d", 0, root=root, device="cpu",
                       config=TrainingConfig(**{**TINY, "num_workers": 1, "validation": PredictSettings(
                           mirror=False, save_probabilities=True, processes=0)}))
    assert folder == root / "results" / raw.name / "2d" / "fold_0"
    for name in ("checkpoint_final.pt", "checkpoint_best.pt", "training_log.txt", "progress.png"):
        assert (folder / name).is_file(), name
    assert not (folder / "checkpoint_latest.pt").exists()  # superseded by checkpoint_final
    val_ids = read_json(root / "preprocessed" / raw.name / "splits.json")[0]["val"]
    for case in val_ids:
        assert (folder / "validation" / f"{case}.png").is_file()
        with np.load(folder / "validation" / f"{case}.npz", allow_pickle=False) as z:
            probs = z["probabilities"]
        assert probs.shape[0] == 3 and np.allclose(probs.astype(np.float32).sum(0), 1, atol=1e-2)
    summary = read_json(folder / "validation" / "summary.json")
    assert set(summary["mean_dice"]) == {"1", "2"} and len(summary["cases"]) == len(val_ids)
    state = torch.load(folder / "checkpoint_final.pt", weights_only=True)
    assert state["epoch"] == 2 and state["configuration"] == "2d"
    assert json.loads(state["plans"])["dataset_name"] == raw.name
    assert set(state) >= {"network", "optimizer", "scaler", "rng", "log", "training_config"}
    assert state["log"]["epoch"] == [0, 1]
    text = (folder / "training_log.txt").read_text()
    assert "epoch 0/1" in text and "epoch 1/1" in text and "validation of fold 0" in text


def test_refuses_to_overwrite_a_run_without_continue(prepared_2d):
    raw, root = prepared_2d
    cfg = TrainingConfig(**{**TINY, "epochs": 1, "final_validation": False})
    api.train(raw, "2d", 1, root=root, device="cpu", config=cfg)
    with pytest.raises(WorkspaceError, match="--continue"):
        api.train(raw, "2d", 1, root=root, device="cpu", config=cfg)


def test_errors_name_what_to_run(prepared_2d, tmp_path):
    raw, root = prepared_2d
    with pytest.raises(WorkspaceError, match="planned: 2d"):
        api.train(raw, "3d_fullres", 0, root=root, config=TrainingConfig(**TINY))
    with pytest.raises(WorkspaceError, match="folds 0..4"):
        api.train(raw, "2d", 7, root=root, config=TrainingConfig(**TINY))
    # a cascade whose previous stage has not been trained names the command to run first
    plans_path = root / "preprocessed" / raw.name / "plans.json"
    plans = read_json(plans_path)
    plans["configurations"]["2d_cascade"] = {**plans["configurations"]["2d"], "name": "2d_cascade",
                                             "previous_stage": "2d"}
    write_json(plans_path, plans)
    with pytest.raises(WorkspaceError, match=r"autounet train .* 2d FOLD +for FOLD in 0 1 2 3 4"):
        api.train(raw, "2d_cascade", 0, root=root, config=TrainingConfig(**TINY))


_KILL_RUNNER = textwrap.dedent("""
    import os, signal, sys
    import torch
    from autounet.cli import main
    mode, at = sys.argv[1], int(sys.argv[2])
    calls = {"n": 0}
    if mode == "step":        # killed in the middle of an epoch
        real = torch.nn.utils.clip_grad_norm_
        def clip(*a, **k):
            calls["n"] += 1
            if calls["n"] == at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(*a, **k)
        torch.nn.utils.clip_grad_norm_ = clip
    else:                     # killed while a checkpoint is being written
        real_save = torch.save
        def save(obj, f, *a, **k):
            calls["n"] += 1
            if calls["n"] == at:
                with open(f, "wb") as fh:
                    fh.write(b"PK half a checkpoint")
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, f, *a, **k)
        torch.save = save
    sys.exit(main(sys.argv[3:]))
""")


@pytest.mark.parametrize("mode,at", [("step", 2 * 3 + 2), ("save", 4)])
def test_sigkill_then_continue_loses_and_repeats_no_epoch(prepared_2d, mode, at):
    raw, root = prepared_2d
    args = ["train", str(raw), "2d", "0", "--root", str(root), "--device", "cpu", "--epochs", "4",
            "--iterations-per-epoch", "3", "--val-iterations-per-epoch", "1", "--num-workers", "0", "--no-validation"]
    proc = subprocess.run([sys.executable, "-c", _KILL_RUNNER, mode, str(at)] + args, capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr[-2000:]
    folder = root / "results" / raw.name / "2d" / "fold_0"
    latest = ckpt.load_checkpoint(folder / "checkpoint_latest.pt")  # never corrupt
    done = latest["epoch"]
    assert 1 <= done < 4
    assert not (folder / "checkpoint_final.pt").exists()
    assert subprocess.run([sys.executable, "-m", "autounet.cli"] + args + ["--continue"], capture_output=True).returncode == 0
    log = (folder / "training_log.txt").read_text()
    epochs = [int(m) for m in re.findall(r"epoch (\d+)/3", log)]
    # every epoch logged once, except possibly the interrupted one which was re-run after the kill
    assert sorted(set(epochs)) == [0, 1, 2, 3]
    assert all(epochs.count(e) == 1 for e in range(done)) and all(epochs.count(e) == 1 for e in range(done + 1, 4))
    assert f"resumed from checkpoint_latest.pt at epoch {done}" in log
    final = ckpt.load_checkpoint(folder / "checkpoint_final.pt")
    assert final["log"]["epoch"] == [0, 1, 2, 3] and final["epoch"] == 4


def test_data_parallel_two_gloo_processes_keep_replicas_identical(prepared_2d):
    raw, root = prepared_2d
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "autounet.cli", "train", str(raw), "2d", "0", "--root", str(root), "--device", "cpu",
           "--epochs", "2", "--iterations-per-epoch", "3", "--val-iterations-per-epoch", "1", "--num-workers", "0",
           "--batch-size", "4", "--no-validation"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (root / "results" / raw.name / "2d" / "fold_0" / "training_log.txt").read_text()
    assert "batch 2 x 2 processes" in log
    assert "data-parallel replicas identical on 2 processes" in log


def test_poly_learning_rate():
    from autounet.training.config import poly_lr

    assert poly_lr(0.01, 0, 100) == 0.01
    assert poly_lr(0.01, 50, 100) == pytest.approx(0.01 * 0.5**0.9)
    assert poly_lr(0.01, 100, 100) == 0.0


def test_continue_with_save_probabilities_adds_them_without_training_again(prepared_2d):
    """What find_best_configuration tells a user to do when the probabilities for ensembling are missing."""
    raw, root = prepared_2d
    cfg = TrainingConfig(**{**TINY, "epochs": 1})
    folder = api.train(raw, "2d", 3, root=root, device="cpu", config=cfg)
    validation = folder / "validation"
    assert list(validation.glob("*.png")) and not list(validation.glob("*.npz"))
    with_probabilities = TrainingConfig(**{**TINY, "epochs": 1, "validation": PredictSettings(
        mirror=False, save_probabilities=True, processes=0)})
    api.train(raw, "2d", 3, root=root, device="cpu", config=with_probabilities, resume=True)
    assert len(list(validation.glob("*.npz"))) == len(list(validation.glob("*.png")))
    assert (folder / "training_log.txt").read_text().count("epoch 0/0") == 1  # not trained again
    assert torch.load(folder / "checkpoint_final.pt", weights_only=True)["log"]["epoch"] == [0]
