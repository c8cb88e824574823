"""Rate-limited log lines: a burst passes, a flood is counted, and the count is said on the next line written."""

from __future__ import annotations

import logging

import pytest

from hivegate.observe.ratelimit import RateLimitedLog


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_is_cut_to_the_budget_and_the_dropped_lines_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="flood")
    clock = Clock()
    log = RateLimitedLog(logging.getLogger("flood"), rate=2.0, burst=3, clock=clock)
    written = [log.log(logging.INFO, "line %d", i) for i in range(10)]
    assert written == [True] * 3 + [False] * 7
    clock.now += 0.5  # one more line's worth of budget
    assert log.log(logging.INFO, "line %d", 10)
    assert [r.getMessage() for r in caplog.records] == ["line 0", "line 1", "line 2", "line 10 (7 more dropped)"]


def test_a_level_that_is_off_costs_nothing_and_counts_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="quiet")
    log = RateLimitedLog(logging.getLogger("quiet"), rate=1.0, burst=1, clock=Clock())
    assert not log.log(logging.INFO, "hidden")
    assert log.dropped == 0
