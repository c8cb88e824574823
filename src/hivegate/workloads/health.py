"""Whether a workload can serve: its gateway's `/readyz`, read the way `hivegate run` and `hivegate list` show it.

`readiness(url)` asks once and returns `Health` (ready, or the failing checks in one line: `keys: …; backend: …`).
`wait_ready(url, timeout)` asks until the gateway is ready or `timeout` has passed. A background `run` (and
`restart`) uses it, so they never say "running" for a workload that cannot serve.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["Health", "readiness", "wait_ready"]

READY_TIMEOUT = 15.0  # seconds a background start waits for /readyz: JWKS discovery retries take up to ~5 s


@dataclass(frozen=True, slots=True)
class Health:
    ready: bool
    detail: str  # "ready", or the failing checks, or why /readyz could not be read


def readiness(url: str, *, timeout: float = 2.0) -> Health:
    """The gateway's readiness, from `/readyz` beside the MCP `url`."""
    parts = urlsplit(url)
    probe = f"{parts.scheme}://{parts.netloc}/readyz"
    try:
        with urllib.request.urlopen(probe, timeout=timeout) as resp:  # noqa: S310 - our own loopback URL
            return Health(True, "ready") if resp.status == 200 else Health(False, f"HTTP {resp.status}")
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
            checks = body.get("checks", {}) if isinstance(body, dict) else {}
            failing = [f"{name}: {detail}" for name, detail in checks.items() if detail != "ok"]
        except ValueError:
            failing = []
        return Health(False, "; ".join(failing) or f"HTTP {exc.code}")
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return Health(False, f"/readyz cannot be read: {reason}")


def wait_ready(
    url: str,
    timeout: float = READY_TIMEOUT,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Health:
    """`readiness(url)` once it is ready, or as it last was when `timeout` has passed."""
    deadline = clock() + timeout
    while True:
        health = readiness(url, timeout=min(2.0, max(0.1, deadline - clock())))
        if health.ready or clock() >= deadline:
            return health
        sleep(0.2)
