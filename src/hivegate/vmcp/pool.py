"""The virtual MCP server's backends: discovery, the shared catalog, health checks and the circuit breaker.

Each backend has one discovery session of the gateway's own (never a client's): it lists the backend's capabilities at
start-up (all backends in parallel), on `notifications/*/list_changed`, and at every health check (ToolHive's check
is the same capability listing). A healthy backend failing a check is `degraded` (still routed); failing
`unhealthyThreshold` checks in a row (or the one at start-up) it is `unhealthy`, and stays so until a check succeeds:
calls to it are refused at once with an error naming it, and lists leave it out (`bestEffort`) or fail (`fail`). With
the circuit breaker on, `failureThreshold` failed calls in a row open the circuit for `timeout`; then one trial call
decides. Only the backend failing counts (unreachable, timed out, an HTTP error, the session lost): a call that failed
for its caller alone (its credential could not be obtained, or the backend answered 401/403) counts neither way.

Client sessions open their own backend sessions (`hivegate.vmcp.session`); the pool only tells them where to go.

Over 400 lines on purpose: discovery, health checks and the circuit breaker read and write one state per backend;
split, each part would reach into the others'.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from hivegate import __version__
from hivegate.authz.entities import ActionName, Origin
from hivegate.backends.launched import Launched
from hivegate.backends.session import BackendSession
from hivegate.backends.transport import TransportFactory
from hivegate.core.jsonrpc import Message
from hivegate.errors import BackendError, ConfigError
from hivegate.observe.health import tcp_reachable
from hivegate.vmcp.catalog import BackendLists, Catalog, Owners, Route, build_catalog
from hivegate.vmcp.spec import VMCPConfig

__all__ = ["BackendPool", "BackendStatus", "CatalogListener"]

logger = logging.getLogger("hivegate.vmcp")

PROTOCOL_VERSION = "2025-06-18"  # what the discovery sessions speak
_MAX_PAGES = 100
_MAX_SEEN = 10_000  # routes remembered from client sessions' catalogs (caller-scoped backends)
_LIST_KINDS: tuple[tuple[str, str, str], ...] = (
    # (capability, method, result key)
    ("tools", "tools/list", "tools"),
    ("prompts", "prompts/list", "prompts"),
    ("resources", "resources/list", "resources"),
    ("resources", "resources/templates/list", "resourceTemplates"),
)

State = Literal["starting", "healthy", "degraded", "unhealthy"]
CatalogListener = Callable[[Catalog, Catalog], None]


@dataclass(slots=True)
class BackendStatus:
    """What the pool knows of one backend (shown by `/status` and `/api/backends/health`)."""

    name: str
    state: State = "starting"
    failures: int = 0  # failed health checks in a row
    last_error: str | None = None
    last_checked: float | None = None  # wall time
    capabilities: Mapping[str, Any] = field(default_factory=dict)
    server_info: Mapping[str, Any] = field(default_factory=dict)
    lists: BackendLists | None = None
    call_failures: int = 0  # failed calls in a row (circuit breaker)
    open_until: float = 0.0  # monotonic time the circuit closes again; 0: closed
    trial: bool = False  # a half-open trial call is in flight

    def view(self) -> dict[str, Any]:
        circuit = "closed"
        if self.open_until:
            circuit = "open" if time.monotonic() < self.open_until else "half-open"
        out: dict[str, Any] = {"name": self.name, "status": self.state, "circuit": circuit}
        if self.failures:
            out["consecutiveFailures"] = self.failures
        if self.last_checked is not None:
            out["lastChecked"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.last_checked))
        if self.last_error is not None and self.state != "healthy":
            out["error"] = _public_reason(self.last_error)
        return out


_REASONS = (  # what these unauthenticated endpoints may say of a failure: its kind, never a command, URL or host
    ("cannot start", "the backend process could not start"),
    ("exited", "the backend process exited"),
    ("timed out", "timed out"),
    ("unreachable", "unreachable"),
    ("cannot connect", "unreachable"),
    ("HTTP", "the backend answered with an HTTP error"),
)


def _public_reason(reason: str) -> str:
    return next((shown for marker, shown in _REASONS if marker in reason), "health check failed")


class BackendPool:
    def __init__(
        self,
        cfg: VMCPConfig,
        factories: Mapping[str, TransportFactory],
        launched: Mapping[str, Launched] | None = None,
        *,
        caller_scoped: frozenset[str] = frozenset(),
    ) -> None:
        """`caller_scoped`: backends whose credential depends on the caller (token exchange, upstream tokens). The
        pool cannot list them with a credential of its own: their health is whether their URL accepts connections,
        and each client session lists them with its caller's credential."""
        self._cfg = cfg
        self._factories = factories
        self._launched = dict(launched or {})
        self.caller_scoped = caller_scoped
        self._urls = {b.name: b.url for b in cfg.backends}
        self._order = [b.name for b in cfg.backends]
        self._failure = cfg.operational.failure_handling
        self.statuses: dict[str, BackendStatus] = {name: BackendStatus(name) for name in self._order}
        self._discovery: dict[str, BackendSession] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}
        self._listeners: set[CatalogListener] = set()
        self._health: asyncio.Task[None] | None = None
        self._closing = False
        self.catalog = Catalog()
        self._conflict: str | None = None  # the clash that keeps the catalog as it is, once logged
        self._everything: Catalog | None = None  # every backend's last lists, unhealthy ones too (lazily)
        self._owners = Owners()  # the backend each name was ever advertised for: names never move
        self._seen: dict[tuple[str, str], Route | None] = {}  # routes of client sessions' catalogs (None: ambiguous)
        self.on_idle_stop: Callable[[], None] | None = None  # told when a stdio process is stopped for being idle

    @property
    def names(self) -> Sequence[str]:
        return self._order

    @property
    def best_effort(self) -> bool:
        return self._failure.partial_failure_mode == "bestEffort"

    def timeout_for(self, backend: str) -> float:
        op = self._cfg.operational
        return op.per_workload_timeouts.get(backend, op.default_timeout)

    def factory(self, backend: str) -> TransportFactory:
        return self._factories[backend]

    def idle_timeout_for(self, backend: str) -> float:
        """How long a client session's process of a stdio backend may stay idle before it is stopped (0: ever)."""
        spec = self._cfg.backend(backend)
        return self._cfg.operational.stdio_for(spec)[0] if spec.kind == "stdio" else 0.0

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> list[str]:
        """Discover every backend in parallel and build the catalog; returns `name: reason` for each that failed.

        Raises `ConflictError` when `manual` conflict resolution finds a clash."""
        await asyncio.gather(*(self._check(name, startup=True) for name in self._order))
        self.catalog, self._everything = self._build(), None
        self._owners.record(self.catalog)
        self._health = asyncio.create_task(self._health_loop())
        return [f"{s.name}: {s.last_error}" for s in self.statuses.values() if s.state != "healthy"]

    async def close(self) -> None:
        self._closing = True
        tasks = [t for t in (self._health, *self._refreshing.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        sessions, self._discovery = list(self._discovery.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        await asyncio.gather(*(p.stop() for p in self._launched.values()), return_exceptions=True)

    def subscribe(self, listener: CatalogListener) -> Callable[[], None]:
        """Call `listener(old, new)` whenever the catalog changes; returns the unsubscribe function."""
        self._listeners.add(listener)
        return lambda: self._listeners.discard(listener)

    # -- routing decisions -----------------------------------------------------------------------------------------

    def refusal(self, backend: str) -> str | None:
        """Why a call to `backend` must not be tried now (None: go ahead). A half-open circuit lets one call through."""
        status = self.statuses[backend]
        if status.state == "unhealthy":
            return f"backend {backend!r} is unhealthy"  # its last error stays in the log and /status: it may name hosts
        if status.open_until:
            if time.monotonic() < status.open_until:
                return f"backend {backend!r} is unavailable: circuit open after {status.call_failures} failed calls"
            if status.trial:
                return f"backend {backend!r} is unavailable: circuit half-open, a trial call is in flight"
            status.trial = True
        return None

    def usable(self, backend: str) -> bool:
        """Whether `backend` may be asked now (its health and its circuit), without using up a half-open trial."""
        status = self.statuses[backend]
        return status.state != "unhealthy" and not (status.open_until and time.monotonic() < status.open_until)

    def call_inconclusive(self, backend: str) -> None:
        """A call that says nothing of the backend's health (its caller's credential could not be obtained or was
        refused, its caller went away): counted neither way, it only frees a half-open trial slot it held."""
        status = self.statuses.get(backend)
        if status is not None:
            status.trial = False

    def call_finished(self, backend: str, ok: bool) -> None:
        """A call the backend answered (`ok`) or failed (unreachable, timed out, an HTTP error, the session lost)."""
        status = self.statuses.get(backend)
        breaker = self._failure.circuit_breaker
        if status is None:
            return
        status.trial = False
        if ok:
            status.call_failures, status.open_until = 0, 0.0
            return
        status.call_failures += 1
        if breaker.enabled and (status.open_until or status.call_failures >= breaker.failure_threshold):
            if not status.open_until or time.monotonic() >= status.open_until:
                logger.warning("backend %r: circuit open for %.0f s after failed calls", backend, breaker.timeout)
            status.open_until = time.monotonic() + breaker.timeout

    def list_problem(self) -> str | None:
        """In `fail` mode, why a list cannot be complete now (None: it can)."""
        if self.best_effort:
            return None
        down = [s.name for s in self.statuses.values() if s.state in ("unhealthy", "starting")]
        if not down:
            return None
        return f"backend(s) {', '.join(down)} unavailable (partialFailureMode: fail)"

    def healthy_count(self) -> int:
        return sum(1 for s in self.statuses.values() if s.state in ("healthy", "degraded"))

    # -- discovery and health --------------------------------------------------------------------------------------

    def refresh_soon(self, backend: str) -> None:
        """A backend said its lists changed: list it again (once, however many sessions heard it)."""
        if self._closing or backend not in self.statuses:
            return
        task = self._refreshing.get(backend)
        if task is not None and not task.done():
            return
        self._refreshing[backend] = asyncio.create_task(self._refresh(backend))

    async def _refresh(self, backend: str) -> None:
        await self._check(backend)
        self._rebuild()

    async def _health_loop(self) -> None:
        interval = self._failure.health_check_interval
        while not self._closing:
            await asyncio.sleep(interval)
            await asyncio.gather(*(self._check(name) for name in self._order))
            self._rebuild()

    def _rebuild(self) -> None:
        try:
            catalog = self.build(self.shared_lists(), self.catalog)
        except ConfigError as exc:  # a clash that appeared at run time (manual): keep serving the last good one
            if str(exc) != self._conflict:  # once, not at every health check
                logger.error("vmcp: catalog not updated: %s", exc)
            self._conflict = str(exc)
            return
        self._conflict = None
        self._owners.record(catalog)
        old, self.catalog, self._everything = self.catalog, catalog, None
        if (old.tools, old.prompts, old.resources, old.templates) != (
            catalog.tools,
            catalog.prompts,
            catalog.resources,
            catalog.templates,
        ):
            for listener in list(self._listeners):
                listener(old, catalog)

    def _build(self) -> Catalog:
        return self.build(self.shared_lists())

    def shared_lists(self) -> dict[str, BackendLists]:
        """The backends' last lists, as the pool saw them (`bestEffort` leaves unhealthy backends out)."""
        return {
            s.name: s.lists
            for s in self.statuses.values()
            if s.lists is not None and not (self.best_effort and s.state == "unhealthy")
        }

    def with_hidden(self) -> Catalog:
        """The catalog as it would be with the backends `bestEffort` leaves out: tells a call to a tool of an
        unhealthy backend (refused, naming it) from a call to no tool at all."""
        if self._everything is None:
            lists = {s.name: s.lists for s in self.statuses.values() if s.lists is not None}
            try:
                self._everything = self.build(lists)
            except ConfigError:  # the hidden backend would clash (manual): it routes nothing
                self._everything = self.catalog
        return self._everything

    def build(self, lists: Mapping[str, BackendLists], previous: Catalog | None = None) -> Catalog:
        """The catalog of `lists` under the aggregation settings (`ConflictError` under `manual`), to replace
        `previous` if given."""
        catalog = build_catalog(lists, self._cfg.aggregation, self._order, previous, self._owners)
        if self.caller_scoped:
            self._remember(catalog)
        return catalog

    def locate(self, action: ActionName, name: str) -> Origin | None:
        """The backend an advertised tool, prompt or resource comes from, and its own name there, for Cedar
        (`MCP::"<backend>"`, `resource.backendName`): from the catalog served, else (caller-scoped backends) from
        the catalogs client sessions were shown, else from the backends `bestEffort` hides. None when unknown, or
        when client sessions were shown it from different backends."""
        route = self.catalog.route_of(action, name)
        if route is None and (action, name) in self._seen:
            route = self._seen[(action, name)]
            if route is None:
                return None
        if route is None and self.best_effort:
            route = self.with_hidden().route_of(action, name)
        return Origin(route.backend, route.name) if route is not None else None

    def _remember(self, catalog: Catalog) -> None:
        """Record the routes of a client session's catalog (a name shown from two backends is ambiguous)."""
        if len(self._seen) >= _MAX_SEEN:
            self._seen.clear()
        routes = [
            *((("call_tool", n), r) for n, r in catalog.tool_routes.items()),
            *((("get_prompt", n), r) for n, r in catalog.prompt_routes.items()),
            *((("read_resource", u), Route(b, u)) for u, b in catalog.resource_routes.items()),
            *((("read_resource", t), Route(b, t)) for t, b in catalog.template_owners.items()),
        ]
        for key, route in routes:
            self._seen[key] = route if self._seen.get(key, route) == route else None

    async def list_backend(self, session: BackendSession, capabilities: Mapping[str, Any]) -> BackendLists:
        """Everything `session`'s backend offers (a client session listing a caller-scoped backend)."""
        return await self._lists(session, capabilities)

    async def _check(self, name: str, *, startup: bool = False) -> None:
        """List the backend's capabilities through its discovery session; update its health."""
        status = self.statuses[name]
        timeout = self._failure.health_check_timeout or self.timeout_for(name)
        try:
            process = self._launched.get(name)
            if process is not None:
                await process.ensure_running(max(timeout, 30.0) if startup else timeout)
            if name in self.caller_scoped:
                url = process.url if process is not None else self._urls.get(name)
                parts = urlsplit(url or "")
                port = parts.port or (443 if parts.scheme == "https" else 80)
                problem = await asyncio.wait_for(tcp_reachable(parts.hostname or "", port), timeout)
                if problem is not None:
                    raise BackendError(problem)
            else:
                session = await asyncio.wait_for(self._session(name), timeout)
                status.lists = await asyncio.wait_for(self._lists(session, status.capabilities), timeout)
        except (BackendError, TimeoutError, OSError) as exc:
            reason = str(exc) or ("timed out" if isinstance(exc, TimeoutError) else type(exc).__name__)
            self._failed(status, reason, startup=startup)
            return
        if status.state not in ("healthy", "starting"):
            logger.info("backend %r is healthy again", name)
        status.state, status.failures, status.last_error = "healthy", 0, None
        status.last_checked = time.time()

    def _failed(self, status: BackendStatus, reason: str, *, startup: bool) -> None:
        """A failed check. `degraded` (still routed: it answered lately, its checks fail) is reached from `healthy`
        alone; `unhealthy` (not routed) is left only by a check that succeeds, never by one more failure."""
        status.failures += 1
        status.last_error = reason[:300]
        status.last_checked = time.time()
        threshold = self._failure.unhealthy_threshold
        before = status.state
        down = startup or before in ("unhealthy", "starting") or status.failures >= threshold
        status.state = "unhealthy" if down else "degraded"
        if status.state != before:
            logger.warning("backend %r is %s: %s", status.name, status.state, status.last_error)

    async def _session(self, name: str) -> BackendSession:
        session = self._discovery.get(name)
        if session is not None and session.alive:
            return session
        session = BackendSession(self._factories[name], name=name, request_timeout=self.timeout_for(name))
        try:
            await session.start()
            answer = await session.handshake(
                {
                    "protocolVersion": PROTOCOL_VERSION,
                    "capabilities": {},
                    "clientInfo": {"name": f"hivegate-vmcp/{self._cfg.name}", "version": __version__},
                }
            )
        except BaseException:
            with contextlib.suppress(Exception):
                await session.close()
            raise
        result = answer.get("result")
        result = result if isinstance(result, dict) else {}
        status = self.statuses[name]
        capabilities = result.get("capabilities")
        status.capabilities = capabilities if isinstance(capabilities, dict) else {}
        info = result.get("serverInfo")
        status.server_info = info if isinstance(info, dict) else {}
        session.attach_stream(_ChangeWatch(self, name))
        self._discovery[name] = session
        return session

    async def _lists(self, session: BackendSession, capabilities: Mapping[str, Any]) -> BackendLists:
        kinds = [(method, key) for cap, method, key in _LIST_KINDS if cap in capabilities]
        found = await asyncio.gather(*(_list_all(session, method, key, self.timeout_for(session.name))
                                       for method, key in kinds))  # fmt: skip
        lists = dict(zip((key for _, key in kinds), found, strict=True))
        return BackendLists(
            tools=lists.get("tools", ()),
            prompts=lists.get("prompts", ()),
            resources=lists.get("resources", ()),
            templates=lists.get("resourceTemplates", ()),
        )


async def _list_all(session: BackendSession, method: str, key: str, timeout: float) -> tuple[Mapping[str, Any], ...]:
    """Every page of one list."""
    items: list[Mapping[str, Any]] = []
    params: dict[str, Any] = {}
    for _ in range(_MAX_PAGES):
        answer = await session.ask(method, params, timeout)
        result = _result(answer, method)
        page = result.get(key)
        if isinstance(page, list):
            items.extend(i for i in page if isinstance(i, dict))
        cursor = result.get("nextCursor")
        if not isinstance(cursor, str) or not cursor:
            break
        params = {"cursor": cursor}
    return tuple(items)


def _result(answer: Message, method: str) -> Mapping[str, Any]:
    error = answer.get("error")
    if error is not None:
        text = error.get("message") if isinstance(error, dict) else error
        raise BackendError(f"{method} failed: {text}")
    result = answer.get("result")
    if not isinstance(result, dict):
        raise BackendError(f"{method}: the answer has no result")
    return result


class _ChangeWatch:
    """The discovery session's stream: `notifications/*/list_changed` triggers a refresh; the rest is dropped."""

    streaming = True
    closed = False

    def __init__(self, pool: BackendPool, name: str) -> None:
        self._pool = pool
        self._name = name

    def deliver(self, message: Message) -> None:
        method = message.get("method")
        if isinstance(method, str) and method.endswith("/list_changed"):
            self._pool.refresh_soon(self._name)

    def end(self) -> None:
        return None
