"""One client session of the virtual MCP server, seen by the gateway as the transport of an ordinary MCP server.

The front end (`SessionFrontend`, with authentication, Cedar, audit, metrics) drives a `BackendSession` over a
`VirtualTransport` exactly as it drives one over a stdio child, so every guarantee of `hivegate run` holds here too.
The transport answers `initialize`, `ping` and the lists itself (from the pool's catalog) and routes the rest:

- `tools/call` and `prompts/get` by advertised name, `resources/read`/`subscribe` by URI, `completion/complete` by
  its reference, to the owning backend under that backend's own name;
- a backend with its own `oidcConfig`/`authzConfig` (an `MCPServer`'s) is first checked as its own proxy would
  (`ownproxy`): the request, in that backend's names, and what it contributes to lists;
- each backend session is opened on first use with the client's own `initialize` parameters (and the caller of the
  message that needed it, whose credential a remote backend may need), then reused for the life of the client
  session (never one per call), and closed with it; each message goes on with the caller it is for;
- what a backend sends back (progress, logs, server-to-client requests) goes to this client session only; the ids of
  a backend's requests are relabelled so two backends can never collide, and the client's answers go back to the
  backend that asked; `list_changed` from a backend refreshes the shared catalog, and clients hear
  `notifications/tools/list_changed` when the catalog changes.

Over 400 lines on purpose: routing in both directions (client to backends, backends to the client) shares one
id-relabelling state, whose invariants are easier to keep in one place.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from hivegate import __version__
from hivegate.backends.session import BackendSession
from hivegate.backends.transport import MessageHandler
from hivegate.core.jsonrpc import (
    BACKEND_UNAVAILABLE,
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    Message,
    RequestId,
    error_response,
)
from hivegate.core.singleflight import SingleFlight
from hivegate.errors import AuthenticationError, BackendError, CredentialRefused
from hivegate.outgoing.caller import Caller
from hivegate.outgoing.credentials import OutgoingAuthError
from hivegate.vmcp.catalog import BackendLists, Catalog
from hivegate.vmcp.ownproxy import OwnProxy, visible
from hivegate.vmcp.pool import PROTOCOL_VERSION, BackendPool

__all__ = ["VirtualTransport"]

logger = logging.getLogger("hivegate.vmcp")

SUPPORTED_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
_LISTS: Mapping[str, tuple[str, Callable[[Catalog], tuple[Mapping[str, Any], ...]]]] = {
    "tools/list": ("tools", lambda c: c.tools),
    "prompts/list": ("prompts", lambda c: c.prompts),
    "resources/list": ("resources", lambda c: c.resources),
    "resources/templates/list": ("resourceTemplates", lambda c: c.templates),
}
_RELIST = 30.0  # seconds before a caller-scoped backend that could not be listed for this session is tried again
_BY_URI = frozenset({"resources/read", "resources/subscribe", "resources/unsubscribe"})


class VirtualTransport:
    def __init__(self, pool: BackendPool, *, name: str, proxies: Mapping[str, OwnProxy] | None = None) -> None:
        self._pool = pool
        self._name = name
        self._proxies = proxies or {}  # backends with their own proxy's checks
        self._on_message: MessageHandler | None = None
        self._closed = asyncio.Event()
        self._init: dict[str, Any] | None = None  # the client's initialize params
        self._backends: dict[str, BackendSession] = {}
        self._opening: SingleFlight[str, BackendSession] = SingleFlight()
        self._routes: dict[RequestId, str] = {}  # in-flight request id → backend
        self._relabel = itertools.count(1)
        self._asked: dict[str, tuple[str, RequestId]] = {}  # our id for a backend's request → (backend, its id)
        self._asked_back: dict[tuple[str, RequestId], str] = {}
        self._log_level: str | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._capabilities: dict[str, Mapping[str, Any]] = {}  # per opened backend, from its initialize answer
        self._own_lists: dict[str, BackendLists] = {}  # caller-scoped backends, as listed for this caller
        self._own_catalog: Catalog | None = None
        self._own_failed: dict[str, float] = {}  # caller-scoped backends that could not be listed, and when

    # -- Transport -------------------------------------------------------------------------------------------------

    async def open(self, on_message: MessageHandler) -> None:
        self._on_message = on_message
        self._unsubscribe = self._pool.subscribe(self._catalog_changed)

    async def wait_closed(self) -> str:
        await self._closed.wait()
        return "session closed"

    async def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._opening.cancel()
        sessions, self._backends = list(self._backends.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        """Answer or route one message of the client's; `caller` goes on to the backend sessions it reaches."""
        if self._closed.is_set():
            raise BackendError(f"virtual MCP server {self._name!r}: session closed")
        method = message.get("method")
        if method is None:
            await self._client_answer(message, caller)
        elif "id" in message:
            await self._request(message, caller)
        else:
            await self._notification(message, caller)

    # -- client requests -------------------------------------------------------------------------------------------

    async def _request(self, message: Message, caller: Caller | None) -> None:
        method: str = message["method"]
        request_id: RequestId = message["id"]
        params = message.get("params")
        params = params if isinstance(params, dict) else {}
        if method == "initialize":
            self._init = dict(params)
            self._reply(request_id, self._initialize_result(params))
        elif method == "ping":
            self._reply(request_id, {})
        elif method in _LISTS:
            await self._list(request_id, method, caller)
        elif method == "logging/setLevel":
            level = params.get("level")
            self._log_level = level if isinstance(level, str) else None
            for backend in list(self._backends):
                self._spawn(self._quiet_ask(backend, method, params))
            self._reply(request_id, {})
        else:
            try:
                backend, forwarded = self._target(await self._catalog(caller), method, params)
            except _NoRoute as miss:
                self._error(request_id, *self._miss(miss, method, params))
                return
            await self._forward(backend, {**message, "params": forwarded}, caller)

    def _target(self, catalog: Catalog, method: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """(backend, params in the backend's own names); `_NoRoute` when the request goes nowhere."""
        if method in ("tools/call", "prompts/get"):
            routes = catalog.tool_routes if method == "tools/call" else catalog.prompt_routes
            name = params.get("name")
            route = routes.get(name) if isinstance(name, str) else None
            if route is None:
                raise _NoRoute(f"Unknown {'tool' if method == 'tools/call' else 'prompt'}: {name}")
            return route.backend, {**params, "name": route.name}
        if method in _BY_URI:
            return _by_uri(catalog, params.get("uri")), params
        if method == "completion/complete":
            ref = params.get("ref")
            ref = ref if isinstance(ref, dict) else {}
            if ref.get("type") == "ref/prompt":
                route = catalog.prompt_routes.get(str(ref.get("name")))
                if route is None:
                    raise _NoRoute(f"Unknown prompt: {ref.get('name')}")
                return route.backend, {**params, "ref": {**ref, "name": route.name}}
            return _by_uri(catalog, ref.get("uri")), params
        raise _NoRoute(f"Method not found: {method}", METHOD_NOT_FOUND)

    def _miss(self, miss: _NoRoute, method: str, params: dict[str, Any]) -> tuple[int, str]:
        """The error for a request routed nowhere: naming the backend when an unhealthy one left out under
        `bestEffort` offers what was asked for. Nothing more than its name: its last error may show internal
        addresses; and only side-effect-free checks, since this call never reaches it."""
        if self._pool.best_effort and miss.code != METHOD_NOT_FOUND:
            try:
                backend, _ = self._target(self._pool.with_hidden(), method, params)
            except _NoRoute:
                pass
            else:
                if not self._pool.usable(backend):
                    return BACKEND_UNAVAILABLE, f"backend {backend!r} is unavailable"
        return miss.code, str(miss)

    async def _forward(self, backend: str, message: Message, caller: Caller | None) -> None:
        request_id: RequestId = message["id"]
        proxy = self._proxies.get(backend)
        if proxy is not None and not await self._admitted(proxy, message, caller):
            return
        refused = self._pool.refusal(backend)
        if refused is not None:
            self._error(request_id, BACKEND_UNAVAILABLE, refused)
            return
        try:
            session = await self._session(backend, caller)
        except (BackendError, TimeoutError, OSError) as exc:
            self._failed(backend, exc)
            reason = str(exc) or type(exc).__name__
            self._error(request_id, BACKEND_UNAVAILABLE, f"backend {backend!r} is unavailable: {reason}")
            return
        except BaseException:  # e.g. the caller must log in again: the gateway answers 401
            self._pool.call_inconclusive(backend)
            raise
        self._routes[request_id] = backend
        try:
            # errors while it goes out are raised here, not answered as a backend's: only here is it known whether
            # the backend failed or this caller's credential did
            await session.request(message, _Relay(self, backend), raise_errors=True, caller=caller)
        except BackendError as exc:
            self._routes.pop(request_id, None)
            self._failed(backend, exc)
            self._error(request_id, BACKEND_UNAVAILABLE, str(exc))
        except BaseException:
            self._routes.pop(request_id, None)
            self._pool.call_inconclusive(backend)
            raise

    async def _admitted(self, proxy: OwnProxy, message: Message, caller: Caller | None) -> bool:
        """Whether the backend's own proxy lets `message` through; if not, the client has its refusal."""
        try:
            denied = await proxy.admit(message, caller, lambda: self._lists_of(proxy.name).tools)
        except (CredentialRefused, OutgoingAuthError) as exc:
            text = str(exc) if isinstance(exc, CredentialRefused) else f"backend {proxy.name!r}: {exc}"
            self._error(message["id"], BACKEND_UNAVAILABLE, text)
            return False
        if denied is not None:
            self._emit(denied)
        return denied is None

    def _lists_of(self, backend: str) -> BackendLists:
        return self._own_lists.get(backend) or self._pool.shared_lists().get(backend) or BackendLists()

    def _failed(self, backend: str, exc: BaseException) -> None:
        """A call that did not reach `backend`: a failure of the backend's (circuit breaker), unless it failed for
        this caller alone (a credential that could not be obtained or that the backend refused)."""
        if isinstance(exc, (OutgoingAuthError, CredentialRefused)):
            self._pool.call_inconclusive(backend)
        else:
            self._pool.call_finished(backend, ok=False)

    async def _list(self, request_id: RequestId, method: str, caller: Caller | None) -> None:
        problem = self._pool.list_problem()
        if problem is None:
            try:
                catalog = await self._catalog(caller)
            except BackendError as exc:
                problem = str(exc)
        if problem is not None:
            self._error(request_id, BACKEND_UNAVAILABLE, problem)
            return
        key, pick = _LISTS[method]
        items = list(pick(catalog))
        if self._proxies:
            items = await visible(self._proxies, method, items, catalog, caller)
        self._reply(request_id, {key: items})

    async def _catalog(self, caller: Caller | None) -> Catalog:
        """What this session sees: the pool's catalog, plus the caller-scoped backends as `caller` lists them."""
        if not self._pool.caller_scoped:
            return self._pool.catalog
        if self._own_catalog is not None:
            return self._own_catalog
        now = time.monotonic()
        missing = [
            b
            for b in self._pool.caller_scoped
            if b not in self._own_lists and self._pool.usable(b) and now - self._own_failed.get(b, -_RELIST) >= _RELIST
        ]
        found = await asyncio.gather(*(self._list_backend(b, caller) for b in missing), return_exceptions=True)
        for backend, lists in zip(missing, found, strict=True):
            if isinstance(lists, AuthenticationError):
                raise lists  # the caller must log in again
            if isinstance(lists, BaseException):
                reason = str(lists) or type(lists).__name__
                if not self._pool.best_effort:
                    raise BackendError(f"backend {backend!r} could not be listed for this caller: {reason}")
                logger.warning("backend %r could not be listed for this caller: %s", backend, reason)
                self._own_failed[backend] = now  # not again on every request: after a pause
                continue
            self._own_lists[backend] = lists
        catalog = self._pool.build({**self._pool.shared_lists(), **self._own_lists})
        if len(self._own_lists) == len(self._pool.caller_scoped):
            self._own_catalog = catalog  # complete: keep it until something changes
        return catalog

    async def _list_backend(self, backend: str, caller: Caller | None) -> BackendLists:
        session = await self._session(backend, caller)
        return await self._pool.list_backend(session, self._capabilities.get(backend, {}))

    def _initialize_result(self, params: Mapping[str, Any]) -> dict[str, Any]:
        asked = params.get("protocolVersion")
        version = asked if asked in SUPPORTED_VERSIONS else PROTOCOL_VERSION
        offered: dict[str, Any] = {}
        for status in self._pool.statuses.values():
            for key, value in status.capabilities.items():
                if key in ("tools", "prompts", "resources", "logging", "completions"):
                    merged = offered.setdefault(key, {})
                    if key == "resources" and isinstance(value, dict) and value.get("subscribe"):
                        merged["subscribe"] = True
        offered.setdefault("tools", {})
        for key in ("tools", "prompts", "resources"):
            if key in offered:
                offered[key]["listChanged"] = True
        return {
            "protocolVersion": version,
            "capabilities": offered,
            "serverInfo": {"name": self._name, "version": __version__},
        }

    # -- client notifications and answers --------------------------------------------------------------------------

    async def _notification(self, message: Message, caller: Caller | None) -> None:
        method = message["method"]
        if method == "notifications/initialized":
            return  # each backend session got its own when it opened
        if method == "notifications/cancelled":
            params = message.get("params")
            request_id = params.get("requestId") if isinstance(params, dict) else None
            backend = self._routes.pop(request_id, None) if request_id is not None else None
            if backend is not None:
                self._pool.call_inconclusive(backend)  # no answer will come: it cannot decide a half-open trial
            session = self._backends.get(backend) if backend is not None else None
            if session is not None:
                with contextlib.suppress(BackendError):
                    await session.send(message, caller)
            return
        for session in list(self._backends.values()):  # roots/list_changed and the like concern every backend
            with contextlib.suppress(BackendError):
                await session.send(message, caller)

    async def _client_answer(self, message: Message, caller: Caller | None) -> None:
        """The client's answer to a backend's request (sampling, elicitation, roots): back to that backend."""
        ours = message.get("id")
        found = self._asked.pop(ours, None) if isinstance(ours, str) else None
        if found is None:
            return
        backend, theirs = found
        self._asked_back.pop(found, None)
        session = self._backends.get(backend)
        if session is not None:
            with contextlib.suppress(BackendError):
                await session.send({**message, "id": theirs}, caller)

    # -- backend sessions ------------------------------------------------------------------------------------------

    async def _session(self, backend: str, caller: Caller | None) -> BackendSession:
        """This client session's session with `backend`, opened for `caller` if there is none yet (concurrent
        requests share one opening, for the caller of the first)."""
        session = self._backends.get(backend)
        if session is not None:
            return session
        return await self._opening.run(backend, lambda: self._open(backend, caller))

    async def _open(self, backend: str, caller: Caller | None) -> BackendSession:
        timeout = self._pool.timeout_for(backend)
        session = BackendSession(self._pool.factory(backend), name=backend, request_timeout=timeout,
                                 idle_timeout=self._pool.idle_timeout_for(backend),
                                 on_idle_stop=self._pool.on_idle_stop)  # fmt: skip
        try:
            await asyncio.wait_for(session.start(), timeout)
            session.attach_stream(_Relay(self, backend))
            params = self._init or {
                "protocolVersion": PROTOCOL_VERSION,
                "capabilities": {},
                "clientInfo": {"name": f"hivegate-vmcp/{self._name}", "version": __version__},
            }
            answer = await asyncio.wait_for(session.handshake(params, caller=caller), timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                await session.close()
            raise
        if self._closed.is_set():
            await session.close()
            raise BackendError("session closed")
        self._backends[backend] = session
        result = answer.get("result")
        capabilities = result.get("capabilities") if isinstance(result, dict) else None
        self._capabilities[backend] = capabilities if isinstance(capabilities, dict) else {}
        if self._log_level is not None:
            self._spawn(self._quiet_ask(backend, "logging/setLevel", {"level": self._log_level}))
        return session

    async def _quiet_ask(self, backend: str, method: str, params: Any) -> None:
        """A request of the gateway's own to an open backend session (for no caller: a remote backend gets the
        session's last credential); its failure is no one's concern."""
        session = self._backends.get(backend)
        if session is not None:
            with contextlib.suppress(BackendError, TimeoutError):
                await session.ask(method, params, self._pool.timeout_for(backend))

    # -- what backends send ----------------------------------------------------------------------------------------

    def from_backend(self, backend: str, message: Message) -> None:
        method = message.get("method")
        if method is None:  # the answer to a forwarded request (its id is already the client's)
            request_id = message.get("id")
            if self._routes.get(request_id) == backend:  # type: ignore[arg-type]
                del self._routes[request_id]  # type: ignore[arg-type]
            error = message.get("error")
            if self._closed.is_set():  # failed because this session closed under it: not the backend's doing
                self._pool.call_inconclusive(backend)
                return
            failed = isinstance(error, dict) and error.get("code") == BACKEND_UNAVAILABLE
            self._pool.call_finished(backend, ok=not failed)
            self._emit(message)
            return
        if isinstance(method, str) and method.endswith("/list_changed"):
            if backend in self._pool.caller_scoped:  # listed per caller: list it again for this session
                self._own_lists.pop(backend, None)
                self._own_catalog = None
                self._emit(message)
                return
            self._pool.refresh_soon(backend)  # clients hear of it when the catalog has changed
            return
        if "id" in message:  # a server-to-client request: our own id, so backends never collide
            ours = f"{backend}#{next(self._relabel)}"
            self._asked[ours] = (backend, message["id"])
            self._asked_back[(backend, message["id"])] = ours
            self._emit({**message, "id": ours})
            return
        if method == "notifications/cancelled":
            params = message.get("params")
            theirs = params.get("requestId") if isinstance(params, dict) else None
            ours_id = self._asked_back.pop((backend, theirs), None) if theirs is not None else None
            if ours_id is None:
                return
            self._asked.pop(ours_id, None)
            self._emit({**message, "params": {**params, "requestId": ours_id}})  # type: ignore[dict-item]
            return
        self._emit(message)

    def _catalog_changed(self, old: Catalog, new: Catalog) -> None:
        self._own_catalog = None
        for method, key in (
            ("notifications/tools/list_changed", "tools"),
            ("notifications/prompts/list_changed", "prompts"),
            ("notifications/resources/list_changed", "resources"),
        ):
            if getattr(old, key) != getattr(new, key):
                self._emit({"jsonrpc": "2.0", "method": method})

    # -- plumbing --------------------------------------------------------------------------------------------------

    def _emit(self, message: Message) -> None:
        if self._on_message is not None and not self._closed.is_set():
            self._on_message(message)

    def _reply(self, request_id: RequestId, result: Any) -> None:
        self._emit({"jsonrpc": "2.0", "id": request_id, "result": result})

    def _error(self, request_id: RequestId, code: int, text: str) -> None:
        self._emit(error_response(request_id, code, text))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        _BACKGROUND.add(task)
        task.add_done_callback(_BACKGROUND.discard)


_BACKGROUND: set[asyncio.Future[Any]] = set()


class _NoRoute(Exception):
    def __init__(self, text: str, code: int = INVALID_PARAMS) -> None:
        super().__init__(text)
        self.code = code


def _by_uri(catalog: Catalog, uri: object) -> str:
    backend = catalog.resource_backend(uri) if isinstance(uri, str) else None
    if backend is None:
        raise _NoRoute(f"Unknown resource: {uri}")
    return backend


class _Relay:
    """A backend session's sink for everything it sends this client session (answers, progress, its stream)."""

    streaming = True
    closed = False

    def __init__(self, owner: VirtualTransport, backend: str) -> None:
        self._owner = owner
        self._backend = backend

    def deliver(self, message: Message) -> None:
        self._owner.from_backend(self._backend, message)

    def end(self) -> None:
        return None
