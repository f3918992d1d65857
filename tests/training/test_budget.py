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
from autounet.autoplan.variants import VARIANTS, network_variants
from autounet.training.budget import (CONTEXT_FLOOR, MAX_EXTENSION, MAX_ITERATIONS_PER_EPOCH, MIN_EPOCH_S, STARTUP_S,
                                      BudgetTooSmall, Calibration, VariantChoice, choose_variant, decide,
                                      epochs_that_fit, estimate, final_validation_seconds, learning_iterations, parse_duration,
                                      plan_variant, schedule_for, validation_mirror)
from autounet.model.build import build_network


def stage_3d() -> StagePlan:
    net = NetworkTopology(3, 1, 3, (32, 64, 128, 256, 320), ((1, 3, 3),) + ((3, 3, 3),) * 4,
                          ((1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)), (2,) * 5, (2,) * 4)
    return StagePlan("3d_fullres", "3d_fullres", (3.0, 0.8, 0.8), (40, 200, 200), (32, 128, 128), 2, False, net, 7.0,
                     mirror_axes=(0, 1, 2))


def variants_3d():
    return network_variants(stage_3d())


def choice_of(name: str, seconds_per_iteration: float) -> VariantChoice:
    v = next(v for v in variants_3d() if v.name == name)
    return VariantChoice(v, Calibration(seconds_per_iteration, seconds_per_iteration / 3), None, True)


def test_small_budget_picks_the_heaviest_variant_that_learns():
    planned = Calibration(1.9, 0.6)
    c = choose_variant(variants_3d(), planned, 1800, num_val_cases=0)
    assert c.variant.name != "planned" and c.learns and c.variant.keeps_context
    heavier = [v for v in variants_3d()[:variants_3d().index(c.variant)]]
    for v in heavier:  # every heavier variant stays below the minimum in this budget
        assert not choose_variant([v], planned, 1800, num_val_cases=0).learns
    assert c.calibration.seconds_per_iteration == pytest.approx(1.9 * c.variant.relative_cost)  # one measurement
    assert c.schedule.expected_seconds <= 1800


def test_large_budget_keeps_the_planned_network():
    c = choose_variant(variants_3d(), Calibration(1.9, 0.6), 8 * 3600, num_val_cases=0)
    assert c.variant.name == "planned" and c.learns
    assert c.schedule.iterations_per_epoch == 250 and c.schedule.expected_seconds <= 8 * 3600


def test_variants_are_ordered_by_cost_and_only_half_the_patch_loses_context():
    vs = variants_3d()
    assert [v.name for v in vs] == list(VARIANTS)
    assert [v.relative_cost for v in vs] == sorted((v.relative_cost for v in vs), reverse=True)
    assert vs[0].relative_cost == 1.0 and [v.keeps_context for v in vs] == [True, True, True, False]


def test_without_a_learning_variant_the_full_patch_is_kept_unless_it_gets_almost_nothing():
    # some progress with the full patch (above CONTEXT_FLOOR of its minimum): context is kept
    close = choose_variant(variants_3d(), Calibration(2.0, 0.6), 600, num_val_cases=0)
    assert not close.learns and close.variant.keeps_context  # about half of its 1000 iterations
    assert close.iterations == max(plan_variant(600, v, estimate(Calibration(2.0, 0.6), v), 0).iterations
                                   for v in variants_3d() if v.keeps_context)
    assert close.iterations / close.needed >= CONTEXT_FLOOR
    half = variants_3d()[-1]
    assert plan_variant(600, half, estimate(Calibration(2.0, 0.6), half), 0).learns  # half the patch would learn
    # almost nothing with the full patch: half the patch, which gets further
    far = choose_variant(variants_3d(), Calibration(10.0, 3.0), 600, num_val_cases=0)
    assert far.variant.name == "half-patch"   # 846 iterations, where the full patch gets 110 of 1000


def test_final_validation_time_is_reserved_and_mirroring_dropped_when_it_costs_too_much():
    with_val = choose_variant(variants_3d(), Calibration(0.1, 0.05), 1800, num_val_cases=20)
    without = choose_variant(variants_3d(), Calibration(0.1, 0.05), 1800, num_val_cases=0)
    assert with_val.schedule.iterations < without.schedule.iterations
    v = variants_3d()[0]
    cheap, costly = Calibration(0.1, 0.01), Calibration(0.1, 1.0)
    assert validation_mirror(v.stage, cheap, 4, 1800) and not validation_mirror(v.stage, costly, 40, 1800)
    assert final_validation_seconds(v.stage, costly, 40, False) < final_validation_seconds(v.stage, costly, 40, True)


def test_budget_too_small_for_one_epoch_is_a_clear_error():
    with pytest.raises(BudgetTooSmall, match="give more time"):  # a ValueError: the CLI prints it as an error
        decide(STARTUP_S + 1, choice_of("planned", 5.0))


def test_budget_too_small_says_what_would_fit():
    choice = choice_of("half-features", 4.0)
    with pytest.raises(BudgetTooSmall) as e:
        decide(8, choice, num_val_cases=2)
    d = decide(e.value.needed_s, choice, num_val_cases=2)
    assert d.schedule.epochs >= 1 and d.schedule.expected_seconds <= e.value.needed_s


def test_a_decided_network_gets_only_its_schedule():
    d = decide(1800, choice_of("shallower", 0.5), elapsed_s=100)
    assert d.variant == "shallower" and d.stage.network.num_stages == stage_3d().network.num_stages - 1
    assert d.schedule.expected_seconds <= 1700 and "half the features, one stage fewer" in d.explanation


def test_schedule_never_exceeds_the_budget_and_epochs_are_not_too_short():
    for budget in (60, 300, 1200, 7200):
        for s in (0.05, 0.5, 3.0):
            sched = schedule_for(budget, Calibration(s, s / 3), 10)
            if sched is not None:
                assert sched.expected_seconds <= budget
                if sched.epochs > 1:
                    assert sched.iterations_per_epoch * s >= min(MIN_EPOCH_S, MAX_ITERATIONS_PER_EPOCH * s) - s


def test_epochs_are_stretched_to_fill_the_budget():
    """Whole epochs alone would leave up to one epoch unused; stretched, less than one iteration
    per epoch (and its share of validation) stays unused."""
    for budget in (45, 300, 1200):
        for s in (0.05, 0.178, 0.64, 3.0):
            sched = schedule_for(budget, Calibration(s, s / 3), 2)
            if sched is None or sched.epochs == 1 or sched.iterations_per_epoch == MAX_ITERATIONS_PER_EPOCH:
                continue
            assert sched.expected_seconds <= budget
            assert budget - sched.expected_seconds < sched.epochs * (s + s / 3), (budget, s, sched)


def test_lighter_variants_are_valid_networks():
    for v in variants_3d():
        st = v.stage
        assert all(p % f == 0 for p, f in zip(st.patch_size, st.network.downsampling_factor)), v.name
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
    assert "calibration (cached)" in log and own, log  # measured once on this machine
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
    c = choose_variant(network_variants(stage2d), Calibration(1.26, 0.33), 300, 4)
    assert c.variant.name == "planned" and 100 <= c.iterations < 1000
    assert choose_variant(network_variants(stage), Calibration(1.26, 0.33), 300, 0).variant.name != "planned"
