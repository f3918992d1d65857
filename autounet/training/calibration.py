"""Calibration: measure a configuration's real speed on this machine, data loading included.

A few training steps (with the real sampler, augmentation workers, network, loss and
optimiser) and a few forward passes are timed after a warm-up; the step time is the median of
the timed steps. While it measures, it watches the machine (:mod:`autounet.load`): when other
processes keep more than half a core busy, or the steps' times spread by more than
``SPREAD_LIMIT``, the measurement is marked as taken under load, says so in the log, and is not
cached (training compares it with its first epoch and revisits the choice it made:
:func:`autounet.training.schedule.check_speed`). Steady results are cached per machine,
software and configuration in ``$AUTOUNET_CACHE`` (default ``~/.cache/autounet``), so a second
fold or a re-run does not measure again; an entry is replaced when a run measures a speed that
differs from it by more than ``training.budget.SPEED_MISMATCH``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch

from autounet.autoplan.plans import StagePlan
from autounet.hardware import detect_hardware, user_cache
from autounet.io.atomic import read_json, write_json
from autounet.load import BUSY_CORES, other_cores, snapshot
from autounet.training.budget import Calibration

log = logging.getLogger("autounet.training")
WARMUP_STEPS, MEASURED_STEPS, MEASURED_FORWARDS = 1, 5, 2  # short: training re-plans from real epoch times
SPREAD_LIMIT = 2.0  # slowest / fastest timed step beyond this: the machine was not steady


def cache_file() -> Path:
    return user_cache() / "calibration.json"


def calibration_key(stage: StagePlan, device: torch.device, amp: bool, workers: int, augmentation: bool) -> str:
    hw = detect_hardware(device.type)
    fields = {"version": 2, "hw": [hw.device, hw.device_name, hw.cpu_cores, hw.gpu_memory_gb],
              "torch": torch.__version__,
              "network": asdict(stage.network), "patch": stage.patch_size, "batch": stage.batch_size, "amp": amp,
              "workers": workers, "augmentation": augmentation}
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:20]


def cached(key: str) -> Calibration | None:
    try:
        entry = read_json(cache_file()).get(key)
    except (OSError, ValueError):
        return None
    try:
        return Calibration(**entry["calibration"]) if entry else None
    except (TypeError, KeyError):  # an entry of another version
        return None


def store(key: str, calibration: Calibration) -> None:
    path = cache_file()
    try:
        data = read_json(path) if path.is_file() else {}
    except (OSError, ValueError):
        data = {}
    data[key] = {"calibration": asdict(calibration), "measured": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        write_json(path, data)
    except OSError as e:  # a read-only home must not stop training
        log.warning("could not cache the calibration in %s: %s", path, e)


def measure(run_steps, run_forwards, max_s: float | None = None) -> Calibration:
    """Time ``run_steps(1)`` (a training step) ``MEASURED_STEPS`` times and ``run_forwards(n)``
    after a warm-up, watching the load of the machine meanwhile. ``max_s``: the timed steps stop
    once they took that long (at least one step after the warm-up is always timed), and one
    forward is timed without its own warm-up: a network of several seconds a step (a 512x448
    patch on a 2-core CPU: 5.4 s) took 46 s of a 5-minute run to measure in full. The warm-up
    itself is never the estimate: on an echocardiography-like 2D set it took 5.4 s where five
    timed steps took 3.8 s each, and the overestimate chose a network with half the patch."""
    before = snapshot()
    run_steps(WARMUP_STEPS)
    steps: list[float] = []
    while len(steps) < MEASURED_STEPS and (max_s is None or not steps or sum(steps) < max_s):
        start = time.perf_counter()
        run_steps(1)
        steps.append(time.perf_counter() - start)
    others = other_cores(before, snapshot())
    short = max_s is not None and sum(steps) >= max_s
    if short and len(steps) < MEASURED_STEPS:
        log.info("calibration: %d step(s) timed (%.1f s each), enough for %.0f s of measuring", len(steps),
                 statistics.median(steps), max_s)
    if not short:
        run_forwards(1)
    forwards = 1 if short else MEASURED_FORWARDS
    start = time.perf_counter()
    run_forwards(forwards)
    forward = (time.perf_counter() - start) / forwards
    spread = max(steps) / max(min(steps), 1e-9)
    loaded = (others is not None and others > BUSY_CORES) or spread > SPREAD_LIMIT
    return Calibration(seconds_per_iteration=statistics.median(steps), seconds_per_val_iteration=forward,
                       other_cores=others, spread=spread, under_load=loaded)
