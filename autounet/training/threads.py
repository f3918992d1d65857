"""Torch's compute threads on a CPU, fitted to what other processes leave free.

On a small CPU a competing process turns torch's threads into an oversubscribed, spinning crowd:
one busy process made a 2-core training step 2.7-3.8x slower with 2 threads but only 1.6-1.8x
slower with 1 (benchmarks/bench_threads.py). Training therefore measures the load of other
processes (:mod:`autounet.load`) before it calibrates, before its first epoch and over every
epoch, and gives torch the cores they leave (:func:`autounet.load.threads_for`), at most
``OMP_NUM_THREADS`` when that is set. Augmentation workers are left as planned: measured, one
worker or none made no difference under load.
"""

from __future__ import annotations

import logging
import os
from contextlib import contextmanager
from typing import Iterator

import torch

from autounet.hardware import cpu_cores
from autounet.load import probe, threads_for

log = logging.getLogger("autounet.training")


def adapt_threads(device: torch.device, others: float | None) -> int:
    """Set torch's intra-op threads for the load ``others`` (cores busy with other processes);
    returns the number in force. Only on a CPU device; logs each change."""
    current = torch.get_num_threads()
    if device.type != "cpu":
        return current
    cores = cpu_cores()
    cap = os.environ.get("OMP_NUM_THREADS", "")
    wanted = threads_for(min(cores, int(cap)) if cap.isdigit() and int(cap) > 0 else cores, others)
    if wanted != current:
        torch.set_num_threads(wanted)
        log.info("other processes keep %.1f of %d cores busy: training uses %d thread(s) instead of %d",
                 others or 0.0, cores, wanted, current)
    return wanted


def fit_threads_to_load(device: torch.device) -> int:
    """Measure the load now (half a second, on a CPU device only) and set the threads for it."""
    return adapt_threads(device, probe()) if device.type == "cpu" else torch.get_num_threads()


@contextmanager
def threads_restored() -> Iterator[None]:
    """Torch's thread count as it was, once the block ends (a fold fits it to the load; what runs
    after the fold, such as prediction, starts from the machine's default again)."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
