"""A run's budget accounting, kept on disk so that a killed run, started again, goes on with
the time that is left.

The record (``run.json`` among the dataset's results) holds the budget, the configurations the
run chose, and the wall time of every earlier session up to its last heartbeat. A session adds
its own time every ``HEARTBEAT_S`` seconds (atomically), so a SIGKILL loses at most that much of
the accounting. A run started again with another budget keeps the time already used.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from autounet.io.atomic import read_json, write_json

log = logging.getLogger("autounet")

HEARTBEAT_S = 5.0


@dataclass
class RunRecord:
    """What a run has decided and used so far (JSON)."""

    budget_s: float | None                      # None: the full schedule, no budget
    used_s: float = 0.0                         # wall time of the finished or killed sessions
    sessions: int = 0
    configurations: list[str] = field(default_factory=list)  # chosen once, kept by a restart
    finished: bool = False
    networks: dict[str, dict] = field(default_factory=dict)  # configuration -> NetworkChoice JSON, decided once
    spending: dict[str, float] = field(default_factory=dict)  # seconds of the steps around training, by step
    decision: list[str] = field(default_factory=list)        # the networks' decision in plain words

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, values: dict) -> "RunRecord":
        known = {k: values[k] for k in ("budget_s", "used_s", "sessions", "configurations", "finished", "networks",
                                        "spending", "decision") if k in values}
        return cls(**known)


class Ledger:
    """The record of one run and the clock of the session now running."""

    def __init__(self, path: Path, record: RunRecord, clock: Callable[[], float] = time.monotonic,
                 budget_changed: bool = False):
        self.path, self.record, self.clock = path, record, clock
        self.budget_changed = budget_changed  # a restart brought another budget
        self.session_start = clock()
        self.earlier_s = record.used_s
        self._lock = threading.Lock()

    def used_s(self) -> float:
        """Wall time used by the whole run, this session included."""
        return self.earlier_s + (self.clock() - self.session_start)

    def left_s(self, after_s: float = 0.0) -> float | None:
        """Budget still left, less ``after_s`` kept for later steps (None: no budget)."""
        if self.record.budget_s is None:
            return None
        return self.record.budget_s - self.used_s() - after_s

    def restart(self) -> None:
        """The run starts afresh (the data its folds were trained on changed): earlier sessions'
        time no longer counts, the configurations and their networks are decided again."""
        self.earlier_s = 0.0
        self.record.used_s, self.record.configurations, self.record.networks = 0.0, [], {}
        self.record.spending, self.record.decision, self.budget_changed = {}, [], False

    def save(self) -> None:
        """Write the record with the time used so far (atomic)."""
        with self._lock:
            self.record.used_s = self.used_s()
            write_json(self.path, self.record.to_json())


def open_ledger(path: Path, budget_s: float | None, clock: Callable[[], float] = time.monotonic) -> Ledger:
    """The run's record at ``path`` (a new one if none), with ``budget_s`` in force and a new session."""
    record = RunRecord.from_json(read_json(path)) if path.is_file() else RunRecord(budget_s)
    changed = bool(record.sessions) and _changed(record.budget_s, budget_s)
    if changed:
        log.info("run: budget changed from %s to %s; the %.0f s already used count",
                 _text(record.budget_s), _text(budget_s), record.used_s)
    elif record.sessions:
        log.info("run: resuming (session %d); %.0f s of %s already used", record.sessions + 1, record.used_s,
                 _text(budget_s))
    record.budget_s, record.sessions, record.finished = budget_s, record.sessions + 1, False
    return Ledger(path, record, clock, changed)


@contextmanager
def heartbeat(ledger: Ledger, every_s: float = HEARTBEAT_S) -> Iterator[Ledger]:
    """Save the ledger now, every ``every_s`` seconds in a background thread, and at the end."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                ledger.save()
            except OSError as e:  # a full disk must not kill the training; the next beat tries again
                log.warning("run: could not save %s: %s", ledger.path, e)

    ledger.save()
    thread = threading.Thread(target=beat, name="autounet-run-ledger", daemon=True)
    thread.start()
    try:
        yield ledger
    finally:
        stop.set()
        thread.join()
        ledger.save()


def _text(budget_s: float | None) -> str:
    return "no budget" if budget_s is None else f"{budget_s:.0f} s"


def _changed(before: float | None, now: float | None) -> bool:
    """Another budget (a few seconds' difference, as the demo's, is not a change)."""
    if before is None or now is None:
        return before != now
    return abs(before - now) > max(10.0, 0.02 * before)
