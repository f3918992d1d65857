"""Training a run's folds: one after the other on one device, or one per GPU at once.

Either way each fold gets its share of the time left when it starts (:mod:`autounet.runner.share`),
finished folds are skipped, and a started fold resumes from its checkpoint. Fold processes never
outlive the run: when it stops (an error, Ctrl-C, a scheduler's SIGTERM) it sends each one
SIGTERM, so that it stops cleanly too, and kills what is still running after ``STOP_GRACE_S``;
on Linux a fold process also receives SIGTERM when the run dies without a chance to do so
(SIGKILL, an out-of-memory kill).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Protocol, Sequence

from autounet.errors import TrainingFailed
from autounet.runner.share import fold_share
from autounet.stopping import child_environment
from autounet.training.budget import BudgetTooSmall, NetworkChoice
from autounet.training.config import TrainingConfig
from autounet.training.fold import train_fold
from autounet.workspace import DatasetPaths

log = logging.getLogger("autounet")

Job = tuple[str, int]
NEEDS = {"3d_cascade_fullres": "3d_lowres"}  # a configuration that trains on another's CV predictions
POLL_S = 5.0
STOP_GRACE_S = 30.0  # a stopped fold process leaves within this, or is killed


def fold_finished(paths: DatasetPaths, configuration: str, fold: int | str) -> bool:
    """A fold with its final checkpoint and its validation summary: nothing left to do."""
    folder = paths.trained.fold(configuration, fold)
    return folder.checkpoint("final").is_file() and folder.validation_summary.is_file()


def fold_started(paths: DatasetPaths, configuration: str, fold: int | str) -> bool:
    """A fold interrupted during training: it resumes from its checkpoint, with its own budget."""
    return paths.trained.fold(configuration, fold).checkpoint("latest").is_file()


def pending(paths: DatasetPaths, jobs: Sequence[Job]) -> list[Job]:
    """The jobs still to train (or finish), in order."""
    return [(c, f) for c, f in jobs if not fold_finished(paths, c, f)]


def train_sequentially(paths: DatasetPaths, jobs: Sequence[Job], config: TrainingConfig, device: str,
                       time_left: Callable[[], float | None], train: Callable[..., Path] = train_fold,
                       networks: Callable[[str], NetworkChoice | None] = lambda configuration: None,
                       finished: Callable[[Job], None] = lambda job: None) -> None:
    """Train (or resume) each unfinished job in order; ``time_left()`` is the training time the
    run has left (None: no budget, ``config``'s schedule); ``networks(configuration)`` the network
    decided for it; ``finished(job)`` is called after each fold."""
    todo = pending(paths, jobs)
    for i, (configuration, fold) in enumerate(todo):
        left = time_left()
        fold_config = config
        if left is not None:
            fold_config = dataclasses.replace(config, time_budget_s=fold_share(left, len(todo) - i))
            if fold_started(paths, configuration, fold):
                log.info("run: %s fold %s resumes with the budget its checkpoint holds (%.0f s of training left "
                         "for %d fold(s))", configuration, fold, max(left, 0.0), len(todo) - i)
            else:
                log.info("run: %s fold %s gets %.0f s (%.0f s of training left for %d fold(s))", configuration, fold,
                         fold_config.time_budget_s, max(left, 0.0), len(todo) - i)
        network = networks(configuration)
        try:
            train(paths, configuration, fold, fold_config, device, resume=True, network=network)
        except BudgetTooSmall as e:  # the machine slowed down far beyond the estimate: one epoch, then on
            log.warning("%s fold %s: %s; giving it %.0f s instead", configuration, fold, e, e.needed_s)
            train(paths, configuration, fold, dataclasses.replace(fold_config, time_budget_s=e.needed_s), device,
                  resume=True, network=network)
        finished((configuration, fold))


class Process(Protocol):
    def poll(self) -> int | None: ...
    def send_signal(self, signum: int) -> None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def kill(self) -> None: ...


def stop_processes(processes: Sequence[Process], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to every process still running, then SIGKILL to those not gone after ``grace_s``."""
    alive = [p for p in processes if p.poll() is None]
    for p in alive:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in alive:
        try:
            p.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("run: a fold process (pid %s) did not stop within %.0f s of SIGTERM; killing it",
                        getattr(p, "pid", "?"), grace_s)
            p.kill()
            p.wait()


def start_child(command: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """A child process of the run that does not outlive it: an ``autounet`` command stops when
    the run dies (:func:`autounet.stopping.stop_with_parent`)."""
    return subprocess.Popen(list(command), env=child_environment(env))


def _ready(job: Job, waiting: Sequence[Job], running: Sequence[Job]) -> bool:
    need = NEEDS.get(job[0])
    return need is None or not any(c == need for c, _ in [*waiting, *running])


def train_concurrently(jobs: Sequence[Job], devices: Sequence[str], launch: Callable[[Job, str, float | None], Process],
                       time_left: Callable[[], float | None], sleep: Callable[[float], None] = time.sleep) -> None:
    """Run the jobs as separate processes, one per device at a time (a cascade's folds wait for
    every fold they depend on). ``launch(job, device, budget_s)`` starts one. A failed fold stops
    new launches; the running ones finish, then the failure is raised."""
    waiting, running, failed = list(jobs), {}, []
    try:
        _train_concurrently(waiting, running, failed, devices, launch, time_left, sleep)
    finally:  # an error or a stop signal here: the fold processes stop too, cleanly
        stop_processes([proc for _, proc in running.values()])


def _train_concurrently(waiting: list[Job], running: dict[str, tuple[Job, Process]], failed: list[str],
                        devices: Sequence[str], launch: Callable[[Job, str, float | None], Process],
                        time_left: Callable[[], float | None], sleep: Callable[[float], None]) -> None:
    while waiting or running:
        for device, (job, proc) in list(running.items()):
            code = proc.poll()
            if code is not None:
                del running[device]
                if code != 0:
                    failed.append(f"{job[0]} fold {job[1]} (exit code {code})")
        for device in [d for d in devices if d not in running] if not failed else []:
            job = next((j for j in waiting if _ready(j, waiting, [r for r, _ in running.values()])), None)
            if job is None:
                break
            left = time_left()
            share = None if left is None else fold_share(left, len(waiting) + len(running), len(devices))
            waiting.remove(job)
            log.info("run: %s fold %s on %s%s", job[0], job[1], device, "" if share is None else f", {share:.0f} s")
            running[device] = (job, launch(job, device, share))
        if failed and not running:
            raise TrainingFailed(f"training failed: {', '.join(failed)}; see the folds' training logs, then run "
                                 "again (finished folds are kept)")
        if running:
            sleep(POLL_S)


def fold_command(dataset: str, job: Job, budget_s: float | None, root: Path | None = None,
                 program: Sequence[str] = ("autounet",), variant: str | None = None) -> list[str]:
    """The ``autounet train`` command line of one fold of a run (resumable, probabilities saved)."""
    command = [*program, "train", dataset, job[0], str(job[1]), "--continue", "--save-probabilities"]
    if variant is not None:
        command += ["--variant", variant]
    if budget_s is not None:
        command += ["--time-budget", f"{int(budget_s)}s"]
    return command + (["--root", str(root)] if root is not None else [])


def launcher(dataset: str, root: Path | None, extra: Sequence[str] = (),
             variants: dict[str, str] | None = None) -> Callable[[Job, str, float | None], subprocess.Popen]:
    """Starts a fold as ``python -m autounet train ... EXTRA`` on one GPU (``cuda:K`` -> CUDA_VISIBLE_DEVICES=K),
    with the network variant the run decided for its configuration (``variants``)."""
    def launch(job: Job, device: str, budget_s: float | None) -> subprocess.Popen:
        env = dict(os.environ, CUDA_VISIBLE_DEVICES=device.split(":")[-1])
        command = [*fold_command(dataset, job, budget_s, root, (sys.executable, "-m", "autounet"),
                                 (variants or {}).get(job[0])), "--device", "cuda", *extra]
        return start_child(command, env)

    return launch
