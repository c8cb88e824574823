"""The legacy HTTP+SSE transport (spec 2024-11-05): `GET /sse` streams, `POST /messages?session_id=…` sends.

Each SSE connection owns one backend session; closing the stream ends it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import parse_qs

from hivegate.asgi.hints import learn_tool_hints
from hivegate.asgi.http import read_inbound, send_bytes, send_jsonrpc_error
from hivegate.asgi.sinks import QueueSink, pump_stream
from hivegate.asgi.types import Receive, Scope, Send
from hivegate.authz.gate import McpGate
from hivegate.backends.registry import SessionLimitError, SessionRegistry
from hivegate.backends.session import Sink
from hivegate.backends.transport import TransportFactory
from hivegate.core import jsonrpc
from hivegate.core.jsonrpc import BACKEND_UNAVAILABLE, SESSION_NOT_FOUND, Message
from hivegate.core.protocol import LEGACY_SSE_VERSION
from hivegate.errors import BackendError
from hivegate.observe.exchange import exchange_of
from hivegate.outgoing.caller import Caller
from hivegate.pipeline.answers import answer_filter
from hivegate.pipeline.authorize import admit
from hivegate.pipeline.limits import SLOT_KEY, Slot

__all__ = ["LegacySSEFrontend"]

logger = logging.getLogger("hivegate.sse")


class LegacySSEFrontend:
    def __init__(
        self,
        *,
        name: str,
        factory: TransportFactory,
        registry: SessionRegistry,
        request_timeout: float,
        messages_path: str = "/messages",
        max_body: int = 4 * 1024 * 1024,
        keepalive: float = 15.0,
        gate: McpGate | None = None,
    ) -> None:
        self._name = name
        self._gate = gate
        self._factory = factory
        self._registry = registry
        self._request_timeout = request_timeout
        self._messages_path = messages_path
        self._max_body = max_body
        self._keepalive = keepalive
        self._streams: dict[str, QueueSink] = {}

    async def handle_stream(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        """`GET /sse`: open a backend session for `caller`'s principal and stream what it sends."""
        if scope["method"] != "GET":
            await send_bytes(send, 405, b"", [(b"allow", b"GET")])
            return
        try:
            entry = await self._registry.open(
                caller.principal.key, self._factory, name=self._name, request_timeout=self._request_timeout
            )
        except SessionLimitError as exc:
            await send_jsonrpc_error(send, 503, None, BACKEND_UNAVAILABLE, str(exc), [(b"retry-after", b"5")])
            return
        except BackendError as exc:
            await send_jsonrpc_error(send, 502, None, BACKEND_UNAVAILABLE, f"backend unavailable: {exc}")
            return
        sink = QueueSink(streaming=True, per_request=False)
        entry.backend.attach_stream(sink)
        self._streams[entry.session_id] = sink
        endpoint = f"{scope.get('root_path', '')}{self._messages_path}?session_id={entry.session_id}"
        try:
            await pump_stream(
                receive,
                send,
                entry.backend,
                sink,
                headers=[],
                keepalive=self._keepalive,
                first_event=("endpoint", endpoint.encode()),
            )
        finally:
            self._streams.pop(entry.session_id, None)
            await self._registry.remove(entry.session_id)

    async def handle_message(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        """`POST /messages?session_id=…`: one message of `caller`'s to its session's backend (answers go on the
        stream)."""
        if scope["method"] != "POST":
            await send_bytes(send, 405, b"", [(b"allow", b"POST")])
            return
        principal = caller.principal
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        session_id = (query.get("session_id") or [""])[0]
        entry = self._registry.get(session_id, principal.key) if session_id else None
        sink = self._streams.get(session_id) if entry is not None else None
        if entry is None or sink is None:
            await send_jsonrpc_error(send, 404, None, SESSION_NOT_FOUND, "Session not found")
            return
        # this transport is revision 2024-11-05 whatever a header says, and predates batches: parsing refuses them
        inbound = await read_inbound(receive, send, self._max_body, LEGACY_SSE_VERSION)
        if inbound is None:
            return
        message = inbound.messages[0]
        exchange = exchange_of(scope)
        call = exchange.call(message) if exchange is not None else None
        if exchange is not None:
            exchange.session_id = session_id
        gate = self._gate

        async def learn_tools() -> None:
            assert gate is not None
            await learn_tool_hints(gate, entry.backend, self._name, self._request_timeout)

        calls = {call.request_id: call} if call is not None and call.request_id is not None else {}
        admission = await admit(gate, principal, inbound, calls, learn_tools)
        if not admission.allowed:
            _, body = admission.answer(inbound)
            assert isinstance(body, dict)
            if call is not None:
                call.answered(body)
            # Legacy clients read every answer from the stream, and the SDK's client stops sending after any
            # non-2xx POST: the refusal goes on the stream, the POST is accepted.
            sink.deliver(body)
            await send_bytes(send, 202, b"Accepted", [(b"content-type", b"text/plain")])
            return
        kept: Slot | None = None
        try:
            if jsonrpc.is_request(message):
                transform = None if gate is None else answer_filter(gate, principal, call)
                answered = exchange.defer(call) if call is not None and exchange is not None else None
                slot = scope.get(SLOT_KEY)
                # audited, and the caller's slot given back, when its answer reaches the stream
                kept = slot.hand_over() if isinstance(slot, Slot) else None
                target: Sink = _Settling(sink, message["id"], answered, kept)
                await entry.backend.request(message, target, transform=transform, caller=caller)
            else:
                await entry.backend.send(message, caller=caller)
        except BackendError as exc:
            if call is not None:
                call.deferred = False  # answered here after all
            if kept is not None:
                kept.release()
            await send_jsonrpc_error(send, 502, message.get("id"), BACKEND_UNAVAILABLE, str(exc))
            return
        await send_bytes(send, 202, b"Accepted", [(b"content-type", b"text/plain")])


class _Settling:
    """The session's event stream as one request sees it: the request's answer, on its way to the stream, also
    settles the audited call (None: the request was cancelled, no answer will come) and gives the caller's slot back.
    """

    __slots__ = ("_answered", "_id", "_sink", "_slot")

    def __init__(
        self,
        sink: Sink,
        request_id: jsonrpc.RequestId,
        answered: Callable[[Message | None], None] | None,
        slot: Slot | None,
    ) -> None:
        self._sink, self._id, self._answered, self._slot = sink, request_id, answered, slot

    def _done(self, message: Message | None) -> None:
        if self._answered is not None:
            self._answered(message)
        if self._slot is not None:
            self._slot.release()

    @property
    def streaming(self) -> bool:
        return self._sink.streaming

    @property
    def closed(self) -> bool:
        return self._sink.closed

    @closed.setter
    def closed(self, value: bool) -> None:
        self._sink.closed = value

    def deliver(self, message: Message) -> None:
        if "method" not in message and message.get("id") == self._id:
            self._done(message)
        self._sink.deliver(message)

    def end(self) -> None:
        self._done(None)
        self._sink.end()
