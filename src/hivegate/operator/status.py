"""Status like ToolHive's: `phase`, `message`, `url`, `readyReplicas`, `observedGeneration` and `conditions`
(`metav1.Condition`: `type`, `status`, `reason`, `message`, `lastTransitionTime`, `observedGeneration`).

`condition(...)` keeps a condition's `lastTransitionTime` while its status stays the same, so writing the same
status twice changes nothing (and `changed` lets the caller skip the write).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["Clock", "changed", "condition", "utc_now"]

Clock = Callable[[], datetime.datetime]


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.UTC)


def condition(
    current: Sequence[Mapping[str, Any]] | None,
    kind: str,
    ok: bool,
    reason: str,
    message: str,
    generation: int | None,
    clock: Clock = utc_now,
) -> dict[str, Any]:
    """The condition `kind`, its transition time kept from `current` when its status did not change."""
    status = "True" if ok else "False"
    previous = next((c for c in current or () if c.get("type") == kind), None)
    when = previous.get("lastTransitionTime") if previous and previous.get("status") == status else None
    out: dict[str, Any] = {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": when or clock().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


def changed(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """Whether writing `desired` would change the status `current`."""
    current = current or {}
    return any(current.get(k) != v for k, v in desired.items())
