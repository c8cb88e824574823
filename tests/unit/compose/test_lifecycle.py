from __future__ import annotations

import logging

import pytest

from hivegate.compose.lifecycle import Lifecycle

pytestmark = pytest.mark.anyio


async def test_shutdown_runs_hooks_in_reverse_order_once_and_survives_a_failing_one(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lifecycle = Lifecycle()
    ran: list[str] = []

    def hook(name: str, fail: bool = False):  # type: ignore[no-untyped-def]
        async def run() -> None:
            ran.append(name)
            if fail:
                raise RuntimeError(f"{name} broke")

        return run

    lifecycle.on_shutdown(hook("audit"))  # built first: used by what comes after
    lifecycle.on_shutdown(hook("store", fail=True))
    lifecycle.on_shutdown(hook("sessions"))
    with caplog.at_level(logging.ERROR, logger="hivegate"):
        await lifecycle.shutdown()
        await lifecycle.shutdown()
    assert ran == ["sessions", "store", "audit"]
    assert [r.getMessage() for r in caplog.records] == ["error during shutdown"]
