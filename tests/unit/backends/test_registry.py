"""SessionRegistry: ownership, limits, and one process for concurrent opens of a fixed id."""

from __future__ import annotations

import asyncio

import pytest

from hivegate.backends.registry import SessionLimitError, SessionRegistry
from hivegate.backends.transport import MessageHandler
from hivegate.core.jsonrpc import Message
from hivegate.outgoing.caller import Caller

pytestmark = pytest.mark.anyio


class SlowStartBackend:
    started = 0

    async def open(self, on_message: MessageHandler) -> None:
        SlowStartBackend.started += 1
        await asyncio.sleep(0.05)

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        pass

    async def wait_closed(self) -> str:
        await asyncio.Event().wait()
        return "never"

    async def close(self) -> None:
        pass


async def _open(registry: SessionRegistry, owner: str, session_id: str | None = None) -> str:
    entry = await registry.open(owner, SlowStartBackend, name="t", request_timeout=5, session_id=session_id)
    return entry.session_id


async def test_a_session_belongs_to_its_owner_only() -> None:
    registry = SessionRegistry()
    sid = await _open(registry, "alice")
    assert registry.get(sid, "alice") is not None
    assert registry.get(sid, "bob") is None
    assert registry.get(sid, "josé") is None  # non-ASCII owners are compared without error
    await registry.close()


async def test_concurrent_opens_of_one_fixed_id_start_one_backend() -> None:
    SlowStartBackend.started = 0
    registry = SessionRegistry()
    ids = await asyncio.gather(*(_open(registry, "alice", "stateless-a") for _ in range(5)))
    assert set(ids) == {"stateless-a"}
    assert SlowStartBackend.started == 1
    assert len(registry) == 1
    await registry.close()


async def test_one_caller_cannot_take_every_slot() -> None:
    registry = SessionRegistry(max_sessions=10, max_per_owner=3)
    first = [await _open(registry, "mallory") for _ in range(3)]
    fourth = await _open(registry, "mallory")  # the oldest idle session makes room
    assert registry.get(first[0], "mallory") is None
    assert registry.get(fourth, "mallory") is not None
    assert len(registry) == 3
    await _open(registry, "alice")
    await registry.close()


async def test_the_total_limit_holds_under_concurrency() -> None:
    registry = SessionRegistry(max_sessions=3, max_per_owner=100)
    results = await asyncio.gather(*(_open(registry, f"user{i}") for i in range(6)), return_exceptions=True)
    assert sum(isinstance(r, str) for r in results) == 3
    assert sum(isinstance(r, SessionLimitError) for r in results) == 3
    await registry.close()
