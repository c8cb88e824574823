"""The stdio multiplexer: many sessions' channels on one process, with a process in memory that records what it
gets and sends what the test says."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from hivegate.backends.multiplex import Channel, SharedProcess
from hivegate.backends.session import BackendSession
from hivegate.backends.stdio_pool import StdioPool, parse_sharing
from hivegate.backends.transport import MessageHandler
from hivegate.core.jsonrpc import Message
from hivegate.outgoing.caller import Caller
from support.sinks import Sink

pytestmark = pytest.mark.anyio


class Process:
    def __init__(self, started: list[Process]) -> None:
        self.got: list[Message] = []
        self.on_message: MessageHandler | None = None
        self.closed = asyncio.Event()
        self.reason = "exited with code 1"
        started.append(self)

    async def open(self, on_message: MessageHandler) -> None:
        self.on_message = on_message

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        self.got.append(message)

    def say(self, message: Message) -> None:
        assert self.on_message is not None
        self.on_message({"jsonrpc": "2.0", **message})

    def answer(self, pid: Any, result: Any = None) -> None:
        self.say({"id": pid, "result": result if result is not None else {}})

    async def wait_closed(self) -> str:
        await self.closed.wait()
        return self.reason

    async def close(self) -> None:
        self.closed.set()


class Client:
    """A channel and what reached it."""

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.got: list[Message] = []

    @classmethod
    async def on(cls, process: SharedProcess) -> Client:
        client = cls(Channel(lambda: process))
        await client.channel.open(client.got.append)
        return client

    async def send(self, message: Message) -> None:
        await self.channel.send({"jsonrpc": "2.0", **message})


def shared(started: list[Process], linger: float = 0.0, stops: list[int] | None = None) -> SharedProcess:
    on_stop: Callable[[], None] | None = (lambda: stops.append(1)) if stops is not None else None
    return SharedProcess(lambda: Process(started), name="t", linger=linger, on_idle_stop=on_stop)


async def two_sessions() -> tuple[list[Process], SharedProcess, Client, Client]:
    """A shared process (not started yet: the first channel starts it) with two sessions on it."""
    started: list[Process] = []
    process = shared(started)
    return started, process, await Client.on(process), await Client.on(process)


def init(rid: Any, **capabilities: Any) -> Message:
    params = {
        "protocolVersion": "2025-11-25",
        "capabilities": capabilities,
        "clientInfo": {"name": "c", "version": "1"},
    }
    return {"id": rid, "method": "initialize", "params": params}


def call(rid: Any, **meta: Any) -> Message:
    params: dict[str, Any] = {"name": "echo", "arguments": {}}
    if meta:
        params["_meta"] = meta
    return {"id": rid, "method": "tools/call", "params": params}


async def test_request_ids_are_relabelled_per_process_and_answers_go_back_to_their_session() -> None:
    started, _, a, b = await two_sessions()
    await a.send(call(1))
    await b.send(call(1))
    proc = started[0]
    assert len(started) == 1
    ids = [m["id"] for m in proc.got]
    assert len(set(ids)) == 2
    proc.answer(ids[1], {"for": "b"})
    proc.answer(ids[0], {"for": "a"})
    assert a.got == [{"jsonrpc": "2.0", "id": 1, "result": {"for": "a"}}]
    assert b.got == [{"jsonrpc": "2.0", "id": 1, "result": {"for": "b"}}]


async def test_progress_tokens_are_relabelled_and_progress_reaches_its_session_only() -> None:
    started, _, a, b = await two_sessions()
    await a.send(call(1, progressToken="tok"))
    await b.send(call(1, progressToken="tok"))
    tokens = [m["params"]["_meta"]["progressToken"] for m in started[0].got]
    assert len(set(tokens)) == 2
    started[0].say({"method": "notifications/progress", "params": {"progressToken": tokens[1], "progress": 1}})
    assert a.got == []
    assert b.got == [{"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "tok",
                                                                                          "progress": 1}}]  # fmt: skip


async def test_a_cancellation_names_the_relabelled_request_and_its_late_answer_is_dropped() -> None:
    started, _, a, b = await two_sessions()
    await a.send(call(7))
    await b.send(call(7))
    pid_a = started[0].got[0]["id"]
    await a.send({"method": "notifications/cancelled", "params": {"requestId": 7, "reason": "user"}})
    assert started[0].got[2] == {"jsonrpc": "2.0", "method": "notifications/cancelled",
                                 "params": {"requestId": pid_a, "reason": "user"}}  # fmt: skip
    await a.send({"method": "notifications/cancelled", "params": {"requestId": 99}})  # not its request: nowhere
    assert len(started[0].got) == 3
    started[0].answer(pid_a)
    assert a.got == []
    assert b.channel.in_flight == 1


async def test_initialize_reaches_the_process_once_and_every_session_gets_its_answer() -> None:
    started, process, a, b = await two_sessions()
    await a.send(init("ia"))
    await b.send(init("ib", sampling={}))
    assert [m["method"] for m in started[0].got] == ["initialize"]
    result = {"protocolVersion": "2025-11-25", "capabilities": {"tools": {}}, "serverInfo": {"name": "s"}}
    started[0].answer(started[0].got[0]["id"], result)
    assert a.got == [{"jsonrpc": "2.0", "id": "ia", "result": result}]
    assert b.got == [{"jsonrpc": "2.0", "id": "ib", "result": result}]
    c = await Client.on(process)
    await c.send(init(0))
    assert c.got == [{"jsonrpc": "2.0", "id": 0, "result": result}]  # from the first answer, at once
    for client in (a, b, c):
        await client.send({"method": "notifications/initialized"})
    assert [m["method"] for m in started[0].got] == ["initialize", "notifications/initialized"]


async def test_the_first_session_leaving_before_initialize_is_answered_leaves_the_others_answered() -> None:
    started, _, a, b = await two_sessions()
    await a.send(init(1))
    await b.send(init(2))
    await a.channel.close()
    started[0].answer(started[0].got[0]["id"], {"protocolVersion": "2025-11-25"})
    assert b.got == [{"jsonrpc": "2.0", "id": 2, "result": {"protocolVersion": "2025-11-25"}}]
    assert a.got == []


async def test_a_server_request_goes_to_the_one_waiting_session_and_its_answer_back() -> None:
    started, _, a, b = await two_sessions()
    await a.send(init(0, sampling={}))
    await b.send(init(0, sampling={}))
    await a.send(call(1))
    sampling = {"id": "s1", "method": "sampling/createMessage", "params": {"messages": []}}
    started[0].say(sampling)
    assert a.got[-1] == {"jsonrpc": "2.0", **sampling}
    assert b.got == []
    await b.send({"id": "s1", "result": {"forged": True}})  # not asked: never reaches the process
    await a.send({"id": "s1", "result": {"role": "assistant"}})
    assert started[0].got[-1] == {"jsonrpc": "2.0", "id": "s1", "result": {"role": "assistant"}}
    assert {"jsonrpc": "2.0", "id": "s1", "result": {"forged": True}} not in started[0].got


async def test_a_server_request_is_refused_when_ambiguous_or_not_declared() -> None:
    started, _, a, b = await two_sessions()
    await a.send(init(0))  # declares no sampling
    await b.send(init(0))
    started[0].say({"id": "s0", "method": "roots/list"})  # no session waits on the process
    await a.send(call(1))
    started[0].say({"id": "s1", "method": "sampling/createMessage", "params": {}})
    await b.send(call(1))
    started[0].say({"id": "s2", "method": "elicitation/create", "params": {}})  # two sessions wait
    started[0].say({"id": "s3", "method": "ping"})
    await until(lambda: len([m for m in started[0].got if m.get("id") in ("s0", "s1", "s2", "s3")]) == 4)
    answers = {m["id"]: m for m in started[0].got if m.get("id") in ("s0", "s1", "s2", "s3")}
    assert "no single client session" in answers["s0"]["error"]["message"]
    assert "did not declare the 'sampling' capability" in answers["s1"]["error"]["message"]
    assert "no single client session" in answers["s2"]["error"]["message"]
    assert answers["s3"]["result"] == {}
    assert [m for m in a.got + b.got if "method" in m] == []


async def test_list_changes_go_to_all_and_logs_only_to_the_one_session_waiting() -> None:
    started, _, a, b = await two_sessions()
    changed = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    log = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}}
    started[0].say(changed)
    started[0].say(log)  # nobody waits: the gateway's log only
    await b.send(call(1))
    started[0].say(log)
    await a.send(call(1))
    started[0].say(log)  # both wait: whose is it? nobody's
    assert a.got == [changed]
    assert b.got == [changed, log]


async def test_logging_set_level_is_refused() -> None:
    started: list[Process] = []
    process = shared(started)
    a = await Client.on(process)
    await a.send({"id": 3, "method": "logging/setLevel", "params": {"level": "debug"}})
    assert started[0].got == []
    assert a.got[0]["id"] == 3
    assert "shared by several sessions" in a.got[0]["error"]["message"]


async def test_subscriptions_are_counted_per_uri_and_updates_reach_subscribers_only() -> None:
    started: list[Process] = []
    process = shared(started)
    a, b, c = await Client.on(process), await Client.on(process), await Client.on(process)
    sub = {"method": "resources/subscribe", "params": {"uri": "file:///x"}}
    await a.send({"id": 1, **sub})
    await b.send({"id": 1, **sub})
    assert [m["method"] for m in started[0].got] == ["resources/subscribe"]
    started[0].answer(started[0].got[0]["id"])
    assert a.got == b.got == [{"jsonrpc": "2.0", "id": 1, "result": {}}]
    updated = {"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "file:///x"}}
    started[0].say(updated)
    assert a.got[-1] == b.got[-1] == updated
    assert c.got == []
    await a.send({"id": 2, "method": "resources/unsubscribe", "params": {"uri": "file:///x"}})
    assert a.got[-1] == {"jsonrpc": "2.0", "id": 2, "result": {}}  # b still subscribed: not sent on
    assert len(started[0].got) == 1
    await b.channel.close()  # the last subscriber leaves: the process is unsubscribed
    assert started[0].got[-1]["method"] == "resources/unsubscribe"
    started[0].answer(started[0].got[-1]["id"])
    assert c.got == []


async def test_a_session_that_leaves_has_its_requests_cancelled_and_its_server_requests_refused() -> None:
    started: list[Process] = []
    process = shared(started)
    a = await Client.on(process)
    await a.send(init(0, roots={}))
    await a.send(call(1))
    started[0].say({"id": "s1", "method": "roots/list"})
    pid = started[0].got[-1]["id"]
    await a.channel.close()
    sent = started[0].got[-2:]
    assert sent[0] == {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": pid}}
    assert sent[1]["id"] == "s1"
    assert "ended" in sent[1]["error"]["message"]


async def test_the_process_exiting_closes_every_channel_and_the_next_one_starts_it_again() -> None:
    started, process, a, b = await two_sessions()
    await a.send(init(0))
    started[0].answer(started[0].got[0]["id"], {"protocolVersion": "2025-11-25"})
    started[0].closed.set()
    assert await asyncio.wait_for(a.channel.wait_closed(), 5) == "exited with code 1"
    assert await asyncio.wait_for(b.channel.wait_closed(), 5) == "exited with code 1"
    c = await Client.on(process)
    assert len(started) == 2
    await c.send(init(0))
    assert [m["method"] for m in started[1].got] == ["initialize"]  # a new process is initialized again


async def test_a_process_without_sessions_is_stopped_after_the_linger() -> None:
    started: list[Process] = []
    stops: list[int] = []
    process = shared(started, linger=0.02, stops=stops)
    a = await Client.on(process)
    await a.channel.close()
    await until(lambda: started[0].closed.is_set())
    assert stops == [1]
    assert not process.running
    await Client.on(process)
    assert len(started) == 2


async def test_a_pool_puts_each_new_session_on_the_least_loaded_process() -> None:
    started: list[Process] = []
    pool = StdioPool(lambda: Process(started), size=3, name="t")
    channels = [pool.channel() for _ in range(7)]
    for channel in channels:
        await channel.open(lambda message: None)
    assert len(started) == 3
    assert sorted(len(p.channels) for p in pool.processes) == [2, 2, 3]
    await pool.close()


async def test_sessions_over_one_process_keep_their_own_ids_end_to_end() -> None:
    """Two `BackendSession`s over channels of one process, as `hivegate run --stdio-sharing shared` runs them."""
    started: list[Process] = []
    process = shared(started)
    one = BackendSession(lambda: Channel(lambda: process), name="t")
    two = BackendSession(lambda: Channel(lambda: process), name="t")
    await one.start()
    await two.start()
    sink_one, sink_two = Sink(), Sink()
    await one.request({"jsonrpc": "2.0", **call(5)}, sink_one)
    await two.request({"jsonrpc": "2.0", **call(5)}, sink_two)
    started[0].answer(started[0].got[1]["id"], {"n": 2})
    started[0].answer(started[0].got[0]["id"], {"n": 1})
    assert await sink_one.answer() == {"jsonrpc": "2.0", "id": 5, "result": {"n": 1}}
    assert await sink_two.answer() == {"jsonrpc": "2.0", "id": 5, "result": {"n": 2}}
    await one.close()
    await two.close()


def test_sharing_values() -> None:
    assert [parse_sharing(v) for v in ("per-session", "shared", "pool=4")] == [0, 1, 4]
    for bad in ("pool=0", "pool=x", "pool=65", "Shared", ""):
        with pytest.raises(ValueError, match="per-session, shared or pool=N"):
            parse_sharing(bad)


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not condition():
            await asyncio.sleep(0.005)
