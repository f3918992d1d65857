"""The run's budget rule with a stand-in clock: which configurations, each fold's share, the
leftover passed on, the accounting kept across a kill, folds spread over several GPUs."""

from __future__ import annotations

import pytest

from autounet.errors import TrainingFailed
from autounet.runner import folds as run_folds
from autounet.runner.folds import train_concurrently, train_sequentially
from autounet.runner.ledger import heartbeat, open_ledger
from autounet.autoplan.plans import NetworkTopology, StagePlan
from autounet.autoplan.variants import network_variants
from autounet.runner.share import (MIN_FOLD_S, ConfigurationCost, after_training_s, fold_share, plan_configurations,
                                   worth_training)
from autounet.training.budget import Calibration
from autounet.training.budget import BudgetTooSmall
from autounet.training.config import TrainingConfig

ALL_3D = ["2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("training_s,expected", [
    (20 * 60, ["3d_fullres", "2d"]),                 # both, whatever the budget: the CV decides between them
    (60.0, ["3d_fullres", "2d"]),
    (20 * MIN_FOLD_S - 1, ["3d_fullres", "2d"]),      # the cascade needs MIN_FOLD_S for every fold of all four
    (20 * MIN_FOLD_S, ["3d_fullres", "2d", "3d_lowres", "3d_cascade_fullres"]),
    (None, ["3d_fullres", "2d", "3d_lowres", "3d_cascade_fullres"]),  # no budget: everything, as nnU-Net
])
def test_configurations_worth_training(training_s, expected):
    assert worth_training(ALL_3D, training_s, 5) == expected


def test_a_2d_dataset_trains_2d_and_a_low_stage_alone_is_not_a_model():
    assert worth_training(["2d"], 60.0, 5) == ["2d"]
    assert worth_training(["3d_fullres", "3d_lowres"], None, 5) == ["3d_fullres"]   # no cascade stage planned
    with pytest.raises(ValueError, match="nothing to train"):
        worth_training(["3d_lowres"], 100.0, 5)


def test_fold_share_and_reserve():
    assert fold_share(1000.0, 4) == 250.0
    assert fold_share(1000.0, 4, concurrent=2) == 500.0
    assert fold_share(1000.0, 2, concurrent=4) == 1000.0    # never more than what is left
    assert fold_share(-50.0, 3) == 1.0                      # overrun: one second, the fold then asks for one epoch
    assert after_training_s(1200.0) == pytest.approx(36.0) and after_training_s(60.0) == 10.0


def _fake_training(clock: Clock, used: dict, factor: float = 1.0, too_small: set = frozenset()):
    """A stand-in for train_fold: uses ``factor`` of its budget on the clock and records it."""
    def train(paths, configuration, fold, config, device, resume, network=None):
        if (configuration, fold) in too_small and config.time_budget_s < 100:
            raise BudgetTooSmall("not even one epoch fits", needed_s=100.0)
        used[(configuration, fold)] = config.time_budget_s
        clock.now += config.time_budget_s * factor
    return train


def test_leftover_of_a_fast_fold_passes_to_the_next(tmp_path, monkeypatch):
    clock, budgets = Clock(), {}
    monkeypatch.setattr(run_folds, "fold_finished", lambda paths, c, f: False)
    monkeypatch.setattr(run_folds, "fold_started", lambda paths, c, f: False)
    jobs = [("2d", f) for f in range(4)]
    train_sequentially(None, jobs, TrainingConfig(), "cpu", lambda: 1000.0 - clock(),
                       _fake_training(clock, budgets, factor=0.5))
    # 1000/4 = 250, half used -> 875 left for 3 -> 291.7, ...
    assert budgets[("2d", 0)] == pytest.approx(250.0)
    assert budgets[("2d", 1)] == pytest.approx(875.0 / 3)
    assert budgets[("2d", 2)] == pytest.approx((875.0 - 875.0 / 6) / 2)
    assert budgets[("2d", 3)] == pytest.approx(1000.0 - 125.0 - 875.0 / 6 - budgets[("2d", 2)] / 2)  # all that is left


def test_a_fold_far_slower_than_estimated_gets_one_epoch_and_the_run_finishes(monkeypatch):
    clock, budgets = Clock(), {}
    monkeypatch.setattr(run_folds, "fold_finished", lambda paths, c, f: False)
    monkeypatch.setattr(run_folds, "fold_started", lambda paths, c, f: False)
    train_sequentially(None, [("2d", 0), ("2d", 1)], TrainingConfig(), "cpu", lambda: 50.0 - clock(),
                       _fake_training(clock, budgets, too_small={("2d", 0), ("2d", 1)}))
    assert budgets == {("2d", 0): 100.0, ("2d", 1): 100.0}


def test_finished_folds_are_skipped_and_share_nothing(monkeypatch):
    clock, budgets = Clock(), {}
    monkeypatch.setattr(run_folds, "fold_finished", lambda paths, c, f: f < 3)
    monkeypatch.setattr(run_folds, "fold_started", lambda paths, c, f: False)
    train_sequentially(None, [("2d", f) for f in range(5)], TrainingConfig(), "cpu", lambda: 400.0 - clock(),
                       _fake_training(clock, budgets))
    assert budgets == {("2d", 3): 200.0, ("2d", 4): 200.0}


def test_the_ledger_keeps_the_time_of_a_killed_session(tmp_path):
    path, clock = tmp_path / "run.json", Clock()
    ledger = open_ledger(path, 1200.0, clock)
    ledger.record.configurations = ["2d"]
    clock.now = 300.0
    ledger.save()            # the last heartbeat before a SIGKILL
    clock.now = 304.0        # killed here: these 4 s are lost to the accounting
    restarted = open_ledger(path, 1200.0, clock)
    assert restarted.record.sessions == 2 and restarted.record.configurations == ["2d"]
    assert restarted.used_s() == pytest.approx(300.0)
    clock.now = 404.0
    assert restarted.left_s(after_s=50.0) == pytest.approx(1200.0 - 400.0 - 50.0)
    with heartbeat(restarted, every_s=0.01):
        pass
    assert open_ledger(path, None, clock).record.used_s == pytest.approx(400.0)


class FakeProcess:
    def __init__(self, clock: Clock, seconds: float, code: int = 0):
        self.clock, self.ends, self.code = clock, clock() + seconds, code

    def poll(self):
        return self.code if self.clock() >= self.ends else None


def test_folds_run_one_per_gpu_and_the_cascade_waits_for_its_low_stage():
    clock, launched = Clock(), []

    def launch(job, device, budget_s):
        launched.append((clock(), job, device, budget_s))
        return FakeProcess(clock, 100.0 if job[0] == "3d_lowres" else 60.0)

    def sleep(seconds):
        clock.now += seconds

    jobs = [("3d_lowres", f) for f in range(3)] + [("3d_cascade_fullres", f) for f in range(3)]
    train_concurrently(jobs, ["cuda:0", "cuda:1"], launch, lambda: 1200.0 - clock(), sleep)
    assert [j for _, j, _, _ in launched][:2] == [("3d_lowres", 0), ("3d_lowres", 1)]
    assert launched[0][3] == pytest.approx(1200.0 * 2 / 6)
    first_cascade = min(t for t, j, _, _ in launched if j[0] == "3d_cascade_fullres")
    last_lowres_end = max(t + 100.0 for t, j, _, _ in launched if j[0] == "3d_lowres")
    assert first_cascade >= last_lowres_end
    assert {d for _, _, d, _ in launched} == {"cuda:0", "cuda:1"}


def test_a_failed_fold_stops_new_launches_and_is_reported():
    clock, launched = Clock(), []

    def launch(job, device, budget_s):
        launched.append(job)
        return FakeProcess(clock, 10.0, code=1 if job == ("2d", 0) else 0)

    def sleep(seconds):
        clock.now += seconds

    with pytest.raises(TrainingFailed, match="2d fold 0 .exit code 1"):  # a message at the command line, exit 2
        train_concurrently([("2d", f) for f in range(5)], ["cuda:0", "cuda:1"], launch, lambda: None, sleep)
    assert launched == [("2d", 0), ("2d", 1)]


def test_a_restart_keeps_the_choice_unless_the_budget_changes(tmp_path):
    from types import SimpleNamespace

    from autounet.runner.options import RunOptions
    from autounet.runner.pipeline import _choose

    plans = SimpleNamespace(configurations={"2d": None, "3d_fullres": None})
    path, clock = tmp_path / "run.json", Clock()
    first = open_ledger(path, 1200.0, clock)
    first.record.configurations = _choose(first, plans, RunOptions(), 1100.0, 5)
    assert first.record.configurations == ["3d_fullres", "2d"]
    first.record.configurations = ["2d"]    # e.g. chosen by -c 2d, or by an earlier version of the rule
    first.save()
    same = open_ledger(path, 1200.0, clock)
    assert not same.budget_changed
    assert _choose(same, plans, RunOptions(), 1.0, 5) == ["2d"]                 # the choice is kept
    longer = open_ledger(path, 8 * 3600.0, clock)
    assert longer.budget_changed
    assert _choose(longer, plans, RunOptions(), 7 * 3600.0, 5) == ["3d_fullres", "2d"]   # chosen again


# ---------------------------------------------------------------- a short budget spent on what can learn

def _stage(name: str, dims: int, batch: int) -> StagePlan:
    n = 4
    kernels, strides = ((3,) * dims,) * n, ((1,) * dims,) + ((2,) * dims,) * (n - 1)
    net = NetworkTopology(dims, 1, 3, (32, 64, 128, 256), kernels, strides, (2,) * n, (2,) * (n - 1))
    patch = (16, 48, 48)[-dims:]
    return StagePlan(name, name, (1.0,) * dims, (16, 48, 48), patch, batch, False, net, 1.0,
                     mirror_axes=tuple(range(dims)))


def _costs(s2d: float, s3d: float) -> list[ConfigurationCost]:
    """The main job's example as measured in float32 on 2 cores: 3d_fullres 0.64-0.75 s and 2d
    0.18-0.20 s per planned iteration (batch 2 and 12), 4 validation cases a fold."""
    return [ConfigurationCost("3d_fullres", tuple(network_variants(_stage("3d_fullres", 3, 2))), Calibration(s3d, s3d / 4), 4),
            ConfigurationCost("2d", tuple(network_variants(_stage("2d", 2, 12))), Calibration(s2d, s2d / 4), 4)]


def test_a_short_budget_trains_the_configuration_that_can_learn():
    plan = plan_configurations(_costs(0.18, 0.7), 250.0, 5)
    assert [name for name, _ in plan] == ["2d"]
    (_, choice), = plan
    assert choice.learns and choice.variant.name == "planned"


def test_a_long_budget_trains_every_candidate_each_to_its_minimum():
    plan = plan_configurations(_costs(0.18, 0.7), 10 * 3600.0, 5)
    assert [name for name, _ in plan] == ["3d_fullres", "2d"] and all(c.learns for _, c in plan)


def test_when_nothing_learns_the_closest_trains_alone_and_user_choices_are_kept():
    plan = plan_configurations(_costs(5.0, 30.0), 120.0, 5)
    assert [name for name, _ in plan] == ["2d"] and not plan[0][1].learns
    kept = plan_configurations(_costs(0.18, 0.7), 250.0, 5, keep_all=True)
    assert [name for name, _ in kept] == ["3d_fullres", "2d"]


def test_a_slow_machine_makes_the_rule_drop_more():
    # the same budget on a machine four times slower: 2d needs a lighter network to learn
    quick = dict(plan_configurations(_costs(0.18, 0.7), 250.0, 5))
    slow = dict(plan_configurations(_costs(0.72, 2.8), 250.0, 5))
    assert quick["2d"].variant.relative_cost > slow["2d"].variant.relative_cost
