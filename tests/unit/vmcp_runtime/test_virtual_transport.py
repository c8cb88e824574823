"""A client session of the virtual MCP server, driven the way the front end drives it (a `BackendSession` over a
`VirtualTransport`), with in-memory MCP backends: routing under the backends' own names, lazily opened and reused
backend sessions, server-to-client requests relabelled and answered back to the right backend, notifications kept
to their own session, and list changes reaching clients."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from hivegate.authn.oidc_config import OIDCConfig
from hivegate.backends.session import BackendSession
from hivegate.backends.transport import MessageHandler, Transport
from hivegate.core.jsonrpc import Message
from hivegate.outgoing.caller import Caller
from hivegate.vmcp.pool import BackendPool
from hivegate.vmcp.session import VirtualTransport
from hivegate.vmcp.spec import BackendConfig, FailureHandling, IncomingAuth, Operational, VMCPConfig
from support.sinks import Sink

pytestmark = pytest.mark.anyio


class FakeMCP:
    """An MCP server in memory: tools `echo` and `ask` (which asks the client for sampling first)."""

    opened: ClassVar[dict[str, int]] = {}

    def __init__(self, name: str, tools: tuple[str, ...]) -> None:
        self.name = name
        self.tools = tools
        self.on_message: MessageHandler | None = None
        self.received: list[Message] = []
        self.closed = asyncio.Event()
        self.pending: dict[Any, Any] = {}  # our request id → the tools/call id waiting for the client's answer
        FakeMCP.opened[name] = FakeMCP.opened.get(name, 0) + 1

    async def open(self, on_message: MessageHandler) -> None:
        self.on_message = on_message

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        self.received.append(message)
        assert self.on_message is not None
        method, rid = message.get("method"), message.get("id")
        if method is None:  # the client's answer to our sampling request
            waiting = self.pending.pop(rid)
            self.on_message({"jsonrpc": "2.0", "id": waiting, "result": {"content": [
                {"type": "text", "text": f"{self.name} got {message['result']['answer']}"}]}})  # fmt: skip
            return
        if rid is None:
            return
        result: Any
        if method == "initialize":
            result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {"listChanged": True}},
                      "serverInfo": {"name": self.name, "version": "1"}}  # fmt: skip
        elif method == "tools/list":
            result = {"tools": [{"name": t, "inputSchema": {"type": "object"}} for t in self.tools]}
        elif method == "tools/call" and message["params"]["name"] == "ask":
            self.pending[77] = rid
            self.on_message({"jsonrpc": "2.0", "id": 77, "method": "sampling/createMessage", "params": {}})
            return
        elif method == "tools/call":
            text = f"{self.name}:{message['params']['name']}:{message['params'].get('arguments', {}).get('x')}"
            result = {"content": [{"type": "text", "text": text}]}
        else:
            result = {}
        self.on_message({"jsonrpc": "2.0", "id": rid, "result": result})

    def notify(self, method: str, params: Any = None) -> None:
        assert self.on_message is not None
        self.on_message({"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})})

    async def wait_closed(self) -> str:
        await self.closed.wait()
        return "closed"

    async def close(self) -> None:
        self.closed.set()


class World:
    def __init__(self, *, best_effort: bool = False) -> None:
        FakeMCP.opened.clear()
        self.instances: dict[str, list[FakeMCP]] = {"alpha": [], "beta": []}
        tools = {"alpha": ("echo", "ask"), "beta": ("echo",)}
        mode = "bestEffort" if best_effort else "fail"
        cfg = VMCPConfig(
            name="team",
            backends=(BackendConfig("alpha", "stdio", command="x"), BackendConfig("beta", "stdio", command="y")),
            incoming_auth=IncomingAuth("anonymous", OIDCConfig(mode="anonymous")),
            operational=Operational(failure_handling=FailureHandling(partial_failure_mode=mode)),
        )
        self.pool = BackendPool(cfg, {name: self._factory(name, tools[name]) for name in tools})

    def _factory(self, name: str, tools: tuple[str, ...]) -> Callable[[], Transport]:
        def make() -> Transport:
            fake = FakeMCP(name, tools)
            self.instances[name].append(fake)
            return fake

        return make

    async def session(self) -> BackendSession:
        session = BackendSession(lambda: VirtualTransport(self.pool, name="team"), name="team")
        await session.start()
        await ask(session, 0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {"sampling": {}},
                                             "clientInfo": {"name": "t", "version": "1"}})  # fmt: skip
        return session


async def ask(session: BackendSession, rid: Any, method: str, params: Any = None) -> Message:
    sink = Sink()
    await session.request({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}, sink)
    while True:
        item = await sink.next()
        if "method" not in item:
            return item


def call(name: str, x: Any = None) -> dict[str, Any]:
    return {"name": name, "arguments": {"x": x}}


async def test_calls_go_to_the_owning_backend_under_its_own_name_over_one_reused_session() -> None:
    world = World()
    assert await world.pool.start() == []
    session = await world.session()
    tools = (await ask(session, 1, "tools/list"))["result"]["tools"]
    assert [t["name"] for t in tools] == ["alpha_echo", "alpha_ask", "beta_echo"]
    answers = [await ask(session, i, "tools/call", call(name, i)) for i, name in
               enumerate(["alpha_echo", "beta_echo", "alpha_echo"], start=2)]  # fmt: skip
    assert [a["result"]["content"][0]["text"] for a in answers] == ["alpha:echo:2", "beta:echo:3", "alpha:echo:4"]
    # one discovery session per backend, plus one session per backend for this client (opened on first use)
    assert FakeMCP.opened == {"alpha": 2, "beta": 2}
    client_alpha = world.instances["alpha"][1]
    assert client_alpha.received[0]["params"]["capabilities"] == {"sampling": {}}  # the client's own initialize
    unknown = await ask(session, 9, "tools/call", call("gamma_echo"))
    assert unknown["error"] == {"code": -32602, "message": "Unknown tool: gamma_echo"}
    await session.close()
    await world.pool.close()
    assert all(fake.closed.is_set() for fakes in world.instances.values() for fake in fakes)


async def test_a_backend_request_to_the_client_is_relabelled_and_its_answer_goes_back() -> None:
    world = World()
    await world.pool.start()
    session = await world.session()
    sink = Sink()
    await session.request({"jsonrpc": "2.0", "id": "c1", "method": "tools/call", "params": call("alpha_ask")}, sink)
    sampling = await sink.next()
    assert sampling["method"] == "sampling/createMessage"
    assert sampling["id"] == "alpha#1"  # not the backend's own 77: two backends can never collide
    await session.send({"jsonrpc": "2.0", "id": "alpha#1", "result": {"answer": 42}})
    final = await sink.next()
    assert final["id"] == "c1"
    assert final["result"]["content"][0]["text"] == "alpha got 42"
    backend = world.instances["alpha"][1]
    assert {"jsonrpc": "2.0", "id": 77, "result": {"answer": 42}} in backend.received
    await session.close()
    await world.pool.close()


async def test_notifications_reach_only_the_session_whose_backend_sent_them() -> None:
    world = World()
    await world.pool.start()
    first, second = await world.session(), await world.session()
    await ask(first, 1, "tools/call", call("alpha_echo"))
    await ask(second, 1, "tools/call", call("alpha_echo"))
    streams = [Sink(), Sink()]
    assert first.attach_stream(streams[0])
    assert second.attach_stream(streams[1])
    world.instances["alpha"][1].notify("notifications/message", {"level": "info", "data": "for the first"})
    got = await streams[0].next()
    assert got["params"]["data"] == "for the first"
    await asyncio.sleep(0.05)
    assert streams[1].items == []
    await first.close()
    await second.close()
    await world.pool.close()


async def test_a_list_change_refreshes_the_catalog_and_tells_the_clients() -> None:
    world = World()
    await world.pool.start()
    session = await world.session()
    await ask(session, 1, "tools/call", call("beta_echo"))
    stream = Sink()
    assert session.attach_stream(stream)
    for fake in world.instances["beta"]:
        fake.tools = ("echo", "search")
    world.instances["beta"][1].notify("notifications/tools/list_changed")
    changed = await stream.next()
    assert changed == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    tools = (await ask(session, 2, "tools/list"))["result"]["tools"]
    assert "beta_search" in [t["name"] for t in tools]
    await session.close()
    await world.pool.close()


async def test_under_best_effort_a_call_to_an_unhealthy_backends_tool_names_the_backend_and_nothing_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = World(best_effort=True)
    await world.pool.start()
    session = await world.session()
    status = world.pool.statuses["alpha"]
    status.state, status.last_error = "unhealthy", "http://10.0.0.7:8080/mcp: connection refused"
    world.pool.catalog = world.pool.build(world.pool.shared_lists())  # what the next health check does: alpha left out

    def refusal(backend: str) -> str | None:
        raise AssertionError(f"refusal({backend!r}) may use up a half-open trial: only a call that goes out asks it")

    monkeypatch.setattr(world.pool, "refusal", refusal)
    refused = await ask(session, 1, "tools/call", call("alpha_echo"))
    assert refused["error"] == {"code": -32000, "message": "backend 'alpha' is unavailable"}  # no internal address
    unknown = await ask(session, 2, "tools/call", call("gamma_echo"))
    assert unknown["error"] == {"code": -32602, "message": "Unknown tool: gamma_echo"}
    await session.close()
    await world.pool.close()
