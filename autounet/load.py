"""How busy the machine is with other work: CPU time of other processes, from ``/proc``.

A speed measurement taken while other processes compete for the CPU says little about the
speed the machine will have for the rest of a run (measured on 2 cores: one competing process
made torch training eight times slower). :func:`snapshot` records the machine's busy CPU
seconds and those of this process and its descendants (augmentation workers); between two
snapshots, the difference is what other processes used, in cores, counted on the CPUs this
process may use (inside a Slurm cpuset, other jobs' cores are not load). Linux only; elsewhere
the functions return None and callers treat the load as unknown.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
BUSY_CORES = 0.5  # other processes using more than half a core make a measurement "under load"


@dataclass(frozen=True)
class CpuSnapshot:
    wall: float          # time.monotonic()
    machine_busy: float  # CPU seconds all processes have used (not idle, not waiting for I/O)
    own: float           # CPU seconds of this process and its descendants


def allowed_cpus() -> frozenset[int] | None:
    """The CPUs this process may run on (its affinity: a Slurm job's cpuset, not the whole node);
    None where the platform does not say."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def _machine_busy(cpus: frozenset[int] | None) -> float:
    """Busy CPU seconds of ``cpus`` (None: every CPU), from /proc/stat's per-CPU lines: on a
    shared node, other jobs' cores are not this process's load."""
    total = 0.0
    for line in (PROC / "stat").read_text().splitlines()[1:]:
        name, *values = line.split()
        if not name.startswith("cpu"):
            break
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        user, nice, system, idle, iowait, irq, softirq, steal = (float(v) for v in values[:8])
        total += user + nice + system + irq + softirq + steal
    return total / CLOCK_TICKS


def _own_tree() -> float:
    """CPU seconds of this process and its descendants, living or ended and waited for."""
    parent: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            text = (entry / "stat").read_text()
        except OSError:  # the process ended meanwhile
            continue
        rest = text[text.rindex(")") + 2:].split()  # fields after "pid (name) "
        parent[int(entry.name)] = int(rest[1])
        # own time and that of children already waited for (augmentation workers that ended)
        cpu[int(entry.name)] = sum(float(v) for v in rest[11:15]) / CLOCK_TICKS
    me, total = os.getpid(), 0.0
    for pid in cpu:
        p = pid
        while p not in (0, 1, me) and p in parent:
            p = parent[p]
        if p == me:
            total += cpu[pid]
    return total


def snapshot() -> CpuSnapshot | None:
    """The machine's and this process tree's CPU time now (None where ``/proc`` is not Linux's)."""
    try:
        return CpuSnapshot(time.monotonic(), _machine_busy(allowed_cpus()), _own_tree())
    except (OSError, ValueError, IndexError):
        return None


def other_cores(before: CpuSnapshot | None, after: CpuSnapshot | None) -> float | None:
    """Cores other processes kept busy, on average, between two snapshots (None: unknown)."""
    if before is None or after is None or after.wall <= before.wall:
        return None
    others = (after.machine_busy - before.machine_busy) - (after.own - before.own)
    return max(0.0, others / (after.wall - before.wall))


def threads_for(cores: int, others: float | None) -> int:
    """Compute threads for a process that shares ``cores`` with other processes keeping ``others``
    cores busy: the cores they leave (at least one). Measured on 2 cores with one competing busy
    process (benchmarks/bench_threads.py): a training step with 2 threads took 2.7-3.8x as long
    as on the quiet machine, with 1 thread 1.6-1.8x; on the quiet machine 2 threads were 1.6-1.8x
    faster than 1."""
    if others is None:
        return cores
    return max(1, min(cores, cores - int(others + 1 - BUSY_CORES)))


def probe(seconds: float = 0.5) -> float | None:
    """Cores other processes keep busy, measured over ``seconds`` now (None: unknown)."""
    before = snapshot()
    time.sleep(seconds)
    return other_cores(before, snapshot())
