"""Run a function over cases in worker processes, with a progress bar and ordered results."""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Callable, Iterator, Sequence, TypeVar

from autounet.progress import progress

T = TypeVar("T")
R = TypeVar("R")

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")


def default_processes() -> int:
    """The number of cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


@contextmanager
def _single_threaded_children() -> Iterator[None]:
    """Workers each use one thread: N processes x N BLAS/ITK threads would oversubscribe the cores."""
    saved = {k: os.environ.get(k) for k in _THREAD_VARS}
    os.environ.update({k: "1" for k in _THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def map_parallel(fn: Callable[[T], R], items: Sequence[T], processes: int, desc: str,
                 unit: str = "case", disable_bar: bool | None = None) -> list[R]:
    """``[fn(x) for x in items]`` over ``processes`` workers (spawned, so safe with threads).

    ``fn`` must be a module-level function. Results keep the order of ``items``; the first
    exception raised by a worker is re-raised after the remaining work is cancelled.
    """
    bar = progress(total=len(items), desc=desc, unit=unit, disable=disable_bar)
    try:
        if processes <= 1 or len(items) <= 1:
            out = []
            for x in items:
                out.append(fn(x))
                bar.update()
            return out
        results: list[R | None] = [None] * len(items)
        with _single_threaded_children(), ProcessPoolExecutor(
            max_workers=min(processes, len(items)), mp_context=mp.get_context("spawn")
        ) as pool:
            futures = {pool.submit(fn, x): i for i, x in enumerate(items)}
            try:
                for fut in as_completed(futures):
                    results[futures[fut]] = fut.result()
                    bar.update()
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
        return results  # type: ignore[return-value]
    finally:
        bar.close()
