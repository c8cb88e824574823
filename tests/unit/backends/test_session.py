"""BackendSession routing, with an in-memory transport standing in for a backend process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar

import pytest

from hivegate.backends.session import BackendSession
from hivegate.backends.transport import MessageHandler
from hivegate.core.jsonrpc import Message
from hivegate.core.principal import Principal
from hivegate.errors import BackendError, CredentialRefused, SessionGone
from hivegate.outgoing.caller import Caller

pytestmark = pytest.mark.anyio


class FakeBackend:
    """Answers requests by echoing their method; `die()` simulates the process exiting."""

    instances: ClassVar[list[FakeBackend]] = []

    def __init__(self, *, fail_open: bool = False) -> None:
        self.sent: list[Message] = []
        self.callers: list[Caller | None] = []  # who each message in `sent` was for
        self.on_message: MessageHandler | None = None
        self.closed = asyncio.Event()
        self.fail_open = fail_open
        self.auto_answer = True
        FakeBackend.instances.append(self)

    async def open(self, on_message: MessageHandler) -> None:
        if self.fail_open:
            raise BackendError("cannot start")
        self.on_message = on_message

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        if self.closed.is_set():
            raise BackendError("gone")
        self.sent.append(message)
        self.callers.append(caller)
        if self.auto_answer and "id" in message and "method" in message:
            assert self.on_message is not None
            self.on_message({"jsonrpc": "2.0", "id": message["id"], "result": {"method": message["method"]}})

    def emit(self, message: Message) -> None:
        assert self.on_message is not None
        self.on_message(message)

    def die(self) -> None:
        self.closed.set()

    async def wait_closed(self) -> str:
        await self.closed.wait()
        return "exited"

    async def close(self) -> None:
        self.closed.set()


class HeldBackend(FakeBackend):
    """Holds a `tools/call` until `release` is set; then, with `gone`, refuses it as a Streamable HTTP backend that
    no longer knows the session does (HTTP 404: not processed), otherwise takes it without ever answering."""

    def __init__(self, *, gone: bool) -> None:
        super().__init__()
        self.gone = gone
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        if message.get("method") != "tools/call":
            await super().send(message, caller)
            return
        self.holding.set()
        await self.release.wait()
        if self.gone:
            self.closed.set()
            raise SessionGone("backend 't' no longer knows the session (HTTP 404)")
        self.sent.append(message)
        self.callers.append(caller)


def first_then(first: FakeBackend, *, then_fail: bool = False) -> Callable[[], FakeBackend]:
    """A factory making `first`, then plain backends (that cannot start, with `then_fail`)."""
    made = 0

    def factory() -> FakeBackend:
        nonlocal made
        made += 1
        return first if made == 1 else FakeBackend(fail_open=then_fail)

    return factory


async def until_restarting(session: BackendSession) -> None:
    async with asyncio.timeout(5):
        while session.ready:
            await asyncio.sleep(0)


class ListSink:
    def __init__(self, streaming: bool = True) -> None:
        self.streaming = streaming
        self.closed = False
        self.ended = False
        self.items: list[Message] = []
        self.event = asyncio.Event()

    def deliver(self, message: Message) -> None:
        self.items.append(message)
        self.event.set()

    def end(self) -> None:
        self.ended = True
        self.event.set()


def request(rid: Any, method: str = "tools/call", **params: Any) -> Message:
    return {"jsonrpc": "2.0", "id": rid, "method": method, "params": params}


@pytest.fixture(autouse=True)
def _reset() -> None:
    FakeBackend.instances.clear()


async def test_ids_are_rewritten_and_restored() -> None:
    session = BackendSession(FakeBackend, name="t")
    await session.start()
    a, b = ListSink(), ListSink()
    await session.request(request("same"), a)
    await session.request(request("same", "ping"), b)
    backend = FakeBackend.instances[0]
    assert [m["id"] for m in backend.sent] == [1, 2]
    assert a.items == [{"jsonrpc": "2.0", "id": "same", "result": {"method": "tools/call"}}]
    assert b.items == [{"jsonrpc": "2.0", "id": "same", "result": {"method": "ping"}}]
    await session.close()


async def test_a_transform_rewrites_the_answer_and_fails_closed() -> None:
    session = BackendSession(FakeBackend, name="t")
    await session.start()
    rewritten, broken = ListSink(), ListSink()
    await session.request(request(1, "tools/list"), rewritten, transform=lambda m: {**m, "result": {"tools": []}})

    def explode(_message: Message) -> Message:
        raise KeyError("boom")

    await session.request(request(2, "tools/list"), broken, transform=explode)
    assert rewritten.items == [{"jsonrpc": "2.0", "id": 1, "result": {"tools": []}}]
    assert broken.items == [{"jsonrpc": "2.0", "id": 2, "error": {"code": -32603, "message": "Internal error"}}]
    await session.close()


async def test_progress_goes_to_the_request_that_owns_the_token_and_logs_to_the_stream() -> None:
    session = BackendSession(FakeBackend, name="t")
    await session.start()
    backend = FakeBackend.instances[0]
    backend.auto_answer = False
    first, second, stream = ListSink(), ListSink(), ListSink()
    await session.request(request(1, _meta={"progressToken": "p1"}), first)
    await session.request(request(2, _meta={"progressToken": "p2"}), second)
    backend.emit(
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "p2", "progress": 1}}
    )
    assert second.items[0]["params"]["progressToken"] == "p2"
    assert first.items == []
    log = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}}
    backend.emit(log)
    assert first.items == [log]  # no stream yet: the oldest in-flight request that can stream carries it
    assert session.attach_stream(stream)
    backend.emit(log)
    assert stream.items == [log]
    assert not session.attach_stream(ListSink())
    await session.close()


async def test_unrouted_notifications_wait_for_a_stream() -> None:
    session = BackendSession(FakeBackend, name="t")
    await session.start()
    note = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}
    FakeBackend.instances[0].emit(note)
    stream = ListSink()
    session.attach_stream(stream)
    assert stream.items == [note]
    await session.close()


async def test_cancellation_maps_the_request_id() -> None:
    session = BackendSession(FakeBackend, name="t")
    await session.start()
    backend = FakeBackend.instances[0]
    backend.auto_answer = False
    sink = ListSink()
    await session.request(request("r-1"), sink)
    await session.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "r-1"}})
    assert backend.sent[-1]["params"]["requestId"] == backend.sent[0]["id"]
    assert sink.ended  # the HTTP exchange waiting for it can finish
    backend.emit({"jsonrpc": "2.0", "id": backend.sent[0]["id"], "result": {}})
    assert sink.items == []  # a cancelled request's late answer is dropped
    await session.close()


async def test_abandoning_one_client_cancels_its_request_only() -> None:
    session = BackendSession(FakeBackend, name="t")
    await session.start()
    backend = FakeBackend.instances[0]
    backend.auto_answer = False
    mine, theirs = ListSink(), ListSink()
    await session.request(request(1), mine)
    await session.request(request(1), theirs)  # another client of the same stateless process reuses id 1
    await session.abandon(mine, cancel=True)
    cancelled = backend.sent[-1]
    assert cancelled["method"] == "notifications/cancelled"
    assert cancelled["params"]["requestId"] == backend.sent[0]["id"]
    backend.emit({"jsonrpc": "2.0", "id": backend.sent[1]["id"], "result": {"ok": True}})
    assert theirs.items == [{"jsonrpc": "2.0", "id": 1, "result": {"ok": True}}]
    await session.close()


async def test_a_backend_cancelling_its_own_request_is_forwarded_unchanged() -> None:
    session = BackendSession(FakeBackend, name="t")
    await session.start()
    backend = FakeBackend.instances[0]
    backend.auto_answer = False
    stream, pending = ListSink(), ListSink()
    session.attach_stream(stream)
    await session.request(request("c-1"), pending)
    note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}
    backend.emit(note)
    assert stream.items == [note]
    assert pending.items == []
    await session.close()


async def test_progress_for_a_client_that_cannot_stream_goes_nowhere_else() -> None:
    session = BackendSession(FakeBackend, name="t")
    await session.start()
    backend = FakeBackend.instances[0]
    backend.auto_answer = False
    json_only, streaming = ListSink(streaming=False), ListSink()
    await session.request(request(1, _meta={"progressToken": "p"}), json_only)
    await session.request(request(2), streaming)
    backend.emit(
        {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": "p", "progress": 1}}
    )
    assert json_only.items == []
    assert streaming.items == []
    await session.close()


async def test_death_fails_in_flight_requests_and_restart_replays_initialize() -> None:
    session = BackendSession(FakeBackend, name="t")
    await session.start()
    init_sink = ListSink()
    await session.request(request(0, "initialize", protocolVersion="2025-11-25"), init_sink)
    first = FakeBackend.instances[0]
    first.auto_answer = False
    pending = ListSink()
    await session.request(request(5), pending)
    first.die()
    async with asyncio.timeout(5):
        await pending.event.wait()
    assert pending.items[0]["id"] == 5
    assert "went away" in pending.items[0]["error"]["message"]
    sink = ListSink()
    async with asyncio.timeout(5):
        await session.request(request(6, "tools/list"), sink)
    second = FakeBackend.instances[1]
    assert [m.get("method") for m in second.sent] == ["initialize", "notifications/initialized", "tools/list"]
    assert second.sent[0]["params"] == {"protocolVersion": "2025-11-25"}
    assert sink.items[0]["result"] == {"method": "tools/list"}
    assert session.restarts == 1
    await session.close()


async def test_each_message_goes_with_its_caller_and_the_replayed_initialize_with_the_initializers() -> None:
    alice = Caller(Principal("alice", "iss", "jwt"), "alice-token")
    session = BackendSession(FakeBackend, name="t")
    await session.start()
    await session.request(request(0, "initialize"), ListSink(), caller=alice)
    first = FakeBackend.instances[0]
    first.auto_answer = False
    await session.request(request(1), ListSink(), caller=alice)
    await session.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}})
    assert first.callers == [alice, alice, None]  # the gateway's own message (no caller given) goes with none
    first.die()
    await until_restarting(session)
    sink = ListSink()
    async with asyncio.timeout(5):
        await session.request(request(2, "tools/list"), sink, caller=alice)
    second = FakeBackend.instances[1]
    assert [m.get("method") for m in second.sent] == ["initialize", "notifications/initialized", "tools/list"]
    assert second.callers == [alice, alice, alice]  # a remote backend's new session needs the caller's credential
    await session.close()


async def test_a_replacement_that_dies_at_once_is_retried_without_waiting_for_the_init_timeout() -> None:
    attempts = 0

    def factory() -> FakeBackend:
        nonlocal attempts
        attempts += 1
        backend = FakeBackend()
        if attempts == 2:  # the first replacement dies before answering initialize
            backend.auto_answer = False
            asyncio.get_running_loop().call_later(0.05, backend.die)
        return backend

    session = BackendSession(factory, name="t", init_timeout=60)
    await session.start()
    await session.request(request(0, "initialize", protocolVersion="2025-11-25"), ListSink())
    FakeBackend.instances[0].die()
    async with asyncio.timeout(5):
        while session.ready:
            await asyncio.sleep(0)
    sink = ListSink()
    async with asyncio.timeout(10):  # 0.5 s + 1 s of backoff, far below the 60 s init timeout
        await session.request(request(1, "ping"), sink)
        await sink.event.wait()
    assert attempts == 3
    assert sink.items[0]["result"] == {"method": "ping"}
    await session.close()


async def test_a_request_without_answer_times_out_with_a_jsonrpc_error() -> None:
    session = BackendSession(FakeBackend, name="slowpoke", request_timeout=0.05)
    await session.start()
    FakeBackend.instances[0].auto_answer = False
    sink = ListSink()
    await session.request(request(9), sink)
    async with asyncio.timeout(5):
        await sink.event.wait()
    assert sink.items[0]["error"]["code"] == -32000
    assert "did not answer" in sink.items[0]["error"]["message"]
    await asyncio.sleep(0)
    assert FakeBackend.instances[0].sent[-1]["method"] == "notifications/cancelled"
    await session.close()


async def test_a_backend_that_cannot_start_raises() -> None:
    session = BackendSession(lambda: FakeBackend(fail_open=True), name="t")
    with pytest.raises(BackendError):
        await session.start()


# -- a request the backend's session lost: sent again once, answered once ---------------------------------------------


async def test_a_request_the_session_ends_under_while_it_goes_out_is_sent_again_and_answered_once() -> None:
    held = HeldBackend(gone=True)
    session = BackendSession(first_then(held), name="t")
    await session.start()
    sink = ListSink()
    sending = asyncio.create_task(session.request(request(7, name="x"), sink))
    await held.holding.wait()
    held.die()  # the supervisor sees the session end while the request is going out ...
    await until_restarting(session)
    held.release.set()  # ... and the send then learns the backend never processed it (404)
    async with asyncio.timeout(5):
        await sending
    replacement = FakeBackend.instances[1]
    assert [m["method"] for m in replacement.sent] == ["tools/call"]
    assert sink.items == [{"jsonrpc": "2.0", "id": 7, "result": {"method": "tools/call"}}]  # one answer, not an error
    await session.close()


async def test_a_request_cancelled_while_waiting_to_be_sent_again_is_not_sent_again() -> None:
    held = HeldBackend(gone=True)
    held.release.set()
    session = BackendSession(first_then(held), name="t")
    await session.start()
    sink = ListSink()
    sending = asyncio.create_task(session.request(request("r-1"), sink))
    await until_restarting(session)  # the send met a 404: the request waits for the replacement session
    async with asyncio.timeout(5):
        await session.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "r-1"}})
        await sending
    replacement = FakeBackend.instances[1]
    assert [m["method"] for m in replacement.sent] == ["notifications/cancelled"]
    assert sink.ended
    assert sink.items == []
    await session.close()


async def test_a_request_sent_as_the_session_ends_is_failed_when_its_send_returns() -> None:
    held = HeldBackend(gone=False)
    session = BackendSession(first_then(held), name="t")
    await session.start()
    sink = ListSink()
    sending = asyncio.create_task(session.request(request(3), sink))
    await held.holding.wait()
    held.die()
    await until_restarting(session)
    held.release.set()  # it went out on the session that ended: no answer will ever come
    async with asyncio.timeout(5):
        await sending
    assert len(sink.items) == 1
    assert sink.items[0]["id"] == 3
    assert "went away" in sink.items[0]["error"]["message"]
    await session.close()


# -- closing the session wakes whoever waits for a restart ------------------------------------------------------------


async def test_closing_the_session_wakes_a_request_waiting_for_the_backend_to_restart() -> None:
    session = BackendSession(first_then(FakeBackend(), then_fail=True), name="t", request_timeout=60)
    await session.start()
    FakeBackend.instances[0].die()
    await until_restarting(session)
    waiting = asyncio.create_task(session.request(request(1), ListSink()))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await session.close()
    async with asyncio.timeout(2):  # not the 60 s request timeout
        with pytest.raises(BackendError, match=r"backend 't' session is closed"):
            await waiting


async def test_closing_the_session_answers_a_request_waiting_to_be_sent_again_at_once() -> None:
    held = HeldBackend(gone=True)
    held.release.set()
    session = BackendSession(first_then(held, then_fail=True), name="t", request_timeout=60)
    await session.start()
    sink = ListSink()
    sending = asyncio.create_task(session.request(request(4), sink))
    await until_restarting(session)
    await session.close()
    async with asyncio.timeout(2):
        await sending
    assert len(sink.items) == 1
    assert sink.items[0]["error"]["message"] == "session closed"


# -- an error while a request goes out: answered to its sink, or raised to the caller that asked for it --------------


class RefusingBackend(FakeBackend):
    """Refuses every `tools/call` as it goes out (the backend's HTTP 401 to the credential sent with it)."""

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        if message.get("method") == "tools/call":
            raise CredentialRefused("backend 't' refused the gateway's credential (HTTP 401)")
        await super().send(message, caller)


async def test_an_error_while_a_request_goes_out_is_answered_to_its_sink_by_default() -> None:
    session = BackendSession(RefusingBackend, name="t")
    await session.start()
    sink = ListSink()
    await session.request(request(1), sink)
    assert sink.items == [{"jsonrpc": "2.0", "id": 1, "error": {
        "code": -32000, "message": "backend 't' refused the gateway's credential (HTTP 401)"}}]  # fmt: skip
    await session.close()


async def test_with_raise_errors_an_error_while_a_request_goes_out_is_raised_as_is_and_never_answered() -> None:
    session = BackendSession(RefusingBackend, name="t", request_timeout=0.05)
    await session.start()
    sink = ListSink()
    with pytest.raises(CredentialRefused):
        await session.request(request(1), sink, raise_errors=True)
    await asyncio.sleep(0.1)  # past the request timeout: nothing pending is left to time out
    assert sink.items == []
    assert not session.busy
    await session.request(request(2, "ping"), sink, raise_errors=True)  # the session carries on
    assert sink.items[0]["result"] == {"method": "ping"}
    await session.close()


async def test_a_restart_is_reported_and_the_log_says_where_the_output_is(caplog: pytest.LogCaptureFixture) -> None:
    restarted: list[int] = []
    session = BackendSession(
        FakeBackend, name="t", on_restart=lambda: restarted.append(1), output_hint="hivegate logs alpha"
    )
    await session.start()
    FakeBackend.instances[-1].die()
    async with asyncio.timeout(5):
        while not restarted:
            await asyncio.sleep(0.01)
    assert restarted == [1]
    assert "backend 't' went away (exited); restarting (its output: `hivegate logs alpha`)" in caplog.text
    await session.close()
