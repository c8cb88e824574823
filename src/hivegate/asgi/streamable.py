"""MCP Streamable HTTP (spec 2025-03-26 .. 2025-11-25, "Transports") in front of per-session backend transports.

POST carries one client message. A request's answer is `application/json` when the response is the first thing the
backend says about it, and switches to `text/event-stream` when a notification or server request comes first (or
the request runs long), so simple calls stay cheap and streaming calls still stream. GET opens the session's
standalone stream; DELETE ends the session.

Over 400 lines on purpose: the transport's state machine (POST, GET, DELETE, resumption from the shared store) over
one session registry; the pipeline's stages it calls live in `hivegate.pipeline`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import orjson

from hivegate.asgi.hints import learn_tool_hints
from hivegate.asgi.http import (
    ClientGone,
    SSEStream,
    get_header,
    read_inbound,
    send_bytes,
    send_json,
    send_jsonrpc_error,
)
from hivegate.asgi.sinks import QueueSink, RequestEnded, next_or_disconnect, pump_stream, wait_disconnect
from hivegate.asgi.types import Receive, Scope, Send
from hivegate.authz.gate import McpGate
from hivegate.backends.registry import SessionEntry, SessionLimitError, SessionRegistry
from hivegate.backends.session import BackendSession
from hivegate.backends.shared_sessions import SessionStoreUnavailable, SharedSession, SharedSessions
from hivegate.backends.transport import TransportFactory
from hivegate.core import jsonrpc
from hivegate.core.jsonrpc import BACKEND_UNAVAILABLE, SESSION_NOT_FOUND
from hivegate.core.principal import Principal
from hivegate.core.protocol import MODERN_VERSIONS, UNDECLARED_VERSION, VERSION_META
from hivegate.errors import BackendError
from hivegate.observe.exchange import McpCall, exchange_of
from hivegate.outgoing.caller import Caller
from hivegate.pipeline.answers import answer_filter
from hivegate.pipeline.authorize import admit
from hivegate.pipeline.headers import protocol_revision

__all__ = ["SessionFrontend", "StreamableLimits"]

logger = logging.getLogger("hivegate.streamable")

SESSION_HEADER = b"mcp-session-id"
_FIRST_WAIT = 1.0  # seconds before a request's client starts being watched for disconnects


@dataclass(frozen=True, slots=True)
class StreamableLimits:
    max_body: int = 4 * 1024 * 1024
    keepalive: float = 15.0
    stream_idle: float = 300.0  # a GET stream that carried nothing (but keep-alives) this long ends; clients reconnect


class SessionFrontend:
    """Streamable HTTP endpoint where every client session owns one backend session."""

    def __init__(
        self,
        *,
        name: str,
        factory: TransportFactory,
        registry: SessionRegistry,
        request_timeout: float,
        limits: StreamableLimits | None = None,
        gate: McpGate | None = None,
        shared: SharedSessions | None = None,
    ) -> None:
        """`shared`: record sessions in a store shared by replicas, and resume the ones other replicas opened."""
        self._name = name
        self._shared = shared
        self._resuming: dict[str, asyncio.Future[SessionEntry | None]] = {}
        self._gate = gate
        self._factory = factory
        self._registry = registry
        self._request_timeout = request_timeout
        self._limits = limits or StreamableLimits()

    async def handle(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        """Serve one request of `caller`'s (authorized for its principal; sent to the backend for it)."""
        method = scope["method"]
        if method == "POST":
            await self._post(scope, receive, send, caller)
        elif method == "GET":
            await self._get(scope, receive, send, caller)
        elif method == "DELETE":
            await self._delete(scope, send, caller)
        else:
            await send_bytes(send, 405, b"", [(b"allow", b"GET, POST, DELETE")])

    # -- POST ------------------------------------------------------------------------------------------------------

    async def _post(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        principal = caller.principal
        revision = protocol_revision(scope["headers"], undeclared=UNDECLARED_VERSION)
        inbound = await read_inbound(receive, send, self._limits.max_body, revision)
        if inbound is None:
            return
        exchange = exchange_of(scope)
        calls = [exchange.call(m) for m in inbound.messages] if exchange is not None else []
        by_id = {c.request_id: c for c in calls if c.request_id is not None}
        admission = await admit(self._gate, principal, inbound, by_id, lambda: self._learn_tools(scope, principal))
        if not admission.allowed:
            status, body = admission.answer(inbound)
            await send_json(send, status, body)
            for reply in body if isinstance(body, list) else [body]:
                if (found := by_id.get(reply["id"])) is not None:
                    found.answered(reply)
            return
        if inbound.batch:
            await self._batch(scope, send, caller, list(inbound.messages), by_id)
            return
        message = inbound.messages[0]
        call = calls[0] if calls else None
        if message.get("method") == "initialize" and "id" in message:
            await self._initialize(send, caller, message, call)
            return
        if get_header(scope, SESSION_HEADER) is None and jsonrpc.is_request(message) and _is_modern(message):
            await self._modern(scope, receive, send, caller, message, call)
            return
        entry = await self._session(scope, send, caller, message.get("id"))
        if entry is None:
            return
        if exchange is not None:
            exchange.session_id = entry.session_id
            exchange.client_info = exchange.client_info or entry.client_info
        if jsonrpc.is_request(message):
            headers = _session_headers(entry)
            await self._request(scope, receive, send, entry.backend, message, headers, caller, call=call)
            return
        try:
            await entry.backend.send(message, caller=caller)
        except BackendError as exc:
            await send_jsonrpc_error(send, 502, None, BACKEND_UNAVAILABLE, str(exc))
            return
        await send_bytes(send, 202, b"")

    async def _batch(
        self,
        scope: Scope,
        send: Send,
        caller: Caller,
        typed: list[jsonrpc.Message],
        calls: dict[jsonrpc.RequestId, McpCall],
    ) -> None:
        """A JSON-RPC batch (allowed by revision 2025-03-26), already validated (no initialize, no id twice) and
        admitted whole: answered with one JSON array of responses."""
        entry = await self._session(scope, send, caller, None)
        if entry is None:
            return
        sinks: list[QueueSink] = []
        try:
            for message in typed:
                if jsonrpc.is_request(message):
                    sink = QueueSink(streaming=False)
                    sinks.append(sink)
                    call = calls.get(message["id"])
                    transform = self._filter_for(caller.principal, message, call)
                    await entry.backend.request(message, sink, transform=transform, caller=caller)
                else:
                    await entry.backend.send(message, caller=caller)
        except BackendError as exc:
            await send_jsonrpc_error(send, 502, None, BACKEND_UNAVAILABLE, str(exc))
            return
        replies = [reply for reply in [await _final(sink) for sink in sinks] if reply is not None]
        for reply in replies:
            found = calls.get(reply.get("id"))  # type: ignore[arg-type]
            if found is not None:
                found.answered(reply)
        if not replies:
            await send_bytes(send, 202, b"")
            return
        await send_json(send, 200, replies, _session_headers(entry))

    async def _learn_tools(self, scope: Scope, principal: Principal) -> None:
        """Ask the caller's backend session for its tool list so a call's annotation hints are known (a client may
        call a tool without listing first). Failures leave the hints unknown (policies then decide without them)."""
        session_id = get_header(scope, SESSION_HEADER)
        entry = self._registry.get(session_id, principal.key) if session_id else None
        if entry is not None and self._gate is not None:
            await learn_tool_hints(self._gate, entry.backend, self._name, self._request_timeout)

    def _filter_for(
        self, principal: Principal, message: jsonrpc.Message, call: McpCall | None
    ) -> Callable[[jsonrpc.Message], jsonrpc.Message] | None:
        """With authorization on, answers are cut down to what `principal` may use (counted on `call`)."""
        if self._gate is None:
            return None
        return answer_filter(self._gate, principal, call)

    async def _session(
        self, scope: Scope, send: Send, caller: Caller, request_id: jsonrpc.RequestId | None
    ) -> SessionEntry | None:
        principal = caller.principal
        session_id = get_header(scope, SESSION_HEADER)
        if session_id is None:
            await send_jsonrpc_error(
                send, 400, request_id, jsonrpc.INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required"
            )
            return None
        entry = self._registry.get(session_id, principal.key)
        if entry is None and self._shared is not None:
            entry = await self._resume(send, caller, session_id, request_id)
            if entry is None:
                return None
        if entry is None:
            await send_jsonrpc_error(send, 404, request_id, SESSION_NOT_FOUND, "Session not found")
        elif self._shared is not None and entry.init_params is not None:
            record = SharedSession(principal.key, entry.init_params, entry.client_info)
            if not await self._shared.renew(entry.session_id, record):  # ended (DELETE) at another replica
                logger.info("session %s… was ended at another replica", session_id[:6])
                await self._registry.remove(entry.session_id)
                await send_jsonrpc_error(send, 404, request_id, SESSION_NOT_FOUND, "Session not found")
                return None
        return entry

    async def _resume(
        self, send: Send, caller: Caller, session_id: str, request_id: jsonrpc.RequestId | None
    ) -> SessionEntry | None:
        """Open here a session another replica recorded (only for its owner), replaying the client's initialize.
        Concurrent requests for one session share one resumption (for the caller of the first). None: answered
        already (404 or 502)."""
        principal = caller.principal
        pending = self._resuming.get(session_id)
        if pending is None:
            pending = asyncio.ensure_future(self._reopen(caller, session_id))
            self._resuming[session_id] = pending
            pending.add_done_callback(lambda _: self._resuming.pop(session_id, None))
        try:
            entry = await asyncio.shield(pending)
        except SessionLimitError as exc:
            await send_jsonrpc_error(send, 503, request_id, BACKEND_UNAVAILABLE, str(exc), [(b"retry-after", b"5")])
            return None
        except SessionStoreUnavailable as exc:  # the session may exist: a 404 would end it for the client
            await send_jsonrpc_error(
                send, 503, request_id, BACKEND_UNAVAILABLE, f"{exc}: retry", [(b"retry-after", b"1")]
            )
            return None
        except (BackendError, TimeoutError) as exc:
            await send_jsonrpc_error(send, 502, request_id, BACKEND_UNAVAILABLE, f"backend unavailable: {exc}")
            return None
        if entry is None or entry.owner != principal.key:
            await send_jsonrpc_error(send, 404, request_id, SESSION_NOT_FOUND, "Session not found")
            return None
        return entry

    async def _reopen(self, caller: Caller, session_id: str) -> SessionEntry | None:
        assert self._shared is not None
        owner = caller.principal.key
        record = await self._shared.load(session_id)
        if record is None or record.owner != owner:
            return None
        entry = await self._registry.open(
            owner, self._factory, name=self._name, request_timeout=self._request_timeout, session_id=session_id
        )
        try:
            await entry.backend.handshake(record.init_params, caller=caller)
        except BaseException:
            await self._registry.remove(session_id)
            raise
        entry.client_info, entry.init_params = record.client_info, record.init_params
        logger.info("session %s… resumed from the shared session store", session_id[:6])
        return entry

    async def _open(
        self, send: Send, principal: Principal, request_id: jsonrpc.RequestId, session_id: str | None = None
    ) -> SessionEntry | None:
        try:
            return await self._registry.open(
                principal.key,
                self._factory,
                name=self._name,
                request_timeout=self._request_timeout,
                session_id=session_id,
            )
        except SessionLimitError as exc:
            await send_jsonrpc_error(send, 503, request_id, BACKEND_UNAVAILABLE, str(exc), [(b"retry-after", b"5")])
        except BackendError as exc:
            logger.error("cannot start backend %r: %s", self._name, exc)
            await send_jsonrpc_error(send, 502, request_id, BACKEND_UNAVAILABLE, f"backend unavailable: {exc}")
        return None

    async def _initialize(
        self, send: Send, caller: Caller, message: jsonrpc.Message, call: McpCall | None = None
    ) -> None:
        principal = caller.principal
        entry = await self._open(send, principal, message["id"])
        if entry is None:
            return
        sink = QueueSink(streaming=False)
        await entry.backend.request(message, sink, caller=caller)
        reply = await _final(sink)
        if call is not None:
            call.answered(reply)
        params = message.get("params")
        info = params.get("clientInfo") if isinstance(params, dict) else None
        entry.client_info = info if isinstance(info, dict) else None
        if reply is None or "error" in reply:
            await self._registry.remove(entry.session_id)
            await send_json(send, 200, reply or jsonrpc.error_response(message["id"], BACKEND_UNAVAILABLE, "cancelled"))
            return
        if self._shared is not None:
            entry.init_params = params
            await self._shared.save(entry.session_id, SharedSession(principal.key, params, entry.client_info))
        await send_json(send, 200, reply, _session_headers(entry))

    async def _modern(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        caller: Caller,
        message: jsonrpc.Message,
        call: McpCall | None,
    ) -> None:
        """A 2026-07-28 request: self-contained, served by a backend process kept per caller (never shared)."""
        stateless_id = "stateless-" + hashlib.sha256(caller.principal.key.encode()).hexdigest()
        entry = await self._open(send, caller.principal, message["id"], session_id=stateless_id)
        if entry is not None:
            await self._request(
                scope, receive, send, entry.backend, message, [], caller, cancel_on_disconnect=True, call=call
            )

    async def _request(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        backend: BackendSession,
        message: jsonrpc.Message,
        headers: list[tuple[bytes, bytes]],
        caller: Caller,
        *,
        cancel_on_disconnect: bool = False,
        call: McpCall | None = None,
    ) -> None:
        """Forward one request of `caller`'s; answer with JSON, or with SSE once anything but the answer comes first."""
        accept = get_header(scope, b"accept") or ""
        sink = QueueSink(streaming="text/event-stream" in accept)
        request_id = message["id"]
        try:
            transform = self._filter_for(caller.principal, message, call)
            await backend.request(message, sink, transform=transform, caller=caller)
        except BackendError as exc:
            await send_jsonrpc_error(send, 503, request_id, BACKEND_UNAVAILABLE, str(exc))
            return
        # Most answers come within milliseconds: watching for the client's disconnect (a task per request) starts
        # only once the request has been running for a while.
        disconnect: asyncio.Future[object] | None = None
        stream: SSEStream | None = None
        try:
            while True:
                item = await next_or_disconnect(
                    sink, disconnect, _FIRST_WAIT if disconnect is None else self._limits.keepalive
                )
                if item is None:
                    if disconnect is None:
                        disconnect = asyncio.ensure_future(wait_disconnect(receive))
                        continue
                    if sink.streaming:  # nothing for a while: commit to SSE and keep the connection alive
                        if stream is None:
                            stream = SSEStream(send)
                            await stream.start(headers)
                        await stream.comment()
                    continue
                final = "method" not in item and item.get("id") == request_id
                if final and call is not None:
                    call.answered(item)
                if stream is None:
                    if final:
                        await send_json(send, 200, item, headers)
                        return
                    stream = SSEStream(send)
                    await stream.start(headers)
                await stream.event(orjson.dumps(item))
                if final:
                    await stream.end()
                    return
        except RequestEnded:  # the client cancelled it: end the exchange without an answer
            if call is not None:
                call.settle("failure", message="cancelled by the client")
            if stream is None:
                await send_bytes(send, 204, b"", headers)
            else:
                await stream.end()
        except (ConnectionError, ClientGone):
            # Before 2026-07-28 a disconnect is not a cancellation: the request runs on, its answer is dropped.
            # In 2026-07-28 closing the stream is the cancellation.
            if call is not None:
                call.settle("error", message="the client went away")
            await backend.abandon(sink, cancel=cancel_on_disconnect)
        finally:
            if disconnect is not None:
                disconnect.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await disconnect

    # -- GET and DELETE --------------------------------------------------------------------------------------------

    async def _get(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        accept = get_header(scope, b"accept") or ""
        if "text/event-stream" not in accept:
            await send_jsonrpc_error(
                send, 406, None, jsonrpc.INVALID_REQUEST, "Not Acceptable: GET needs Accept: text/event-stream"
            )
            return
        entry = await self._session(scope, send, caller, None)
        if entry is None:
            return
        sink = QueueSink(streaming=True, per_request=False)
        if not entry.backend.attach_stream(sink):
            await send_jsonrpc_error(
                send, 409, None, jsonrpc.INVALID_REQUEST, "Conflict: a stream is already open for this session"
            )
            return
        await pump_stream(
            receive,
            send,
            entry.backend,
            sink,
            headers=_session_headers(entry),
            keepalive=self._limits.keepalive,
            idle=self._limits.stream_idle,
        )

    async def _delete(self, scope: Scope, send: Send, caller: Caller) -> None:
        principal = caller.principal
        session_id = get_header(scope, SESSION_HEADER)
        if (
            session_id is not None
            and self._shared is not None
            and self._registry.get(session_id, principal.key) is None
        ):
            await self._delete_elsewhere(send, principal, session_id)  # no need to open it here only to end it
            return
        entry = await self._session(scope, send, caller, None)
        if entry is None:
            return
        await send_bytes(send, 200, b"")  # answer first: stopping the backend process can take a moment
        if self._shared is not None:
            await self._shared.delete(entry.session_id)
        await self._registry.remove(entry.session_id)

    async def _delete_elsewhere(self, send: Send, principal: Principal, session_id: str) -> None:
        """End a session this replica does not hold: its record goes, and the replica holding it sees the marker."""
        assert self._shared is not None
        try:
            record = await self._shared.load(session_id)
        except SessionStoreUnavailable as exc:
            await send_jsonrpc_error(send, 503, None, BACKEND_UNAVAILABLE, f"{exc}: retry", [(b"retry-after", b"1")])
            return
        if record is None or record.owner != principal.key:
            await send_jsonrpc_error(send, 404, None, SESSION_NOT_FOUND, "Session not found")
            return
        await self._shared.delete(session_id)
        await send_bytes(send, 200, b"")


async def _final(sink: QueueSink) -> jsonrpc.Message | None:
    """The response in a non-streaming sink (anything else delivered there is skipped); None if cancelled."""
    while True:
        try:
            item = await next_or_disconnect(sink, None, 3600.0)
        except RequestEnded:
            return None
        if item is not None and "method" not in item:
            return item


def _session_headers(entry: SessionEntry) -> list[tuple[bytes, bytes]]:
    return [(SESSION_HEADER, entry.session_id.encode())]


def _is_modern(message: jsonrpc.Message) -> bool:
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and meta.get(VERSION_META) in MODERN_VERSIONS
