"""Shared helpers of the benchmark scripts: process-tree memory sampling and running a command.

Only the standard library; Linux only (reads /proc). Imported by the scripts in this folder as
``from _common import ...`` (they are run as ``python benchmarks/<script>.py``, which puts this
folder first on ``sys.path``).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import threading
import time
from pathlib import Path

MIB = 1024 * 1024


# --------------------------------------------------------------------------- process-tree memory

def _children_map() -> dict[int, list[int]]:
    """ppid -> [pid] for every process visible in /proc right now."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:  # the process just exited
            continue
        # "pid (comm) state ppid ..." -- comm may hold spaces and parentheses: split after the last ')'
        rest = stat[stat.rfind(b")") + 2:].split()
        if len(rest) < 2:
            continue
        kids.setdefault(int(rest[1]), []).append(int(name))
    return kids


def process_tree(root: int) -> list[int]:
    """``root`` and all its live descendants."""
    kids = _children_map()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def _rollup_kib(pid: int) -> tuple[int, int]:
    """(Pss, Rss) of one process in KiB; (0, 0) when it is gone or a zombie."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith(b"Rss:"):
                    rss = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return pss, rss


class TreeMemorySampler:
    """Samples the summed PSS/RSS of a process tree every ``interval`` seconds in a thread."""

    def __init__(self, root_pid: int, interval: float = 0.05):
        self.root_pid = root_pid
        self.interval = interval
        self.peak_pss_kib = 0
        self.peak_rss_kib = 0
        self.peak_procs = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "TreeMemorySampler":
        self._thread.start()
        return self

    def sample(self) -> None:
        pids = process_tree(self.root_pid)
        pss = rss = 0
        live = 0
        for pid in pids:
            p, r = _rollup_kib(pid)
            pss += p
            rss += r
            live += p > 0
        self.peak_pss_kib = max(self.peak_pss_kib, pss)
        self.peak_rss_kib = max(self.peak_rss_kib, rss)
        self.peak_procs = max(self.peak_procs, live)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            t0 = time.perf_counter()
            self.sample()
            self._stop.wait(max(0.0, self.interval - (time.perf_counter() - t0)))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def have_smaps_rollup() -> bool:
    """The sampler needs Linux >= 4.14."""
    return Path("/proc/self/smaps_rollup").exists()


# --------------------------------------------------------------------------- running a command

def run_measured(cmd: list[str], env: dict[str, str], log_path: Path, interval: float) -> tuple[int, float, float, TreeMemorySampler]:
    """Run ``cmd`` with its output in ``log_path``; returns (rc, wall s, cpu s, sampler)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log_path, "wb") as log:
        log.write((" ".join(cmd) + "\n\n").encode())
        log.flush()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        sampler = TreeMemorySampler(proc.pid, interval).start()
        rc = proc.wait()
        wall = time.perf_counter() - t0
        sampler.stop()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return rc, wall, cpu, sampler


def log_tail(path: Path, n: int = 30) -> str:
    """The last ``n`` non-empty lines of a log (progress-bar carriage returns become lines)."""
    lines = [ln for ln in path.read_text(errors="replace").replace("\r", "\n").splitlines() if ln.strip()]
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------- files

def dir_size(path: Path) -> int:
    """Bytes of all files under ``path`` (links not followed)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total


def remove(path: Path) -> None:
    """Delete a file, link or folder if it exists."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def fresh(path: Path) -> Path:
    """An empty folder at ``path`` (whatever was there is deleted)."""
    remove(path)
    path.mkdir(parents=True)
    return path


def link_dir(target: Path, link: Path) -> None:
    """``link`` -> ``target`` (a folder symlink), replacing whatever ``link`` was."""
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_symlink() or link.exists():
        if link.is_symlink() and Path(os.readlink(link)) == target:
            return
        link.unlink() if link.is_symlink() else shutil.rmtree(link)
    link.symlink_to(target, target_is_directory=True)
