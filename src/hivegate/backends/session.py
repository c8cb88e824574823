"""One MCP session with a backend: request-id mapping, message routing, timeouts and restart with backoff.

Every client session of a stdio (or legacy SSE) backend gets its own `BackendSession` and its own transport, so
state never leaks between callers and every message the backend sends belongs to exactly one client.

Routing of what the backend sends:
- a response goes to the sink of the request it answers (ids are rewritten on the way in and restored on the way out,
  so two in-flight requests can never collide, and the gateway can make requests of its own);
- `notifications/progress` goes to the request that owns the progress token;
- any other notification or server-to-client request goes to the session stream (the client's GET stream, or the
  oldest in-flight request that can stream), or waits in a small buffer until one opens.

When the transport dies, in-flight requests get a JSON-RPC error at once, and the transport is re-opened with
exponential backoff; the client's `initialize` is replayed so the session carries on, and so are the last
`logging/setLevel` and the resource subscriptions (`Replayed`).

With an `idle_timeout`, a session that has been idle that long (no request in flight, none of the gateway's own, no
server-to-client request waiting for the client's answer, no resource subscription) stops its transport (for stdio:
the process); the session's next message starts it again, with the same replay, so the client notices only the
latency. A client's standalone stream does not keep the process: it waits for the next message like the client.

Each message from a client goes to the transport with the caller it is for (`Caller`: whose credential a remote
backend gets); the messages the gateway sends on its own (cancellations, requests of its own) go with none, and a
replayed `initialize` with the caller of the `initialize` it replays.

Over 400 lines on purpose: request-id mapping, routing, timeouts and restart are one state machine; split, its
invariants (every request answered exactly once) would span modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from hivegate.backends.replayed import Replayed
from hivegate.backends.transport import Transport, TransportFactory
from hivegate.core.jsonrpc import BACKEND_UNAVAILABLE, INTERNAL_ERROR, Message, RequestId, error_response
from hivegate.errors import BackendError, SessionGone
from hivegate.outgoing.caller import Caller

__all__ = ["BackendSession", "Sink"]

logger = logging.getLogger("hivegate.backend")

_BUFFER_LIMIT = 256


class Sink(Protocol):
    """Where messages for one request (or one stream) go.

    `streaming` sinks can carry notifications; a `closed` sink's client has gone away; `end()` says no answer will
    come (the client cancelled the request).
    """

    closed: bool

    @property
    def streaming(self) -> bool: ...

    def deliver(self, message: Message) -> None: ...

    def end(self) -> None: ...


@dataclass(slots=True)
class _Pending:
    original_id: RequestId
    sink: Sink
    method: str
    progress_token: Any = None
    params: Any = None  # what the backend is told to remember (`Replayed`) once it answers without an error
    timer: asyncio.TimerHandle | None = None
    transform: Callable[[Message], Message] | None = None
    # being sent (or waiting to be sent again on a new session): the end of the session it goes out on does not
    # fail it at once, but once its send returns (`lost`), so a request that must be sent again is answered only once
    sending: bool = False
    lost: str | None = None  # why the session ended while it was being sent


class BackendSession:
    def __init__(
        self,
        factory: TransportFactory,
        *,
        name: str,
        request_timeout: float = 120.0,
        init_timeout: float = 60.0,
        max_backoff: float = 30.0,
        on_restart: Callable[[], None] | None = None,
        output_hint: str | None = None,
        idle_timeout: float = 0.0,
        on_idle_stop: Callable[[], None] | None = None,
    ) -> None:
        """`on_restart` is told each time the backend went away and was started again (a metric counts them);
        `output_hint` is where its output can be read (`hivegate logs NAME`), said when it goes away;
        `idle_timeout` (seconds, 0: never) stops an idle transport until the next message, and `on_idle_stop` is told
        each time it does."""
        self.name = name
        self._idle_timeout = idle_timeout
        self._on_idle_stop = on_idle_stop
        self._parked = False  # stopped for being idle: the next message starts it again
        self._wake = asyncio.Event()
        self._idle_watch: asyncio.Task[None] | None = None
        self._last_activity = time.monotonic()
        self._asked: set[RequestId] = set()  # the backend's requests the client has not answered yet
        self._replayed = Replayed()
        self._on_restart = on_restart
        self._gone_hint = f" (its output: `{output_hint}`)" if output_hint else ""
        self._factory = factory
        self._request_timeout = request_timeout
        self._init_timeout = init_timeout
        self._max_backoff = max_backoff
        self._transport: Transport | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._by_original: dict[RequestId, int] = {}
        self._progress: dict[Any, int] = {}
        self._internal: dict[int, asyncio.Future[Message]] = {}
        self._stream: Sink | None = None
        self._buffer: deque[Message] = deque(maxlen=_BUFFER_LIMIT)
        self._ready = asyncio.Event()
        self._closing = False
        self._closed = asyncio.Event()  # set with `_closing`: wakes whoever waits for the backend to be ready
        self._supervisor: asyncio.Task[None] | None = None
        self._init_params: Any = None
        self._init_caller: Caller | None = None  # who the initialize in `_init_params` was for
        self._background: set[asyncio.Task[None]] = set()
        self._buffer_warned = False
        self.last_used = time.monotonic()
        self.restarts = 0

    @property
    def ready(self) -> bool:
        """False while the backend is being restarted."""
        return self._ready.is_set()

    @property
    def busy(self) -> bool:
        """True while a request is in flight or a client stream is attached (never idle-expired then)."""
        return bool(self._pending) or self._stream is not None

    @property
    def parked(self) -> bool:
        """True while the transport is stopped for being idle (it starts again on the next message)."""
        return self._parked

    def _idle(self) -> bool:
        """Nothing needs the transport now: it may be stopped."""
        if self._closing or self._parked or not self._ready.is_set():
            return False
        return not (self._pending or self._internal or self._asked or self._replayed.subscriptions)

    # -- lifecycle -------------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the transport; raises `BackendError` if it cannot start."""
        transport = self._factory()
        await transport.open(self._on_message)
        self._transport = transport
        self._ready.set()
        self._last_activity = time.monotonic()
        self._supervisor = asyncio.create_task(self._supervise())
        if self._idle_timeout > 0:
            self._idle_watch = asyncio.create_task(self._watch_idle())

    async def close(self) -> None:
        self._closing = True
        self._closed.set()
        self._fail_all("session closed")
        for task in (self._idle_watch, self._supervisor):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._transport is not None:
            await self._transport.close()

    @property
    def alive(self) -> bool:
        return not self._closing

    async def _supervise(self) -> None:
        delay = 0.5
        up_since = time.monotonic()
        while not self._closing:
            assert self._transport is not None
            reason = await self._transport.wait_closed()
            if self._closing:
                return
            if self._parked:
                if not await self._unpark():
                    return
                if self._ready.is_set():
                    continue
                reason = "it could not be started again"
            self._ready.clear()
            logger.warning("backend %r went away (%s); restarting%s", self.name, reason, self._gone_hint)
            self._fail_all(f"backend {self.name!r} went away: {reason}")
            self._asked.clear()
            await self._transport.close()
            if time.monotonic() - up_since > self._max_backoff:
                delay = 0.5  # it ran fine for a while: this is a new incident, not a crash loop
            while not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)
                if await self._restart():
                    break
            self.restarts += 1
            if self._on_restart is not None:
                self._on_restart()
            up_since = time.monotonic()
            self._ready.set()
            logger.info("backend %r restarted", self.name)

    async def _watch_idle(self) -> None:
        """Stop the transport once the session has been idle for `idle_timeout` (activity moves the deadline)."""
        while not self._closing:
            delay = self._last_activity + self._idle_timeout - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            if not self._idle():
                if not self._ready.is_set():
                    await self._set_or_closed(self._ready)
                self._last_activity = time.monotonic()  # busy now: look again one timeout after it was last seen busy
                continue
            self._parked = True
            self._ready.clear()
            self._wake.clear()
            transport = self._transport
            logger.info("backend %r: stopped after %g s idle; it starts again on the next message", self.name,
                        self._idle_timeout)  # fmt: skip
            if self._on_idle_stop is not None:
                self._on_idle_stop()
            if transport is not None:
                await transport.close()
            await self._set_or_closed(self._ready)
            self._last_activity = time.monotonic()

    async def _unpark(self) -> bool:
        """Wait for the next message of a parked session, then start the transport again (replaying `initialize`).
        False when the session closed meanwhile; otherwise ready, or not ready when the start failed (the caller
        then retries with backoff, as for a crash)."""
        await self._set_or_closed(self._wake)
        if self._closing:
            return False
        self._asked.clear()  # the process that asked is gone
        self._parked = False
        if await self._restart():
            self._last_activity = time.monotonic()
            self._ready.set()
            logger.info("backend %r started again for the session's next message", self.name)
        return True

    async def _restart(self) -> bool:
        """Open a new transport and replay `initialize`; False (logged) when that fails."""
        try:
            self._transport = self._factory()
            await self._transport.open(self._on_message)
            replay = asyncio.ensure_future(self._replay_initialize())
            closed = asyncio.ensure_future(self._transport.wait_closed())
            try:
                await asyncio.wait({replay, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
            if not replay.done():
                replay.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await replay
                raise BackendError(f"it went away again ({closed.result() if closed.done() else 'closed'})")
            replay.result()
            return True
        except Exception as exc:  # any failure here is one failed attempt, never the end of supervision
            logger.warning("backend %r restart failed: %s", self.name, str(exc) or repr(exc))
            self._fail_internal(str(exc) or repr(exc))
            if self._transport is not None:
                with contextlib.suppress(Exception):
                    await self._transport.close()
            return False

    async def _replay_initialize(self) -> None:
        if self._init_params is None:
            return
        caller = self._init_caller
        response = await self._internal_request("initialize", self._init_params, self._init_timeout, caller)
        _check_initialized(response)
        await self._send({"jsonrpc": "2.0", "method": "notifications/initialized"}, caller)
        for method, params in self._replayed.requests():
            answer = await self._internal_request(method, params, self._init_timeout, caller)
            if "error" in answer:
                logger.warning("backend %r: replaying %s failed: %s", self.name, method, answer["error"])

    async def handshake(self, params: Any, caller: Caller | None = None) -> Message:
        """The gateway's own `initialize` (+ `notifications/initialized`) for `caller`, replayed (for the same
        caller) after a restart; returns the backend's answer. Raises `BackendError` (an error answer too) or
        `TimeoutError`."""
        self._init_params, self._init_caller = params, caller
        await self._wait_ready()
        response = await self._internal_request("initialize", params, self._init_timeout, caller)
        _check_initialized(response)
        await self._send({"jsonrpc": "2.0", "method": "notifications/initialized"}, caller)
        return response

    async def ask(self, method: str, params: Any, timeout: float) -> Message:
        """A request of the gateway's own, for no caller (its answer never reaches a client); raises `BackendError` or
        `TimeoutError`."""
        await self._wait_ready()
        return await self._internal_request(method, params, timeout)

    async def _internal_request(
        self, method: str, params: Any, timeout: float, caller: Caller | None = None
    ) -> Message:
        gid = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._internal[gid] = future
        self._last_activity = time.monotonic()
        try:
            await self._send({"jsonrpc": "2.0", "id": gid, "method": method, "params": params}, caller)
            answer = await asyncio.wait_for(future, timeout)
            if "error" not in answer:
                self._replayed.record(method, params)
            return answer
        finally:
            self._internal.pop(gid, None)

    # -- client to backend -----------------------------------------------------------------------------------------

    async def request(
        self,
        message: Message,
        sink: Sink,
        *,
        transform: Callable[[Message], Message] | None = None,
        raise_errors: bool = False,
        caller: Caller | None = None,
    ) -> None:
        """Forward a client request for `caller`; its response (and related notifications) will be delivered to
        `sink`.

        `transform` rewrites the backend's response before delivery (list filtering); if it fails, the client gets
        an internal error instead of the unfiltered response.

        A `BackendError` raised while the request goes out (no credential for this caller, the backend refused it
        or cannot be reached) is answered to `sink` as a JSON-RPC error; with `raise_errors` it is raised instead,
        for the caller to tell whose fault it was. Either way the request is answered once: what comes after it went
        out (a timeout, the session ending under it) always goes to `sink`.
        """
        self.last_used = time.monotonic()
        await self._wait_ready()
        gid = next(self._ids)
        method = message.get("method", "")
        params = message.get("params")
        token = None
        if isinstance(params, dict):
            meta = params.get("_meta")
            if isinstance(meta, dict):
                token = meta.get("progressToken")
        if method == "initialize":
            self._init_params, self._init_caller = params, caller
        self._last_activity = time.monotonic()
        pending = _Pending(message["id"], sink, method, token, params, transform=transform)
        self._pending[gid] = pending
        self._by_original[pending.original_id] = gid
        if token is not None:
            self._progress[token] = gid
        self._arm_timer(gid, pending)
        forwarded = dict(message)
        forwarded["id"] = gid
        try:
            await self._send_or_resend(gid, forwarded, pending, caller)
        except BackendError as exc:
            if not raise_errors:
                self._finish(gid, error_response(pending.original_id, BACKEND_UNAVAILABLE, str(exc)))
            elif self._drop(gid) is not None:  # not answered meanwhile (timed out while waiting for a restart)
                raise
        except BaseException:  # e.g. the caller must log in again: nothing was sent, nothing will answer
            self._drop(gid)
            raise

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        """Forward a client notification or a client response to a server-initiated request, for `caller`."""
        self.last_used = self._last_activity = time.monotonic()
        if "method" not in message:
            self._asked.discard(message.get("id"))
        if message.get("method") == "notifications/cancelled":
            params = message.get("params")
            if isinstance(params, dict) and "requestId" in params:
                gid = self._by_original.get(params["requestId"])
                if gid is None:
                    return
                message = {**message, "params": {**params, "requestId": gid}}
                pending = self._drop(gid)
                if pending is not None:
                    pending.sink.end()  # no answer will come: the waiting HTTP exchange can finish
        await self._wait_ready()
        await self._send(message, caller)

    async def abandon(self, sink: Sink, *, cancel: bool) -> None:
        """The client behind `sink` went away: route nothing more there.

        With `cancel` (2026-07-28, where closing the stream is the cancellation) its requests are cancelled at the
        backend; otherwise (a disconnect is not a cancellation) they run on and their answers are dropped.
        """
        sink.closed = True
        if self._stream is sink:
            self._stream = None
        if not cancel:
            return
        for gid in [gid for gid, pending in self._pending.items() if pending.sink is sink]:
            self._drop(gid)
            note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": gid}}
            with contextlib.suppress(BackendError):
                await self._send(note)

    async def _wait_ready(self) -> None:
        """Return once the backend is ready; `BackendError` when the session closes first or the restart takes
        longer than the request timeout."""
        if self._ready.is_set():
            return
        if self._parked:
            self._wake.set()
        if not self._closing:
            await self._ready_or_closed()
        if self._closing:
            raise BackendError(f"backend {self.name!r} session is closed")

    async def _ready_or_closed(self) -> None:
        if not await self._set_or_closed(self._ready, self._request_timeout):
            raise BackendError(f"backend {self.name!r} is restarting and did not come back in time")

    async def _set_or_closed(self, event: asyncio.Event, timeout: float | None = None) -> bool:
        """Wait until `event` is set or the session closes; False when `timeout` came first."""
        waits = {asyncio.ensure_future(event.wait()), asyncio.ensure_future(self._closed.wait())}
        try:
            done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        return bool(done)

    async def _send_or_resend(self, gid: int, message: Message, pending: _Pending, caller: Caller | None) -> None:
        """Send a client request; when the backend no longer knows the session (it restarted), the request was not
        processed: send it once more on the session the supervisor opens in its place, unless it was answered (timed
        out) or cancelled meanwhile. The caller gets exactly one answer."""
        transport = self._transport
        pending.sending = True  # before the first send: the session may end (`_fail_all`) while it goes out
        try:
            try:
                await self._send(message, caller)
            except SessionGone:
                if transport is self._transport:
                    self._ready.clear()  # the supervisor has not replaced the transport yet: wait for it
                await self._wait_ready()
                if self._pending.get(gid) is not pending:
                    return  # answered already (timed out) or cancelled: it must not run now
                pending.lost = None  # that session never processed it
                await self._send(message, caller)
        finally:
            pending.sending = False
        if pending.lost is not None:  # sent, but the session ended meanwhile: no answer will come
            self._finish(gid, error_response(pending.original_id, BACKEND_UNAVAILABLE, pending.lost))

    async def _send(self, message: Message, caller: Caller | None = None) -> None:
        """Send `message` on the current transport, for `caller` (None: a message of the gateway's own)."""
        transport = self._transport
        if transport is None:
            raise BackendError(f"backend {self.name!r} is not running")
        await transport.send(message, caller)

    # -- backend to client -----------------------------------------------------------------------------------------

    def attach_stream(self, sink: Sink) -> bool:
        """Attach the client's standalone stream (HTTP GET). Returns False when one is already attached."""
        if self._stream is not None:
            return False
        self._stream = sink
        while self._buffer:
            sink.deliver(self._buffer.popleft())
        return True

    def _on_message(self, message: Message) -> None:
        self._last_activity = time.monotonic()
        if "method" not in message:
            self._on_response(message)
            return
        if "id" in message:
            self._asked.add(message["id"])
        elif message["method"] == "notifications/cancelled":
            params = message.get("params")
            if isinstance(params, dict):
                self._asked.discard(params.get("requestId"))
        if message["method"] == "notifications/progress":
            params = message.get("params")
            gid = self._progress.get(params.get("progressToken")) if isinstance(params, dict) else None
            pending = self._pending.get(gid) if gid is not None else None
            if pending is not None:
                self._arm_timer(gid, pending)  # type: ignore[arg-type]
                if pending.sink.streaming and not pending.sink.closed:
                    pending.sink.deliver(message)
                return  # progress belongs to its request alone; a client that cannot stream does not get it
        # anything else (logs, list changes, server-to-client requests and their cancellations, which use the
        # backend's own ids) belongs to the session as a whole
        self._route_unassociated(message)

    def _on_response(self, message: Message) -> None:
        gid = message.get("id")
        if not isinstance(gid, int):
            logger.debug("backend %r sent a response with an unknown id", self.name)
            return
        future = self._internal.get(gid)
        if future is not None:
            if not future.done():
                future.set_result(message)
            return
        pending = self._pending.get(gid)
        if pending is None:
            return  # answered after a timeout or a cancellation
        self._finish(gid, {**message, "id": pending.original_id})

    def _route_unassociated(self, message: Message) -> None:
        if self._stream is not None:
            self._stream.deliver(message)
            return
        for pending in self._pending.values():
            if pending.sink.streaming and not pending.sink.closed:
                pending.sink.deliver(message)
                return
        if len(self._buffer) == self._buffer.maxlen and not self._buffer_warned:
            self._buffer_warned = True
            logger.warning("backend %r: no client stream open; dropping the oldest undelivered messages", self.name)
        self._buffer.append(message)

    # -- bookkeeping ----------------------------------------------------------------------------------------------

    def _arm_timer(self, gid: int, pending: _Pending) -> None:
        if pending.timer is not None:
            pending.timer.cancel()
        loop = asyncio.get_running_loop()
        pending.timer = loop.call_later(self._request_timeout, self._on_timeout, gid)

    def _on_timeout(self, gid: int) -> None:
        pending = self._pending.get(gid)
        if pending is None:
            return
        seconds = round(self._request_timeout)
        self._finish(
            gid,
            error_response(
                pending.original_id,
                BACKEND_UNAVAILABLE,
                f"backend {self.name!r} did not answer {pending.method or 'the request'} within {seconds} s",
            ),
        )
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": gid}}
        task = asyncio.ensure_future(self._send_quietly(cancel))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _send_quietly(self, message: Message) -> None:
        with contextlib.suppress(BackendError):
            await self._send(message)

    def _drop(self, gid: int) -> _Pending | None:
        pending = self._pending.pop(gid, None)
        if pending is None:
            return None
        if pending.timer is not None:
            pending.timer.cancel()
        if self._by_original.get(pending.original_id) == gid:
            del self._by_original[pending.original_id]
        if pending.progress_token is not None and self._progress.get(pending.progress_token) == gid:
            del self._progress[pending.progress_token]
        return pending

    def _finish(self, gid: int, message: Message) -> None:
        pending = self._drop(gid)
        if pending is None:
            return
        if "error" not in message:
            self._replayed.record(pending.method, pending.params)
        if pending.transform is not None:
            try:
                message = pending.transform(message)
            except Exception:  # fail closed: never the untransformed (unfiltered) answer
                logger.exception("backend %r: rewriting the answer to %s failed", self.name, pending.method)
                message = error_response(pending.original_id, INTERNAL_ERROR, "Internal error")
        pending.sink.deliver(message)

    def _fail_all(self, reason: str) -> None:
        for gid in list(self._pending):
            pending = self._pending[gid]
            if pending.sending and not self._closing:
                pending.lost = reason  # settled when its send returns: it may have to be sent again
                continue
            self._finish(gid, error_response(pending.original_id, BACKEND_UNAVAILABLE, reason))
        self._fail_internal(reason)

    def _fail_internal(self, reason: str) -> None:
        for future in self._internal.values():
            if not future.done():
                future.set_exception(BackendError(reason))
        self._internal.clear()


def _check_initialized(response: Message) -> None:
    error = response.get("error")
    if error is not None:
        message = error.get("message", "error") if isinstance(error, dict) else str(error)
        raise BackendError(f"initialize failed: {message}")
