"""Log lines at a bounded rate, so a flood of bad requests (or a chatty backend) cannot fill the disk.

A token bucket: `burst` lines at once, then `rate` lines per second. A line over the budget is counted, not written;
the next line that is written says how many were dropped since the last one (`… (N more dropped)`, and `dropped`
on the record), so nothing is lost silently. The clock is injected for tests.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RateLimitedLog"]


class RateLimitedLog:
    def __init__(
        self,
        logger: logging.Logger,
        *,
        rate: float = 10.0,
        burst: int = 50,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()
        self.dropped = 0  # dropped since the last line written

    def log(self, level: int, message: str, *args: Any, **kwargs: Any) -> bool:
        """Write the line if the budget allows (True), else count it as dropped (False)."""
        if not self._logger.isEnabledFor(level):
            return False
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens < 1.0:
            self.dropped += 1
            return False
        self._tokens -= 1.0
        if self.dropped:
            message = f"{message} (%d more dropped)"
            args = (*args, self.dropped)
            kwargs["extra"] = {**kwargs.get("extra", {}), "dropped": self.dropped}
            self.dropped = 0
        self._logger.log(level, message, *args, **kwargs)
        return True
