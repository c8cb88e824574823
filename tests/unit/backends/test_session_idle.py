"""BackendSession with an idle timeout: an idle backend is stopped, and started again (with `initialize`, the logging
level and the subscriptions replayed) on the session's next message; a busy one is never stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from hivegate.backends.session import BackendSession
from hivegate.backends.transport import MessageHandler
from hivegate.core.jsonrpc import Message
from hivegate.outgoing.caller import Caller
from support.sinks import Sink

pytestmark = pytest.mark.anyio

IDLE = 0.05


class Process:
    """A backend process in memory: answers requests unless `hold` names their method."""

    def __init__(self, started: list[Process], hold: str = "", refuse: str = "") -> None:
        self.sent: list[Message] = []
        self.hold = hold
        self.refuse = refuse
        self.on_message: MessageHandler | None = None
        self.closed = asyncio.Event()
        started.append(self)

    async def open(self, on_message: MessageHandler) -> None:
        self.on_message = on_message

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        self.sent.append(message)
        if "id" in message and message.get("method") not in (None, self.hold):
            assert self.on_message is not None
            if message["method"] == self.refuse:
                self.on_message({"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "no"}})
            else:
                self.on_message({"jsonrpc": "2.0", "id": message["id"], "result": {"from": len(self.sent)}})

    def methods(self) -> list[str]:
        return [m.get("method", "(answer)") for m in self.sent]

    async def wait_closed(self) -> str:
        await self.closed.wait()
        return "stopped"

    async def close(self) -> None:
        self.closed.set()


def factory(started: list[Process], hold: str = "", refuse: str = "") -> Callable[[], Process]:
    return lambda: Process(started, hold, refuse)


def call(rid: Any, method: str = "tools/call", **params: Any) -> Message:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.005)


INIT = call(0, "initialize", protocolVersion="2025-11-25", capabilities={}, clientInfo={"name": "c", "version": "1"})


async def test_an_idle_process_is_stopped_and_started_again_with_the_session_replayed() -> None:
    started: list[Process] = []
    stops: list[int] = []
    session = BackendSession(factory(started), name="t", idle_timeout=IDLE, on_idle_stop=lambda: stops.append(1))
    await session.start()
    await session.request(INIT, Sink())
    await session.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    await session.request(call(1, "logging/setLevel", level="debug"), Sink())
    await until(lambda: started[0].closed.is_set())
    assert session.parked
    assert stops == [1]
    sink = Sink()
    await session.request(call(2), sink)
    assert (await sink.answer())["id"] == 2
    assert len(started) == 2
    assert not session.parked
    assert started[1].methods() == ["initialize", "notifications/initialized", "logging/setLevel", "tools/call"]
    assert started[1].sent[0]["params"] == INIT["params"]
    assert session.restarts == 0  # an idle stop is no crash
    await session.close()


async def test_a_request_in_flight_keeps_the_process_and_its_answer_restarts_the_clock() -> None:
    busy_started: list[Process] = []
    idle_started: list[Process] = []
    busy = BackendSession(factory(busy_started, hold="tools/call"), name="busy", idle_timeout=IDLE)
    idle = BackendSession(factory(idle_started), name="idle", idle_timeout=IDLE)
    await busy.start()
    await idle.start()
    sink = Sink()
    await busy.request(call(1), sink)
    await until(lambda: idle.parked)  # at least one timeout went by
    await until(lambda: idle_started[0].closed.is_set())
    assert not busy.parked
    assert not busy_started[0].closed.is_set()
    assert busy_started[0].on_message is not None
    busy_started[0].on_message({"jsonrpc": "2.0", "id": busy_started[0].sent[0]["id"], "result": {}})
    assert (await sink.answer())["id"] == 1
    await until(lambda: busy.parked)
    await busy.close()
    await idle.close()


async def test_a_pending_server_request_and_a_subscription_keep_the_process() -> None:
    control_started: list[Process] = []
    control = BackendSession(factory(control_started), name="control", idle_timeout=IDLE)
    started: list[Process] = []
    session = BackendSession(factory(started), name="t", idle_timeout=IDLE)
    await session.start()
    stream = Sink()
    session.attach_stream(stream)
    await session.request(call(1, "resources/subscribe", uri="file:///a"), Sink())
    assert started[0].on_message is not None
    started[0].on_message({"jsonrpc": "2.0", "id": "s1", "method": "roots/list"})
    assert (await stream.next())["method"] == "roots/list"
    await control.start()
    await until(lambda: control.parked)
    assert not session.parked
    await session.send({"jsonrpc": "2.0", "id": "s1", "result": {"roots": []}})  # answered: only the subscription
    await control.request(call(1), Sink())  # wakes the control: wait for it to stop again, one more timeout
    await until(lambda: not control.parked)
    await until(lambda: control.parked)
    assert not session.parked
    await session.request(call(2, "resources/unsubscribe", uri="file:///a"), Sink())
    await until(lambda: session.parked)
    await session.close()
    await control.close()


async def test_a_subscription_is_replayed_after_a_crash() -> None:
    started: list[Process] = []
    session = BackendSession(factory(started), name="t", max_backoff=0.01)
    await session.start()
    await session.request(INIT, Sink())
    await session.request(call(1, "resources/subscribe", uri="file:///a"), Sink())
    started[0].closed.set()
    await until(lambda: len(started) == 2 and session.ready)
    assert started[1].methods() == ["initialize", "notifications/initialized", "resources/subscribe"]
    assert started[1].sent[2]["params"] == {"uri": "file:///a"}
    await session.close()


async def test_without_an_idle_timeout_nothing_is_stopped() -> None:
    control_started: list[Process] = []
    control = BackendSession(factory(control_started), name="control", idle_timeout=IDLE)
    started: list[Process] = []
    session = BackendSession(factory(started), name="t")
    await session.start()
    await control.start()
    await until(lambda: control.parked)
    assert not session.parked
    assert not started[0].closed.is_set()
    await session.close()
    await control.close()


async def test_a_subscription_the_backend_refused_neither_keeps_the_process_nor_is_replayed() -> None:
    started: list[Process] = []
    session = BackendSession(factory(started, refuse="resources/subscribe"), name="t", idle_timeout=IDLE)
    await session.start()
    await session.request(INIT, Sink())
    refused = Sink()
    await session.request(call(1, "resources/subscribe", uri="file:///a"), refused)
    assert "error" in await refused.answer()
    await until(lambda: session.parked)
    await session.request(call(2), Sink())
    assert started[1].methods() == ["initialize", "notifications/initialized", "tools/call"]
    await session.close()
