"""Budget rules with a stand-in calibration, and a budgeted run that is killed and resumed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autounet import api
from autounet.autoplan.plans import NetworkTopology, StagePlan
from autounet.model import checkpoint as ckpt
from autounet.training.budget import (MAX_EXTENSION, STARTUP_S, learning_iterations, BudgetTooSmall, Calibration,
                                      decide, epochs_that_fit, lighter_variants, parse_duration, schedule_for)
from autounet.model.network import build_network


def stage_3d() -> StagePlan:
    net = NetworkTopology(3, 1, 3, (32, 64, 128, 256, 320), ((1, 3, 3),) + ((3, 3, 3),) * 4,
                          ((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)), (2,) * 5, (2,) * 4)
    return StagePlan("3d_fullres", "3d_fullres", (3.0, 0.8, 0.8), (40, 200, 200), (32, 128, 128), 2, False, net, 7.0,
                     mirror_axes=(0, 1, 2))


def stand_in(speeds: dict[int, float]):
    """Seconds per iteration by first-stage feature count (the planned network has 32)."""
    return lambda st: Calibration(speeds[st.network.features_per_stage[0]] * (0.5 if st.patch_size[1] < 128 else 1), 0.5)


def test_small_budget_picks_a_lighter_network_with_a_known_schedule():
    d = decide(1800, stage_3d(), stand_in({32: 1.9, 16: 0.8}), num_val_cases=0)
    # planned: 1795 s / 1.9 s -> 47 it/epoch, 9 val, 94.8 s/epoch -> 18 epochs = 846 < 1000 iterations
    # half the features: estimated at half the work (0.95 s) -> enough; measured 0.8 s -> 112 it/epoch,
    # 22 val, 101.6 s/epoch -> 17 epochs = 1904 iterations
    assert d.variant == "half the features"
    assert (d.schedule.epochs, d.schedule.iterations_per_epoch, d.schedule.val_iterations_per_epoch) == (17, 112, 22)
    assert d.stage.network.features_per_stage == (16, 32, 64, 128, 160)
    assert "budget 30 min, 0.80 s/iteration -> 1904 iterations (17 epochs x 112); half the features" == d.explanation
    assert d.schedule.expected_seconds <= 1800


def test_large_budget_keeps_the_planned_network():
    d = decide(8 * 3600, stage_3d(), stand_in({32: 1.9, 16: 0.8}), num_val_cases=0)
    assert d.variant == "planned network kept"
    assert d.schedule.iterations_per_epoch == 250 and d.schedule.iterations >= learning_iterations(2)
    assert d.schedule.expected_seconds <= 8 * 3600


def test_no_variant_reaches_the_minimum_takes_the_one_with_most_iterations():
    d = decide(600, stage_3d(), stand_in({32: 4.0, 16: 2.0}), num_val_cases=0)
    assert d.variant.endswith("half the patch")
    assert "below the 1000 iterations" in d.explanation


def test_final_validation_time_is_reserved():
    with_val = decide(1800, stage_3d(), stand_in({32: 0.1, 16: 0.05}), num_val_cases=20)
    without = decide(1800, stage_3d(), stand_in({32: 0.1, 16: 0.05}), num_val_cases=0)
    assert with_val.schedule.iterations < without.schedule.iterations


def test_budget_too_small_for_one_epoch_is_a_clear_error():
    with pytest.raises(BudgetTooSmall, match="give more time"):  # a ValueError: the CLI prints it as an error
        decide(STARTUP_S + 1, stage_3d(), stand_in({32: 5.0, 16: 4.0}), num_val_cases=0)


def test_budget_too_small_says_what_would_fit():
    measure = stand_in({32: 5.0, 16: 4.0})
    with pytest.raises(BudgetTooSmall) as e:
        decide(60, stage_3d(), measure, num_val_cases=2)
    d = decide(e.value.needed_s, stage_3d(), measure, num_val_cases=2)
    assert d.schedule.epochs >= 1 and d.schedule.expected_seconds <= e.value.needed_s


def test_a_variant_chosen_by_another_fold_is_kept():
    measure = stand_in({32: 0.2, 16: 0.1})
    assert decide(3600, stage_3d(), measure, num_val_cases=2).variant == "planned network kept"
    d = decide(3600, stage_3d(), measure, num_val_cases=2, variant="half the features")
    assert d.variant == "half the features" and d.stage.network.features_per_stage[0] == 16
    assert d.schedule.iterations >= learning_iterations(2)  # only the schedule is chosen for it


def test_schedule_never_exceeds_the_budget():
    for budget in (60, 300, 1200, 7200):
        for s in (0.05, 0.5, 3.0):
            sched = schedule_for(budget, Calibration(s, s / 3), 10)
            if sched is not None:
                assert sched.expected_seconds <= budget


def test_lighter_variants_are_valid_networks():
    for name, st in lighter_variants(stage_3d()):
        assert all(p % f == 0 for p, f in zip(st.patch_size, st.network.downsampling_factor)), name
        out = build_network(st.network, deep_supervision=False)(torch.zeros((1, 1) + tuple(st.patch_size)))
        assert out.shape[2:] == tuple(st.patch_size)


@pytest.mark.parametrize("text,seconds", [("30m", 1800), ("8h", 28800), ("1h30m", 5400), ("90s", 90), ("30min", 1800),
                                          ("1h 30min", 5400)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_nonsense():
    with pytest.raises(ValueError, match="not understood"):
        parse_duration("soon")


@pytest.mark.parametrize("text", ["45", "2.5"])
def test_parse_duration_refuses_a_number_without_unit(text):
    """Minutes or seconds? The message gives the accepted forms instead of guessing."""
    with pytest.raises(ValueError, match="needs a unit: write e.g. 30m, 30min"):
        parse_duration(text)


def test_replanning_follows_the_measured_epoch_time():
    # 600 s budget, 100 s used, 5 epochs done, 40 s still to come after training; 20 planned and in force
    assert epochs_that_fit(600, 100, 5, [20, 20, 20], 40, 20, 20) == 5 + 23   # faster than planned: more epochs
    assert epochs_that_fit(600, 100, 5, [20, 20, 20], 40, 20, 27) == 27       # 1 epoch (3% of the budget) unused: kept
    assert epochs_that_fit(600, 100, 5, [20, 20, 20], 40, 20, 29) == 28       # one too many: fewer
    assert epochs_that_fit(600, 300, 5, [30, 50, 50, 50], 40, 20, 20) == 5 + 5  # slower (last 3 count): fewer
    assert epochs_that_fit(600, 590, 5, [20], 40, 20, 20) == 5                # over budget: stop now
    assert epochs_that_fit(600, 10, 1, [1.0], 40, 10, 10) == 10 * MAX_EXTENSION  # bounded extension
    assert epochs_that_fit(600, 10, 0, [], 40, 10, 12) == 12                  # nothing measured yet


_RUNNER = """
import os, signal, sys
import torch
from autounet.cli import main
calls = {"n": 0}
real = torch.nn.utils.clip_grad_norm_
def clip(*a, **k):
    calls["n"] += 1
    if calls["n"] == int(sys.argv[1]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*a, **k)
torch.nn.utils.clip_grad_norm_ = clip
sys.exit(main(sys.argv[2:]))
"""


def test_budgeted_run_records_its_decision_and_resume_keeps_the_schedule(tiny_2d: Path, tmp_path: Path):
    root = tmp_path / "ws"
    api.plan_and_preprocess(tiny_2d, root=root, processes=1)
    env = {**os.environ, "AUTOUNET_CACHE": str(tmp_path / "cache")}

    def args(fold):
        return ["train", str(tiny_2d), "2d", str(fold), "--root", str(root), "--device", "cpu", "--num-workers", "0",
                "--no-tta"]

    # fold 2 runs through: it measures this machine (cached for fold 1) and records its decision
    first = subprocess.run([sys.executable, "-m", "autounet.cli"] + args(2) + ["--time-budget", "30s"],
                           capture_output=True, text=True, env=env)
    assert first.returncode == 0, first.stderr[-2000:]
    log2 = (root / "results" / tiny_2d.name / "2d" / "fold_2" / "training_log.txt").read_text()
    decision = re.search(r"budget 30 s, [\d.]+ s/iteration -> \d+ iterations \((\d+) epochs x (\d+)\)", log2)
    assert decision and "calibration:" in log2, log2
    epochs, per_epoch = int(decision.group(1)), int(decision.group(2))
    assert epochs >= 3, f"30 s gave only {epochs} epoch(s) on this machine: {decision.group(0)}"
    # re-planned while training from the measured epoch times: the budget is used, not exceeded
    final2 = ckpt.load_checkpoint(root / "results" / tiny_2d.name / "2d" / "fold_2" / "checkpoint_final.pt")
    assert final2["log"]["epoch"] == list(range(final2["epoch"])) and final2["epoch"] <= epochs * MAX_EXTENSION
    used = int(re.search(r"time budget 30 s, used (\d+) s", log2).group(1))
    assert 18 <= used <= 33, log2
    # fold 1 (cached calibration) decides again, with the time it has left: about the same schedule.
    # It is killed after about one and a half epochs.
    kill_at = int(1.5 * per_epoch) + 2
    proc = subprocess.run([sys.executable, "-c", _RUNNER, str(kill_at)] + args(1) + ["--time-budget", "30s"],
                          capture_output=True, text=True, env=env)
    folder = root / "results" / tiny_2d.name / "2d" / "fold_1"
    log = (folder / "training_log.txt").read_text()
    own = re.search(r"budget 30 s, [\d.]+ s/iteration -> \d+ iterations \((\d+) epochs x (\d+)\)", log)
    assert "calibration (cached)" in log and own, log
    assert "as fold 2 of this configuration chose" in log, log  # one network for all folds
    epochs, per_epoch = int(own.group(1)), int(own.group(2))
    if kill_at > epochs * per_epoch:
        pytest.skip(f"fold 1 chose {epochs} x {per_epoch} iterations; the kill at {kill_at} came too late")
    assert proc.returncode == -9, proc.stderr[-2000:]
    latest = ckpt.load_checkpoint(folder / "checkpoint_latest.pt")
    assert latest["budget"]["seconds"] == 30 and latest["epoch"] == (kill_at - 1) // per_epoch
    # resumed with another budget: the original budget, network and accounting are kept
    done = subprocess.run([sys.executable, "-m", "autounet.cli"] + args(1) + ["--continue", "--time-budget", "5m"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    log = (folder / "training_log.txt").read_text()
    assert "continuing the same network and schedule" in log
    final = ckpt.load_checkpoint(folder / "checkpoint_final.pt")
    assert final["budget"]["seconds"] == 30 and final["budget"]["used_s"] > latest["budget"]["used_s"]
    assert final["budget"]["decision"] == latest["budget"]["decision"]
    assert final["log"]["epoch"] == list(range(final["epoch"])) and final["epoch"] > latest["epoch"]
    assert final["epoch"] <= epochs * MAX_EXTENSION
    used = re.findall(r"time budget 30 s, used (\d+) s \((\d+) s by this process\)", log)
    assert used and int(used[-1][0]) > int(used[-1][1]), log  # the killed process's time is counted


def test_a_large_batch_needs_fewer_steps_so_the_planned_network_is_kept():
    # 2D frames of 64 x 64 with batch 100: 230 iterations see 23,000 patches, plenty; the flat
    # 1000-iteration rule had halved the patch (and lost the context the network needed)
    stage = stage_3d()
    stage2d = StagePlan("2d", "2d", (None, 1.0, 1.0), (0, 64, 64), (64, 64), 100, True,
                        NetworkTopology(2, 1, 2, (32, 64, 128, 256, 512), ((3, 3),) * 5,
                                        ((1, 1),) + ((2, 2),) * 4, (2,) * 5, (2,) * 4), 1.5, mirror_axes=(0, 1))
    assert learning_iterations(100) == 100 and learning_iterations(2) == 1000
    d = decide(300, stage2d, lambda st: Calibration(1.26 if st.patch_size == (64, 64) else 0.16, 0.33), 4)
    assert d.variant == "planned network kept" and 100 <= d.schedule.iterations < 1000
    assert decide(300, stage, stand_in({32: 1.26, 16: 0.5}), 0).variant != "planned network kept"
