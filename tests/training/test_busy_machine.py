"""Budgets on a busy machine (issue 14): load noticed while calibrating, the choice revisited
after the first epoch, the learning rate never rising; rules run with stand-in clocks."""

from __future__ import annotations

import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from autounet import load
from autounet.training import calibration as cal
from autounet.training import schedule
from autounet.training.budget import EPOCH_OVERHEAD_S, SPEED_MISMATCH, Calibration, speed_ratio
from autounet.training.config import TrainingConfig, next_lr, poly_lr


# ---------------------------------------------------------------- learning rate

def test_next_lr_is_poly_decay_for_a_fixed_total():
    lr = None
    for epoch in range(30):
        lr = next_lr(0.01, lr, epoch, 30)
        assert lr == pytest.approx(poly_lr(0.01, epoch, 30), rel=1e-9)


@pytest.mark.parametrize("new_total", [60, 300, 16])
def test_next_lr_never_rises_when_the_total_changes(new_total):
    lrs, lr = [], None
    for epoch in range(15):
        lr = next_lr(0.01, lr, epoch, 20)
        lrs.append(lr)
    for epoch in range(15, new_total):  # re-planned at epoch 15: more (or fewer) epochs than the 20 planned
        lr = next_lr(0.01, lr, epoch, new_total)
        lrs.append(lr)
    assert all(b <= a for a, b in zip(lrs, lrs[1:]))
    assert lrs[15] > 0 and next_lr(0.01, lrs[-1], new_total, new_total) == 0.0
    # the old rule, poly over the new total, would have jumped up at epoch 15
    if new_total > 20:
        assert poly_lr(0.01, 15, new_total) > lrs[14]


# ---------------------------------------------------------------- load while calibrating

def fake_steps(durations):
    """run_steps(n) that advances a stand-in clock by the next durations."""
    clock = {"t": 0.0}
    queue = list(durations)

    def run(n):
        for _ in range(n):
            clock["t"] += queue.pop(0)
    return run, clock


@pytest.mark.parametrize("steps,others,loaded", [
    ([1.0] + [0.5] * 5, 0.0, False),                   # steady, quiet
    ([1.0] + [0.5, 0.5, 2.0, 0.5, 0.5], 0.0, True),    # one step 4x slower: unsteady
    ([1.0] + [0.5] * 5, 0.9, True),                    # other processes kept 0.9 cores busy
    ([1.0] + [0.5] * 5, None, False),                  # load unknown (not Linux), steady
])
def test_measure_reports_load_and_takes_the_median(monkeypatch, steps, others, loaded):
    run_steps, clock = fake_steps(steps)
    monkeypatch.setattr(cal.time, "perf_counter", lambda: clock["t"])
    monkeypatch.setattr(cal, "snapshot", lambda: object())
    monkeypatch.setattr(cal, "other_cores", lambda a, b: others)
    c = cal.measure(run_steps, lambda n: clock.__setitem__("t", clock["t"] + 0.1 * n))
    assert c.seconds_per_iteration == pytest.approx(0.5)
    assert c.seconds_per_val_iteration == pytest.approx(0.1)
    assert c.under_load is loaded and c.other_cores == others


def test_a_slow_network_is_measured_within_its_share_of_the_budget(monkeypatch):
    """5.4 s a step (a 512x448 patch): five timed steps and three forwards took 46 s of a 5-minute
    run; capped, the timed steps stop once they took max_s, and one forward is timed."""
    run_steps, clock = fake_steps([5.0] * 10)
    forwards = []
    monkeypatch.setattr(cal.time, "perf_counter", lambda: clock["t"])
    monkeypatch.setattr(cal, "snapshot", lambda: None)

    def run_forwards(n):
        forwards.append(n)
        clock["t"] += 1.5 * n
    c = cal.measure(run_steps, run_forwards, max_s=6.0)
    assert clock["t"] == pytest.approx(5.0 + 2 * 5.0 + 1.5)  # warm-up, two timed steps, one forward
    assert c.seconds_per_iteration == pytest.approx(5.0) and c.seconds_per_val_iteration == pytest.approx(1.5)
    assert forwards == [1]
    run_steps, clock = fake_steps([0.5] * 10)  # a fast network: the cap changes nothing
    monkeypatch.setattr(cal.time, "perf_counter", lambda: clock["t"])
    forwards.clear()
    cal.measure(run_steps, run_forwards, max_s=6.0)
    assert clock["t"] == pytest.approx(0.5 + 5 * 0.5 + 1.5 * 3) and forwards == [1, cal.MEASURED_FORWARDS]
    # the warm-up alone exceeds the allowance: it is still not the estimate (a first step carries
    # one-time costs; on an echocardiography-like set 5.4 s against 3.8 s), one more step is timed
    run_steps, clock = fake_steps([10.0] + [4.0] * 10)
    monkeypatch.setattr(cal.time, "perf_counter", lambda: clock["t"])
    c = cal.measure(run_steps, run_forwards, max_s=3.0)
    assert clock["t"] == pytest.approx(10.0 + 4.0 + 1.5) and c.seconds_per_iteration == pytest.approx(4.0)


BUSY_LOOP = "import time\nt = time.time() + {s}\nwhile time.time() < t: pass"


def _others_while(start_busy) -> float:
    """Cores used by other processes over 1.5 s while ``start_busy()`` runs a busy loop."""
    start_busy()
    time.sleep(0.3)
    before = load.snapshot()
    time.sleep(1.5)
    return load.other_cores(before, load.snapshot())


def test_other_cores_counts_other_processes_but_not_our_children():
    if load.snapshot() is None:
        pytest.skip("no Linux /proc")
    quiet = _others_while(lambda: None)
    children = []
    child = _others_while(lambda: children.append(subprocess.Popen([sys.executable, "-c", BUSY_LOOP.format(s=2.5)])))
    children[0].wait()
    # sh exits at once and the busy loop is re-parented: another process, as another user's job would be
    stranger = _others_while(lambda: subprocess.run(["sh", "-c", f"{sys.executable} -c '{BUSY_LOOP.format(s=2.5)}' &"]))
    assert child - quiet < 0.4  # our own work (augmentation workers are children) is not load
    assert stranger - quiet > 0.6


def test_other_cores_from_snapshots():
    a = load.CpuSnapshot(wall=10.0, machine_busy=100.0, own=40.0)
    b = load.CpuSnapshot(wall=12.0, machine_busy=104.0, own=42.0)
    assert load.other_cores(a, b) == pytest.approx(1.0)
    assert load.other_cores(a, None) is None and load.other_cores(b, a) is None



def test_load_counts_only_the_cpus_this_process_may_use(tmp_path, monkeypatch):
    """Inside a Slurm cpuset on a busy node, other jobs' cores were counted as load and training
    dropped to one thread: /proc/stat's first line is the whole node."""
    stat = tmp_path / "stat"
    stat.write_text("cpu  4000 0 0 0 0 0 0 0 0 0\n"
                    "cpu0 100 0 0 900 0 0 0 0 0 0\ncpu1 200 0 0 800 0 0 0 0 0 0\n"
                    "cpu2 1000 0 0 0 0 0 0 0 0 0\ncpu3 2700 0 0 0 0 0 0 0 0 0\n"
                    "intr 12345 0 0\nctxt 999\n")
    monkeypatch.setattr(load, "PROC", tmp_path)
    assert load._machine_busy(frozenset({0, 1})) == pytest.approx(300 / load.CLOCK_TICKS)
    assert load._machine_busy(None) == pytest.approx(4000 / load.CLOCK_TICKS)

# ---------------------------------------------------------------- the first epoch against the calibration

def _run(calibration: Calibration):
    config = TrainingConfig(epochs=20, iterations_per_epoch=50, val_iterations_per_epoch=10, amp=False)
    budget = {"seconds": 1200.0, "calibration": calibration.__dict__ | {}, "variant": "half-patch"}
    return SimpleNamespace(budget=budget, config=config, setup=SimpleNamespace(stage="variant"), device="cpu")


@pytest.fixture
def stored(monkeypatch):
    calls = []
    monkeypatch.setattr(schedule, "calibration_key", lambda *a: "key")
    monkeypatch.setattr(schedule, "store", lambda key, c: calls.append(c))
    return calls


EXPECTED = 50 * 2.0 + 10 * 0.5 + EPOCH_OVERHEAD_S  # the first epoch's predicted wall time at 2 s/iteration


def test_a_fast_first_epoch_replaces_an_estimate_taken_under_load(stored):
    run = _run(Calibration(2.0, 0.5, other_cores=1.0, under_load=True))  # measured 8x slow, under load
    schedule.check_speed(run, EXPECTED / 8, workers=1)
    assert stored[0].seconds_per_iteration == pytest.approx(2.0 / 8, rel=0.01)  # the cache learns the real speed
    assert run.budget["calibration"]["seconds_per_iteration"] == pytest.approx(2.0 / 8, rel=0.01)
    assert run.budget["variant"] == "half-patch"  # the network was decided before the fold: it stays


def test_first_epoch_as_predicted_changes_nothing(stored):
    run = _run(Calibration(2.0, 0.5))
    for wall in (EXPECTED, EXPECTED * 0.8, EXPECTED * SPEED_MISMATCH * 0.99):
        schedule.check_speed(run, wall, workers=1)
    assert stored == [] and run.budget["calibration"]["seconds_per_iteration"] == 2.0


def test_an_estimate_taken_under_load_is_checked_more_tightly(stored):
    steady, loaded = _run(Calibration(2.0, 0.5)), _run(Calibration(2.0, 0.5, other_cores=1.0, under_load=True))
    schedule.check_speed(steady, EXPECTED / 1.4, workers=1)
    assert stored == []
    schedule.check_speed(loaded, EXPECTED / 1.4, workers=1)
    assert len(stored) == 1


def test_speed_ratio():
    c = Calibration(1.0, 0.5)
    assert speed_ratio(c, 10, 2, 11.0 + EPOCH_OVERHEAD_S) == pytest.approx(1.0)
    assert speed_ratio(c, 10, 2, 2 * (11.0 + EPOCH_OVERHEAD_S)) == pytest.approx(2.0)
