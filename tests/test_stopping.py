"""A clean stop on SIGTERM (what Slurm sends before a preemption or a time limit): real signals,
no process left behind, the fold resumed with --continue ends as an uninterrupted one."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from autounet import api
from autounet.model import checkpoint as ckpt
from autounet.runner.folds import start_child, stop_processes, train_concurrently
from autounet.stopping import Stopped

TRAIN = ["--device", "cpu", "--iterations-per-epoch", "3", "--val-iterations-per-epoch", "1", "--no-validation"]


@pytest.fixture
def prepared_2d(tiny_2d: Path, tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "ws"
    api.plan_and_preprocess(tiny_2d, root=root, processes=1)
    return tiny_2d, root


def _alive(pid: int) -> bool:
    """Running (a zombie nobody reaped counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _session_members(sid: int) -> list[int]:
    """Live processes of session ``sid`` (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_stops_train_cleanly_and_continue_finishes(prepared_2d):
    """SIGTERM from outside, as a scheduler sends it, while two augmentation workers run: exit 143
    soon, no process of the command left, the lock released, the last epoch's checkpoint intact,
    and --continue trains the rest."""
    raw, root = prepared_2d
    folder = root / "results" / raw.name / "2d" / "fold_0"
    args = [sys.executable, "-m", "autounet", "train", str(raw), "2d", "0", "--root", str(root), *TRAIN,
            "--epochs", "200", "--num-workers", "2"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for(lambda: (folder / "checkpoint_latest.pt").is_file() or proc.poll() is not None, 120,
                  "the first epoch's checkpoint")
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err[-2000:]
    assert "stopped by SIGTERM" in err and "--continue" in err
    _wait_for(lambda: not _session_members(proc.pid), 10, "the augmentation workers to leave")
    assert not (folder / ".fold.lock").exists()
    done = ckpt.load_checkpoint(folder / "checkpoint_latest.pt")["epoch"]
    assert 1 <= done < 200
    assert not list(folder.glob(".*.tmp*"))  # nothing half-written left behind
    log = (folder / "training_log.txt").read_text()
    assert f"epoch {done - 1}/199" in log
    finish = [a if a != "200" else str(done + 1) for a in args] + ["--continue"]
    assert subprocess.run(finish, capture_output=True).returncode == 0
    assert ckpt.load_checkpoint(folder / "checkpoint_final.pt")["log"]["epoch"] == list(range(done + 1))


_SIGNAL_AT_STEP = textwrap.dedent("""
    import os, signal, sys
    import torch
    from autounet.cli import main
    at, calls = int(sys.argv[1]), {"n": 0}
    real = torch.nn.utils.clip_grad_norm_
    def clip(*a, **k):              # SIGTERM arrives in the middle of a training step
        calls["n"] += 1
        if calls["n"] == at:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)
    torch.nn.utils.clip_grad_norm_ = clip
    sys.exit(main(sys.argv[2:]))
""")


def test_a_fold_stopped_by_sigterm_resumes_to_the_uninterrupted_result(prepared_2d, tmp_path):
    raw, root = prepared_2d
    other = tmp_path / "ws_uninterrupted"
    shutil.copytree(root, other)
    args = ["train", str(raw), "2d", "0", *TRAIN, "--epochs", "4", "--num-workers", "0"]
    stopped = subprocess.run([sys.executable, "-c", _SIGNAL_AT_STEP, str(2 * 3 + 2), *args, "--root", str(root)],
                             capture_output=True, text=True)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    folder = root / "results" / raw.name / "2d" / "fold_0"
    assert ckpt.load_checkpoint(folder / "checkpoint_latest.pt")["epoch"] == 2  # the third epoch was in progress
    resumed = subprocess.run([sys.executable, "-m", "autounet", *args, "--root", str(root), "--continue"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    whole = subprocess.run([sys.executable, "-m", "autounet", *args, "--root", str(other)], capture_output=True,
                           text=True)
    assert whole.returncode == 0, whole.stderr[-2000:]
    a = ckpt.load_checkpoint(folder / "checkpoint_final.pt")
    b = ckpt.load_checkpoint(other / "results" / raw.name / "2d" / "fold_0" / "checkpoint_final.pt")
    assert a["log"]["train_loss"] == pytest.approx(b["log"]["train_loss"], rel=1e-5)
    for name, tensor in b["network"].items():
        assert torch.allclose(a["network"][name].float(), tensor.float(), rtol=1e-3, atol=1e-5), name


_PARENT = textwrap.dedent("""
    import sys, time
    from autounet.runner.folds import start_child
    child = start_child([sys.executable, "-c", "import time; from autounet.stopping import stop_with_parent; "
                                               "stop_with_parent(); time.sleep(120)"])  # as `autounet train` does
    print(child.pid, flush=True)
    time.sleep(120)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
def test_a_fold_process_does_not_outlive_a_killed_run():
    parent = subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    assert _alive(child)
    parent.kill()
    parent.wait()
    _wait_for(lambda: not _alive(child), 10, "the orphaned fold process to stop")


_FOLD = textwrap.dedent("""
    import signal, sys, time
    from pathlib import Path
    def stop(signum, frame):
        Path(sys.argv[1]).write_text("stopped cleanly")
        sys.exit(143)
    signal.signal(signal.SIGTERM, stop)
    Path(sys.argv[1] + ".ready").touch()
    time.sleep(120)
""")


def test_a_stopped_run_stops_its_fold_processes(tmp_path):
    """A run stopped while its folds train on two GPUs sends each fold process SIGTERM and waits:
    they stop cleanly, none is left."""
    started = []

    def launch(job, device, budget_s):
        proc = start_child([sys.executable, "-c", _FOLD, str(tmp_path / f"{device}.txt")])
        started.append(proc)
        return proc

    def sleep(seconds):  # the run's poll, once both fold processes train: the run is told to stop
        _wait_for(lambda: len(list(tmp_path.glob("*.ready"))) == 2, 30, "both fold processes to start")
        raise Stopped(signal.SIGTERM)

    with pytest.raises(Stopped):
        train_concurrently([("2d", f) for f in range(5)], ["cuda:0", "cuda:1"], launch, lambda: None, sleep)
    assert len(started) == 2 and all(p.poll() == 143 for p in started)
    assert sorted(f.name for f in tmp_path.glob("*.txt")) == ["cuda:0.txt", "cuda:1.txt"]  # each stopped cleanly


def test_stop_processes_kills_what_ignores_sigterm(tmp_path):
    ready = tmp_path / "ready"
    proc = start_child([sys.executable, "-c", "import signal, sys, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                        "open(sys.argv[1], 'w').close()\ntime.sleep(120)", str(ready)])
    _wait_for(ready.exists, 30, "the process to start")
    stop_processes([proc], grace_s=0.5)
    assert proc.poll() == -signal.SIGKILL


_HANDLERS = textwrap.dedent("""
    import os, signal, time
    from autounet.stopping import Stopped, deferred_stop, stop_on_signals, stop_point
    before = signal.getsignal(signal.SIGTERM)
    try:
        with stop_on_signals():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
                print("not stopped")
            finally:  # a second signal during the clean-up does not interrupt it
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                print("clean-up finished")
    except Stopped as e:
        print("stopped", e.exit_code)
    print("restored", signal.getsignal(signal.SIGTERM) is before)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with stop_on_signals():  # nohup's SIGHUP stays ignored
        print("SIGHUP ignored", signal.getsignal(signal.SIGHUP) is signal.SIG_IGN)
        try:  # during a training epoch the signal waits for the end of the current step
            with deferred_stop():
                os.kill(os.getpid(), signal.SIGUSR1)
                time.sleep(0.05)
                print("step finished")
                stop_point()
                print("not stopped")
        except Stopped as e:
            print("stopped at the stop point", e.exit_code)
""")


def test_stop_on_signals_raises_once_and_restores_the_handlers():
    """In a process of its own: a signal to the test process would reach pytest's threads too."""
    out = subprocess.run([sys.executable, "-c", _HANDLERS], capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[:-1] == ["clean-up finished", "stopped 143", "restored True", "SIGHUP ignored True",
                                           "step finished", "stopped at the stop point 138"], out.stdout + out.stderr
    assert "SIGTERM again: still stopping cleanly" in out.stderr
