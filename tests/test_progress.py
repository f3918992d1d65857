"""Progress off a terminal: a log line at most every interval, and one at the end."""

from __future__ import annotations

import logging

from autounet.progress import LogProgress


def test_log_lines_are_spaced_and_the_last_one_says_done(caplog):
    now = [0.0]
    bar = LogProgress(range(40), desc="preprocess", unit="case", interval_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="autounet"):
        for _ in bar:
            now[0] += 1.0                       # one case a second: a line every 10 cases
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "preprocess: 10/40 case (25%), 10 s, about 30 s left"
    assert len(lines) == 4                      # 10, 20, 30, 40 - the end is not repeated
    assert lines[-1] == "preprocess: 40/40 case (100%), 40 s"


def test_quick_work_prints_nothing(caplog):
    now = [0.0]
    with caplog.at_level(logging.INFO, logger="autounet"):
        for _ in LogProgress(range(5), desc="x", clock=lambda: now[0]):
            now[0] += 0.1
    assert not caplog.records
