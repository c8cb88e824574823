"""The gateway's ASGI application: one pipeline, in one place.

request → Host/Origin check → authenticate (failures logged, at a bounded rate) → single-valued headers →
per-principal limits → MCP endpoint (→ backend), with RFC 9728 metadata, CORS and health beside it. Errors become
their wire form here; a Python traceback never reaches a client.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

from hivegate.asgi.http import get_header, send_bytes, send_json, send_jsonrpc_error
from hivegate.asgi.origin import OriginPolicy
from hivegate.asgi.types import ASGIApp, Message, Receive, Scope, Send
from hivegate.core import jsonrpc
from hivegate.core.ports import Authenticator
from hivegate.errors import AuthenticationError, InsufficientScope
from hivegate.oauth.bearer import www_authenticate
from hivegate.oauth.metadata import protected_resource_metadata, resource_metadata_url
from hivegate.observe.exchange import EXCHANGE_KEY, CallTracer, Exchange, Observer, Outcome, current_request_id
from hivegate.observe.ratelimit import RateLimitedLog
from hivegate.outgoing.caller import Caller
from hivegate.pipeline.headers import check_headers
from hivegate.pipeline.limits import SLOT_KEY, CallerLimits

__all__ = ["Endpoint", "Gateway", "GatewaySettings"]

logger = logging.getLogger("hivegate.gateway")

PRM_PREFIX = "/.well-known/oauth-protected-resource"
_CORS_ALLOW_HEADERS = b"authorization, content-type, mcp-protocol-version, mcp-session-id, last-event-id"
_CORS_EXPOSE_HEADERS = b"mcp-session-id, www-authenticate"


class Endpoint(Protocol):
    """An MCP endpoint, called once the request is authenticated, with the caller it is for (the principal and the
    bearer token it presented), which it passes on to whatever sends messages to a backend on the caller's behalf."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send, caller: Caller) -> None: ...


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    endpoints: dict[str, Endpoint]
    public: dict[str, ASGIApp] = field(default_factory=dict)
    public_prefixes: dict[str, ASGIApp] = field(default_factory=dict)
    mcp_path: str = "/mcp"
    resource_url: str | None = None
    allowed_origins: Sequence[str] = ()
    loopback_only: bool = True
    on_startup: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=tuple)
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=tuple)
    # run once the sockets listen, before the start-up summary is printed (a check may need the gateway itself)
    after_listening: Sequence[Callable[[], Awaitable[None]]] = field(default_factory=tuple)
    observers: Sequence[Observer] = field(default_factory=tuple)  # one that is a `CallTracer` traces each call
    diagnostics: ASGIApp | None = None  # served to connections on `diagnostics_port` only
    diagnostics_port: int | None = None
    summary: Sequence[str] = ()  # start-up summary lines
    limits: CallerLimits = field(default_factory=CallerLimits)  # per principal: requests in flight, open streams


class Gateway:
    def __init__(self, settings: GatewaySettings, authenticator: Authenticator) -> None:
        self._settings = settings
        self._auth = authenticator
        self._endpoints = settings.endpoints
        self._origins = OriginPolicy(settings.allowed_origins, loopback_only=settings.loopback_only)
        self._tracer = next((o for o in settings.observers if isinstance(o, CallTracer)), None)
        self._auth_log = RateLimitedLog(logging.getLogger("hivegate.authn"), rate=5.0, burst=20)

    @property
    def summary(self) -> Sequence[str]:
        return self._settings.summary

    async def listening(self) -> None:
        """The sockets listen: run what waits for that (e.g. the first readiness check of the start-up summary, which
        may fetch keys the gateway serves itself)."""
        for hook in self._settings.after_listening:
            await hook()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        diagnostics = self._settings.diagnostics
        if (
            diagnostics is not None
            and kind == "http"
            and (scope.get("server") or ("", 0))[1] == self._settings.diagnostics_port
        ):
            await diagnostics(scope, receive, send)
            return
        if kind == "http":
            started = False

            async def tracking_send(message: Message) -> None:
                nonlocal started
                started = started or message["type"] == "http.response.start"
                await send(message)

            try:
                await self._http(scope, receive, tracking_send)
            except Exception:
                logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
                if not started:  # the client gets a JSON-RPC error, never a traceback
                    await send_json(
                        send,
                        500,
                        {"jsonrpc": "2.0", "id": None, "error": {"code": -32603, "message": "Internal error"}},
                    )
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        endpoint = self._endpoints.get(path) or self._endpoints.get(path.rstrip("/"))
        host = get_header(scope, b"host")
        if not self._origins.host_ok(host):
            await send_json(send, 403, {"error": "forbidden", "error_description": "Host header not allowed"})
            return
        origin = get_header(scope, b"origin")
        if not self._origins.origin_ok(origin, host):
            await send_json(send, 403, {"error": "forbidden", "error_description": "Origin not allowed"})
            return
        if origin is not None:
            send = _with_cors(send, origin)
            if scope["method"] == "OPTIONS":
                await send_bytes(send, 204, b"", _preflight_headers())
                return
        if endpoint is None:
            public = self._settings.public.get(path) or self._prefixed(path)
            if public is not None:
                await public(scope, receive, send)
            elif path.startswith(PRM_PREFIX):
                await self._metadata(scope, send)
            elif path == "/health":
                await send_json(send, 200, {"status": "ok"})
            else:
                await send_json(send, 404, {"error": "not_found", "error_description": f"no route for {path}"})
            return
        client = scope.get("client")
        exchange = Exchange.open(path, scope["method"], client[0] if client else "", get_header(scope, b"user-agent"))
        if self._tracer is not None:  # the caller's W3C trace context, if any
            exchange.trace_with(self._tracer, get_header(scope, b"traceparent"), get_header(scope, b"tracestate"))
        token = current_request_id.set(exchange.request_id)
        scope = {**scope, EXCHANGE_KEY: exchange}
        send = _recording(send, exchange)
        try:
            await self._mcp(scope, receive, send, endpoint, exchange)
        finally:
            current_request_id.reset(token)
            self._done(exchange)

    async def _mcp(self, scope: Scope, receive: Receive, send: Send, endpoint: Endpoint, exchange: Exchange) -> None:
        if b"access_token=" in scope.get("query_string", b""):
            exchange.auth_error = "token_in_query"
            refused = AuthenticationError("invalid_request", "access tokens in the query string are not accepted")
            self._auth_failed(exchange, refused)
            await self._unauthorized(scope, send, refused)
            return
        started = time.perf_counter()
        try:
            principal = await self._auth.authenticate(get_header(scope, b"authorization"))
        except AuthenticationError as exc:
            exchange.auth_duration = time.perf_counter() - started
            exchange.auth_error = exc.error if get_header(scope, b"authorization") else "missing_token"
            self._auth_failed(exchange, exc)
            await self._unauthorized(scope, send, exc)
            return
        exchange.auth_duration = time.perf_counter() - started
        exchange.principal = principal
        bad_headers = check_headers(scope["headers"])
        if bad_headers is not None:
            await send_json(send, bad_headers.status, bad_headers.answer())
            return
        limits = self._settings.limits
        stream = scope["method"] == "GET"  # a standalone (or legacy SSE) event stream
        slot = limits.take(principal.key, stream=stream)
        if slot is None:
            await send_jsonrpc_error(
                send, 429, None, jsonrpc.BACKEND_UNAVAILABLE, limits.refusal(stream=stream), [(b"retry-after", b"1")]
            )
            return
        scope = {**scope, SLOT_KEY: slot}
        caller = Caller(principal, _bearer(get_header(scope, b"authorization")))
        try:
            await endpoint(scope, receive, send, caller)
        except AuthenticationError as exc:  # a backend credential needs a new login (upstreamInject)
            if exchange.status is not None:
                raise
            exchange.auth_error = "login_required"
            await self._unauthorized(scope, send, exc)
        except InsufficientScope as exc:  # the authorization stage: the token lacks scopes a call needs
            if exchange.status is not None:
                raise
            await self._insufficient_scope(scope, send, exc)
        finally:
            slot.release()

    def _auth_failed(self, exchange: Exchange, exc: AuthenticationError) -> None:
        """Log why a request was not authenticated, and from where: never the token (descriptions never hold one),
        at a bounded rate (a flood of bad tokens must not fill the disk)."""
        self._auth_log.log(
            logging.INFO,
            "authentication failed: %s %s from %s: %s (%s)",
            exchange.http_method,
            exchange.path,
            exchange.source or "-",
            exchange.auth_error,
            exc.description,
        )

    def _done(self, exchange: Exchange) -> None:
        """Settle what the fronts left open (from the HTTP status) and tell every observer, now or, when a call is
        answered later (legacy SSE), once it is."""
        status = exchange.status or 500
        outcome: Outcome = "success" if status < 400 else "denied" if status == 403 else "failure"
        if status >= 500:
            outcome = "error"
        for call in exchange.unsettled():
            call.settle(outcome, message=None if status < 400 else f"HTTP {status}")
        if exchange.waiting():
            exchange.report = self._report
        else:
            self._report(exchange)

    def _report(self, exchange: Exchange) -> None:
        for observer in self._settings.observers:
            try:
                observer.exchange_done(exchange)
            except Exception:  # an observer must never break a request
                logger.exception("observer %s failed", type(observer).__name__)

    def _prefixed(self, path: str) -> ASGIApp | None:
        for prefix, app in self._settings.public_prefixes.items():
            if path.startswith(prefix):
                return app
        return None

    # -- OAuth protected resource ------------------------------------------------------------------------------

    def _resource(self, scope: Scope) -> str:
        if self._settings.resource_url:
            return self._settings.resource_url
        host = get_header(scope, b"host") or "localhost"
        return f"{scope.get('scheme', 'http')}://{host}{self._settings.mcp_path}"

    def _metadata_url(self, scope: Scope) -> str:
        resource = self._resource(scope)
        return resource_metadata_url(resource, urlsplit(resource).path)

    async def _metadata(self, scope: Scope, send: Send) -> None:
        if not self._auth.authorization_servers:
            await send_json(
                send, 404, {"error": "not_found", "error_description": "no authorization server is configured"}
            )
            return
        document = protected_resource_metadata(
            self._resource(scope), list(self._auth.authorization_servers), list(self._auth.scopes)
        )
        await send_json(
            send, 200, document, [(b"cache-control", b"max-age=3600"), (b"access-control-allow-origin", b"*")]
        )

    async def _unauthorized(self, scope: Scope, send: Send, exc: AuthenticationError) -> None:
        challenge = www_authenticate(
            realm=self._auth.realm,
            resource_metadata=self._metadata_url(scope) if self._auth.authorization_servers else None,
            scope=" ".join(self._auth.scopes) or None,
            error=exc.error,
            error_description=exc.description,
        )
        body = {"error": exc.error, "error_description": exc.description}
        await send_json(send, 401, body, [(b"www-authenticate", challenge.encode("latin-1", "replace"))])

    async def _insufficient_scope(self, scope: Scope, send: Send, exc: InsufficientScope) -> None:
        """RFC 6750 section 3.1, as the MCP authorization spec's step-up asks: 403 with the scopes to ask for."""
        challenge = www_authenticate(
            resource_metadata=self._metadata_url(scope) if self._auth.authorization_servers else None,
            scope=exc.scope,
            error="insufficient_scope",
            error_description="the token lacks a scope this call needs",
        )
        await send_json(send, 403, exc.answer, [(b"www-authenticate", challenge.encode("latin-1", "replace"))])

    # -- lifespan ----------------------------------------------------------------------------------------------

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in self._settings.on_startup:
                        await hook()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in self._settings.on_shutdown:
                    try:
                        await hook()
                    except Exception:
                        logger.exception("error during shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return


def _recording(send: Send, exchange: Exchange) -> Send:
    """Note the response status and hand the request id to the client (`X-Request-Id`)."""
    request_id = exchange.request_id.encode()

    async def recording_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
            message = {**message, "headers": [*message.get("headers", ()), (b"x-request-id", request_id)]}
        await send(message)

    return recording_send


def _preflight_headers() -> list[tuple[bytes, bytes]]:
    return [
        (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
        (b"access-control-allow-headers", _CORS_ALLOW_HEADERS),
        (b"access-control-max-age", b"86400"),
    ]


def _with_cors(send: Send, origin: str) -> Send:
    allow = origin.encode("latin-1", "replace")

    async def cors_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [h for h in message.get("headers", ()) if h[0] != b"access-control-allow-origin"]
            headers.append((b"access-control-allow-origin", allow))
            headers.append((b"access-control-expose-headers", _CORS_EXPOSE_HEADERS))
            headers.append((b"vary", b"origin"))
            message = {**message, "headers": headers}
        await send(message)

    return cors_send


def _bearer(authorization: str | None) -> str | None:
    """The token of a `Bearer` Authorization header (already validated by the authenticator), else None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
