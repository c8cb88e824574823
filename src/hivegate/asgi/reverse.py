"""Reverse proxy to a remote Streamable HTTP MCP server (the fast path: no per-session state beyond ownership).

Only an allow-list of request headers goes upstream: the caller's `Authorization` and cookies never do (no token
passthrough). Session ids the backend hands out are bound to the principal that received them.

Over 400 lines on purpose: one request's way through the proxy (headers, parsing, authorization, the backend call,
the answer's filter) reads top to bottom here; the session table (`reverse_sessions`) and event rewriting
(`sse_rewrite`) are apart already.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from hivegate.asgi.http import BodyTooLarge, ClientGone, read_body, send_bytes, send_json, send_jsonrpc_error
from hivegate.asgi.reverse_sessions import SessionTable
from hivegate.asgi.sinks import wait_disconnect
from hivegate.asgi.sse_rewrite import EventRewriter
from hivegate.asgi.types import Receive, Scope, Send
from hivegate.authz.gate import McpGate
from hivegate.core import jsonrpc
from hivegate.core.jsonrpc import BACKEND_UNAVAILABLE, SESSION_NOT_FOUND
from hivegate.core.protocol import UNDECLARED_VERSION
from hivegate.errors import AuthenticationError, InvalidMessage
from hivegate.httpclient.pool import HTTP1Pool, HTTP1Response, HTTPClientError, HTTPTimeout
from hivegate.observe.exchange import McpCall, carries_trace_context, exchange_of
from hivegate.outgoing.caller import Caller
from hivegate.outgoing.credentials import Credentials, OutgoingAuthError
from hivegate.pipeline.answers import answer_filter, might_carry_list
from hivegate.pipeline.authorize import admit
from hivegate.pipeline.events import EventIds
from hivegate.pipeline.headers import protocol_revision
from hivegate.pipeline.messages import parse_body

__all__ = ["ReverseProxy"]

logger = logging.getLogger("hivegate.proxy")

_FORWARD_REQUEST = frozenset({b"accept", b"content-type", b"last-event-id"})  # plus every MCP `mcp-*` header
_FORWARD_RESPONSE = frozenset(
    {b"content-type", b"mcp-session-id", b"mcp-protocol-version", b"cache-control", b"retry-after", b"allow"}
)
_SETTLE_LIMIT = 64 * 1024  # answers up to this size are read for the audit outcome
_HINTS_ID = "hivegate-tool-annotations"  # the id of the tools/list the gateway sends for annotation hints


class ReverseProxy:
    def __init__(
        self,
        url: str,
        *,
        request_timeout: float,
        max_body: int = 4 * 1024 * 1024,
        name: str = "remote",
        gate: McpGate | None = None,
        credentials: Credentials | None = None,
        sessions: SessionTable | None = None,
        stream_idle_timeout: float = 300.0,
    ) -> None:
        """`credentials`: the backend's own credential for each request (`outgoingAuth`); never the caller's.
        `sessions`: who owns which session, within limits; `stream_idle_timeout`: a GET stream that carries nothing
        for this long is ended (the client reconnects), so idle streams do not hold backend connections forever."""
        self._url = url
        self._gate = gate
        self._credentials = credentials
        self._name = name
        self._max_body = max_body
        self._timeout = request_timeout
        self._stream_idle = stream_idle_timeout
        self._sessions = sessions if sessions is not None else SessionTable()
        self._pool = HTTP1Pool(url)
        self._event_ids = EventIds()
        self._background: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._pool.aclose()

    async def handle(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None:
        """Relay one request of `caller`'s (authorized for its principal; with the backend's credential for it)."""
        principal = caller.principal
        method = scope["method"]
        if method not in ("GET", "POST", "DELETE"):
            await send_bytes(send, 405, b"", [(b"allow", b"GET, POST, DELETE")])
            return
        headers: list[tuple[bytes, bytes]] = []
        session_id: str | None = None
        last_event: bytes | None = None
        for key, value in scope["headers"]:  # each MCP state header appears once here (`pipeline.headers`)
            if key == b"last-event-id":
                last_event = value
            elif key in _FORWARD_REQUEST or key.startswith(b"mcp-"):
                headers.append((key, value))
                if key == b"mcp-session-id":
                    session_id = value.decode("latin-1")
        if session_id is not None:
            owner = self._sessions.owner(session_id)
            if owner is None and self._sessions.ended(session_id):
                await send_jsonrpc_error(send, 404, None, SESSION_NOT_FOUND, "Session not found")
                return
            if owner is None:
                self._opened(session_id, caller)  # unknown here (e.g. after a restart): first user owns it
            elif owner != principal.key:
                await send_jsonrpc_error(send, 404, None, SESSION_NOT_FOUND, "Session not found")
                return
        if last_event is not None:
            original = self._event_ids.open(session_id, last_event.decode("latin-1"))
            if original is None:
                await send_jsonrpc_error(
                    send, 400, None, jsonrpc.INVALID_REQUEST, "Bad Request: Last-Event-ID is not one of this session's"
                )
                return
            headers.append((b"last-event-id", original.encode("latin-1")))
        body = b""
        request_id: jsonrpc.RequestId | None = None
        calls: list[McpCall] = []
        credential: list[tuple[bytes, bytes]] | None = None  # the backend's own, fetched once, when first needed
        if method == "POST":
            try:
                body = await read_body(receive, self._max_body)
            except BodyTooLarge:
                await send_jsonrpc_error(
                    send, 413, None, jsonrpc.INVALID_REQUEST, f"request body exceeds {self._max_body} bytes"
                )
                return
            except ClientGone:
                return
            try:
                # the body goes on as bytes: parsing refuses what the backend could read otherwise than the policies
                inbound = parse_body(body, revision=protocol_revision(scope["headers"], undeclared=UNDECLARED_VERSION))
            except InvalidMessage as exc:
                await send_json(send, exc.status, exc.answer())
                return
            message: Any = list(inbound.messages) if inbound.batch else inbound.messages[0]
            request_id = inbound.first_id
            exchange = exchange_of(scope)
            if exchange is not None:
                exchange.session_id = session_id
                calls.extend(exchange.call(item) for item in inbound.messages)
                if exchange.tracer is not None:
                    body = _trace_context(calls, message, body, headers)
            if self._gate is not None:
                if any(self._gate.needs_tool_list(m) for m in inbound.requests):
                    credential = await self._credential(send, request_id, caller)
                    if credential is None:
                        return
                    await self._learn_tools(headers + credential)
                admission = await admit(self._gate, principal, inbound, _by_id(calls))
                if not admission.allowed:
                    status, answer = admission.answer(inbound)
                    await send_json(send, status, answer)
                    _settle(calls, answer)
                    return
        if credential is None:
            credential = await self._credential(send, request_id, caller)
            if credential is None:
                return
        headers += credential
        try:
            resp = await self._pool.request(method, headers, body, timeout=None if method == "GET" else self._timeout)
        except HTTPTimeout:
            await _unavailable(send, calls, 504, request_id, f"backend {self._name!r} timed out")
            return
        except HTTPClientError as exc:
            logger.warning("backend %r unreachable: %s", self._name, exc)
            await _unavailable(send, calls, 502, request_id, f"backend {self._name!r} is unreachable")
            return
        out = [(k, v) for k, v in resp.headers if k in _FORWARD_RESPONSE]
        stream_session = session_id
        if resp.status < 300:
            new_session = resp.header(b"mcp-session-id")
            if new_session is not None and new_session.decode("latin-1") != session_id:
                stream_session = new_session.decode("latin-1")
                self._opened(stream_session, caller)
            if method == "DELETE" and session_id is not None:
                self._sessions.remove(session_id)
        rewrite = None
        if self._gate is not None:  # every answer, on every stream, by what it carries (`pipeline.answers`)
            rewrite = answer_filter(self._gate, principal, _by_id(calls))
        if (resp.header(b"content-type") or b"").startswith(b"text/event-stream"):
            ids = self._event_ids

            def seal(event_id: str) -> str:
                return ids.seal(stream_session, event_id)

            rewriter = EventRewriter(rewrite, seal)
            if resp.complete:  # a short stream that arrived whole (one answer): sent on as one body, no relay tasks
                payload = await resp.read()
                body = rewriter.feed(payload) + rewriter.flush()
                await send_bytes(send, resp.status, body, out)
                if calls and body and len(body) <= _SETTLE_LIMIT:
                    _settle(calls, [m for m in _stream_messages(body) if isinstance(m, dict)])
                return
            idle = self._stream_idle if method == "GET" else None
            await self._stream(resp, receive, send, out, rewriter, idle)
            return
        try:
            if resp.complete:  # arrived with its headers: nothing to wait for
                payload = await resp.read()
            else:
                async with asyncio.timeout(self._timeout):
                    payload = await resp.read()
        except (HTTPClientError, TimeoutError):
            resp.close()
            await _unavailable(send, calls, 502, request_id, f"backend {self._name!r} broke off")
            return
        if rewrite is not None and resp.status < 300 and payload and might_carry_list(payload):
            payload = _rewrite_json(payload, rewrite)
        await send_bytes(send, resp.status, payload, out)
        if calls and payload and len(payload) <= _SETTLE_LIMIT:
            with contextlib.suppress(ValueError):
                _settle(calls, jsonrpc.decode(payload))

    async def _credential(
        self, send: Send, request_id: jsonrpc.RequestId | None, caller: Caller
    ) -> list[tuple[bytes, bytes]] | None:
        """The backend's own credential for `caller` as headers, or None once the caller has been told why there is
        none."""
        if self._credentials is None:
            return []
        try:
            extra = await self._credentials.headers(caller)
        except OutgoingAuthError as exc:
            await send_jsonrpc_error(send, 502, request_id, BACKEND_UNAVAILABLE, str(exc))
            return None
        return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]

    async def _learn_tools(self, headers: list[tuple[bytes, bytes]]) -> None:
        """Ask the backend, on the caller's session, for its tool list so a call's annotation hints are known (a
        client may call a tool without listing first). Failures leave the hints unknown (policies then decide
        without them)."""
        assert self._gate is not None
        ask = [(k, v) for k, v in headers if k not in (b"accept", b"content-type", b"traceparent", b"tracestate")]
        ask += [(b"accept", b"application/json, text/event-stream"), (b"content-type", b"application/json")]
        body = jsonrpc.encode({"jsonrpc": "2.0", "id": _HINTS_ID, "method": "tools/list", "params": {}})
        try:
            async with asyncio.timeout(min(self._timeout, 10.0)):
                resp = await self._pool.request("POST", ask, body, timeout=self._timeout)
                payload = await resp.read()
        except (HTTPClientError, TimeoutError) as exc:
            logger.info("backend %r: could not list tools for their annotations: %s", self._name, exc)
            return
        answer = _answer(payload, resp.header(b"content-type") or b"", _HINTS_ID) if resp.status == 200 else None
        if answer is not None:
            self._gate.learn_tool_list(answer)

    async def _stream(
        self,
        resp: HTTP1Response,
        receive: Receive,
        send: Send,
        headers: list[tuple[bytes, bytes]],
        rewriter: EventRewriter | None = None,
        idle: float | None = None,
    ) -> None:
        """Relay an event stream chunk by chunk until the backend ends it, the client goes away, or (with `idle`)
        nothing came for `idle` seconds.

        The client's disconnect is watched (and ends the backend stream) from the start on a standalone stream
        (`idle` given), and on a POST's stream once its first chunk is relayed and more is to come: most POST
        streams are one answer that arrives at once, and a watcher task per call cost ~10% of the gateway's CPU.
        """
        await send({"type": "http.response.start", "status": resp.status, "headers": headers})
        watcher = self._watch_disconnect(receive, resp) if idle is not None else None
        try:
            async for chunk in resp.iter_chunks(idle=idle):
                if rewriter is not None:
                    chunk = rewriter.feed(chunk)
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                if watcher is None and not resp.complete:
                    watcher = self._watch_disconnect(receive, resp)
            if rewriter is not None and (rest := rewriter.flush()):
                await send({"type": "http.response.body", "body": rest, "more_body": True})
        except HTTPTimeout:
            logger.debug("backend %r: a stream idle for %s s was ended", self._name, idle)
        except HTTPClientError as exc:
            if watcher is None or not watcher.done():  # not the client's leaving, which closes the stream itself
                logger.warning("backend %r stream ended early: %s", self._name, exc)
        except ValueError as exc:  # an event too large to filter is not relayed unfiltered
            logger.warning("backend %r stream dropped: %s", self._name, exc)
        finally:
            if watcher is not None:
                watcher.cancel()
            resp.close()
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @staticmethod
    def _watch_disconnect(receive: Receive, resp: HTTP1Response) -> asyncio.Future[Any]:
        """A task that closes `resp` (ending its relay) when the client disconnects."""

        def disconnected(done: asyncio.Future[Any]) -> None:
            if not done.cancelled():
                done.exception()  # retrieved: nobody awaits the watcher
                resp.close()

        watcher = asyncio.ensure_future(wait_disconnect(receive))
        watcher.add_done_callback(disconnected)
        return watcher

    def _opened(self, session_id: str, caller: Caller) -> None:
        """Record the session of `caller`'s principal; sessions ended to make room are deleted at the server, in the
        background (with `caller`'s credential for its own, the gateway's own for another's when the credential
        depends on no caller; otherwise the server's idle expiry ends it)."""
        owner_key = caller.principal.key
        for ended, owner in self._sessions.add(session_id, owner_key):
            logger.info("session %s… at %r ended to make room for a new one", ended[:6], self._name)
            task = asyncio.ensure_future(self._delete_at_backend(ended, caller if owner == owner_key else None))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _delete_at_backend(self, session_id: str, caller: Caller | None) -> None:
        headers = [(b"mcp-session-id", session_id.encode("latin-1"))]
        try:
            if self._credentials is not None:
                if caller is None and self._credentials.needs_caller:
                    return
                extra = await self._credentials.headers(caller)
                headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
            resp = await self._pool.request("DELETE", headers, b"", timeout=self._timeout)
            resp.close()
        except (HTTPClientError, OutgoingAuthError, AuthenticationError) as exc:
            logger.info("backend %r: could not end session %s…: %s", self._name, session_id[:6], exc)


def _answer(payload: bytes, content_type: bytes, request_id: str) -> jsonrpc.Message | None:
    """The answer to `request_id` in a JSON body or an event stream (which may carry notifications first)."""
    for chunk in _event_data(payload) if content_type.startswith(b"text/event-stream") else [payload]:
        try:
            message = jsonrpc.decode(chunk)
        except ValueError:
            continue
        if isinstance(message, dict) and message.get("id") == request_id and "method" not in message:
            return message
    return None


def _stream_messages(payload: bytes) -> list[Any]:
    """The JSON messages of a whole `text/event-stream` body (undecodable events left out)."""
    found = []
    for data in _event_data(payload):
        with contextlib.suppress(ValueError):
            found.append(jsonrpc.decode(data))
    return found


def _event_data(payload: bytes) -> list[bytes]:
    """The data of each event in a whole `text/event-stream` body."""
    events: list[bytes] = []
    data: list[bytes] = []
    for line in [*payload.splitlines(), b""]:
        if not line:
            if data:
                events.append(b"\n".join(data))
            data = []
        elif line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
    return events


def _rewrite_json(payload: bytes, rewrite: Callable[[jsonrpc.Message], jsonrpc.Message]) -> bytes:
    """Apply `rewrite` to a JSON answer (one message or a batch); a body that is not JSON-RPC passes unchanged."""
    try:
        decoded = jsonrpc.decode(payload)
    except ValueError:
        return payload
    if isinstance(decoded, dict):
        return jsonrpc.encode(rewrite(decoded))
    if isinstance(decoded, list):
        return jsonrpc.encode([rewrite(m) if isinstance(m, dict) else m for m in decoded])
    return payload


def _trace_context(calls: list[McpCall], message: Any, body: bytes, headers: list[tuple[bytes, bytes]]) -> bytes:
    """When the gateway traces a call, the backend gets the gateway's `backend` span as its parent in a `traceparent`
    header (the first traced call's, for a batch). The body goes as it came unless the caller put a trace context of
    its own in a traced call's `_meta`: then it is re-encoded with the gateway's, which `Exchange.call` put there."""
    trace = next((call.trace for call in calls if call.propagated and call.trace is not None), None)
    if trace is None:
        return body
    headers.append((b"traceparent", trace.traceparent().encode()))
    if (state := trace.tracestate_header()) is not None:
        headers.append((b"tracestate", state.encode()))
    if any(call.propagated and carries_trace_context(call.params) for call in calls):
        return jsonrpc.encode(message)
    return body


async def _unavailable(
    send: Send, calls: list[McpCall], status: int, request_id: jsonrpc.RequestId | None, message: str
) -> None:
    """Answer that the backend failed, and record that answer (its JSON-RPC code) for every open call."""
    answer = jsonrpc.error_response(request_id, BACKEND_UNAVAILABLE, message)
    await send_json(send, status, answer)
    for call in calls:
        call.answered({**answer, "id": call.request_id})


def _by_id(calls: list[McpCall]) -> dict[jsonrpc.RequestId, McpCall]:
    return {c.request_id: c for c in calls if c.request_id is not None}


def _settle(calls: list[McpCall], answer: Any) -> None:
    """Settle recorded calls from the JSON answer (one message or a batch) the client got."""
    by_id: dict[Any, McpCall] = {c.request_id: c for c in calls if c.request_id is not None}
    for reply in answer if isinstance(answer, list) else [answer]:
        if isinstance(reply, dict) and "method" not in reply:
            call = by_id.get(reply.get("id"))
            if call is not None:
                call.answered(reply)
