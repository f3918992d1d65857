"""One writer per dataset: a second process that would preprocess the same dataset, run it or
train the same fold stops at once and says who holds the work (or waits with --wait); the lock
dies with its process, SIGKILL included."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import logging
import time
from pathlib import Path

import pytest

from autounet import api
from autounet.locks import LOCKED_EXIT_CODE, LockedError, locked, read_holder
from autounet.workspace import dataset_paths

HOLD = """
import sys, time
from autounet.locks import locked
with locked(sys.argv[1], "a test's work"):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold_in_child(path: Path, seconds: float) -> subprocess.Popen:
    """A child process holding the lock at ``path`` for ``seconds``, returned once it holds it."""
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    return child


def _cli(*args: str, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autounet", *args, "--root", str(root)], capture_output=True,
                          text=True, timeout=600)


def test_a_second_holder_is_refused_with_who_holds_it(tmp_path: Path):
    path = tmp_path / "work" / ".lock"
    child = _hold_in_child(path, 60)
    try:
        with pytest.raises(LockedError) as e:
            with locked(path, "fold 0 of 2d of Dataset001_X"):
                pytest.fail("two holders at once")
        message = str(e.value)
        assert f"pid {child.pid}" in message and "fold 0 of 2d of Dataset001_X" in message
        assert str(path) in message and "--wait" in message and "-c" in message  # the holder's command
        assert e.value.exit_code == LOCKED_EXIT_CODE
    finally:
        child.kill()
        child.wait()


def test_the_lock_dies_with_its_process_even_on_sigkill(tmp_path: Path):
    path = tmp_path / ".lock"
    child = _hold_in_child(path, 60)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with locked(path, "the work"):  # nothing stale to delete
        assert read_holder(path).pid == os.getpid()


def test_wait_blocks_until_the_holder_ends_and_nothing_is_left_behind(tmp_path: Path):
    path = tmp_path / "made" / ".lock"
    child = _hold_in_child(path, 1.5)
    started = time.monotonic()
    with locked(path, "the work", wait=True):
        assert time.monotonic() - started >= 1.0, "entered while the other process still held the lock"
        assert read_holder(path).pid == os.getpid()
    assert child.wait(timeout=60) == 0
    assert not (tmp_path / "made").exists()  # the lock file and the folder made for it are gone


@pytest.fixture
def planned_2d(tiny_2d: Path, tmp_path: Path):
    root = tmp_path / "ws"
    api.plan_and_preprocess(tiny_2d, root=root, processes=1)
    return tiny_2d, root, dataset_paths(root, tiny_2d.name)


def test_train_refuses_a_fold_another_process_trains_and_writes_nothing(planned_2d):
    raw, root, paths = planned_2d
    fold = paths.trained.fold("2d", 0)
    with locked(fold.lock, "held by the test"):
        out = _cli("train", str(raw), "2d", "0", "--epochs", "1", "--iterations-per-epoch", "2", "--device", "cpu",
                   root=root)
    assert out.returncode == LOCKED_EXIT_CODE, out.stderr[-2000:]
    assert "fold 0 of 2d" in out.stderr and f"pid {os.getpid()}" in out.stderr, out.stderr
    assert not fold.training_log.exists() and not fold.checkpoint("latest").exists()


def test_two_trainers_of_one_fold_one_trains_the_other_stops(planned_2d):
    raw, root, paths = planned_2d
    fold = paths.trained.fold("2d", 1)
    args = ["train", str(raw), "2d", "1", "--epochs", "3", "--iterations-per-epoch", "20", "--num-workers", "0",
            "--device", "cpu", "--root", str(root)]
    first = subprocess.Popen([sys.executable, "-m", "autounet", *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while (read_holder(fold.lock) is None or read_holder(fold.lock).pid != first.pid) and first.poll() is None:
        assert time.monotonic() < deadline, "the first trainer never took the fold's lock"
        time.sleep(0.05)
    second = subprocess.run([sys.executable, "-m", "autounet", *args], capture_output=True, text=True, timeout=600)
    _, err = first.communicate(timeout=600)
    if second.returncode == 0:  # the first had finished before the second started: nothing ran side by side
        pytest.skip("the first trainer ended before the second started")
    assert first.returncode == 0, err[-2000:]
    assert second.returncode == LOCKED_EXIT_CODE and f"pid {first.pid}" in second.stderr, second.stderr[-2000:]
    assert fold.training_log.read_text().count("training 2d fold 1") == 1  # one trainer's log, not two


def test_run_refuses_while_another_run_holds_the_dataset(planned_2d):
    raw, root, paths = planned_2d
    with locked(paths.trained.run_lock, "held by the test"):
        out = _cli("run", str(raw), "--epochs", "1", "--iterations-per-epoch", "2", "--device", "cpu", root=root)
    assert out.returncode == LOCKED_EXIT_CODE and f"the run of {raw.name}" in out.stderr, out.stderr[-2000:]
    assert not paths.trained.run_record.exists()


def test_preprocessing_refuses_or_waits_for_another_preprocessor(planned_2d):
    raw, root, paths = planned_2d
    with locked(paths.preprocessing_lock, "held by the test"):
        out = _cli("plan_and_preprocess", str(raw), "-p", "1", root=root)
    assert out.returncode == LOCKED_EXIT_CODE and f"preprocessing of {raw.name}" in out.stderr, out.stderr[-2000:]

    holder = _hold_in_child(paths.preprocessing_lock, 2.0)
    waited = _cli("plan_and_preprocess", str(raw), "-p", "1", "--wait", root=root)
    assert waited.returncode == 0 and "waiting for it to end" in waited.stderr, waited.stderr[-2000:]
    assert holder.wait(timeout=60) == 0


def test_the_report_waits_for_another_report_writer(planned_2d, caplog):
    raw, root, paths = planned_2d
    from autounet.workspace import report_lock

    child = _hold_in_child(report_lock(paths.trained.report), 1.5)
    with caplog.at_level(logging.INFO, logger="autounet"):
        page = api.report(raw, root=root)
    assert page.is_file() and "is locked by another autounet process" in caplog.text and "going on" in caplog.text
    assert child.wait(timeout=60) == 0
