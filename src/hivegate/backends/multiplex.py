"""Many client sessions on one stdio MCP server process (`--stdio-sharing shared|pool=N`), each kept to its own
messages (MCP 2025-11-25, "Basic / Lifecycle" and "Basic / Utilities": cancellation, progress).

Each client session's `BackendSession` talks to a `Channel` as to a process of its own; the channels of one process
share it through a `SharedProcess`, which relabels what goes in and routes what comes out.

Client to process:
- a request's id becomes one unique in the process (restored on its answer), its progress token too (restored on its
  progress notifications); `notifications/cancelled` names the request by its new id;
- `initialize` reaches the process once, with the first session's params; every later session gets that answer
  (its `protocolVersion`, `capabilities`, `serverInfo`), and `notifications/initialized` is sent once;
- `resources/subscribe` and `unsubscribe` are counted per URI: the process is subscribed while one session is, and
  `notifications/resources/updated` goes to the sessions subscribed to that URI alone;
- `logging/setLevel` is refused with an error: the level is the process's, one session would set it for all;
- a client's answer to a server-to-client request goes back only from the session that was asked.

Process to clients:
- answers and progress to the session of the request;
- over stdio, a server-to-client request (sampling, elicitation, roots) carries no sign of the request it serves: it
  goes to the one session with requests in flight, if that session declared the capability it needs; otherwise (no
  session, several, or one without the capability) the process gets an error answer. `ping` the gateway answers;
- `notifications/*/list_changed` to every session;
- other notifications (`notifications/message` logs) to the one session with requests in flight; with none or
  several they go to the gateway's log at debug level, never to a session they may not belong to.

When the process exits, every channel is closed with the reason: each session restarts as it would after a crash of
its own process, and the first one to open a channel starts the process again. A process with no channel left is
stopped after `linger` seconds (0: kept).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable
from typing import Any

from hivegate.backends.transport import MessageHandler, Transport, TransportFactory
from hivegate.core.jsonrpc import INVALID_REQUEST, METHOD_NOT_FOUND, Message, RequestId, error_response
from hivegate.errors import BackendError
from hivegate.outgoing.caller import Caller

__all__ = ["Channel", "SharedProcess"]

logger = logging.getLogger("hivegate.backend.shared")

_NEEDS = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}


class Channel:
    """One client session's view of a shared process: a `Transport`. `pick` chooses the process when it opens."""

    def __init__(self, pick: Callable[[], SharedProcess]) -> None:
        self._pick = pick
        self.process: SharedProcess | None = None
        self.on_message: MessageHandler = lambda message: None
        self.ids: dict[RequestId, int] = {}  # this session's request id → the process's
        self.capabilities: dict[str, Any] = {}  # what the session's client declared in its `initialize`
        self._closed = asyncio.Event()
        self._reason = "closed"

    @property
    def in_flight(self) -> int:
        return len(self.ids)

    async def open(self, on_message: MessageHandler) -> None:
        self.on_message = on_message
        self.process = self._pick()
        await self.process.attach(self)

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        if self.process is None or self._closed.is_set():
            raise BackendError("the shared backend is not running")
        await self.process.from_client(self, message)

    async def wait_closed(self) -> str:
        await self._closed.wait()
        return self._reason

    async def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            if self.process is not None:
                await self.process.detach(self)

    def gone(self, reason: str) -> None:
        """The process exited under this channel."""
        self._reason = reason
        self._closed.set()


class SharedProcess:
    """One process (a `Transport` from `factory`) shared by the channels attached to it."""

    def __init__(
        self,
        factory: TransportFactory,
        *,
        name: str,
        linger: float = 0.0,
        on_idle_stop: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._factory = factory
        self._linger = linger
        self._on_idle_stop = on_idle_stop
        self.channels: set[Channel] = set()
        self._transport: Transport | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopper: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        """Forget everything about the process (it exited or was stopped)."""
        self._ids = itertools.count(1)
        self._requests: dict[int, tuple[Channel, RequestId]] = {}  # the process's id → (channel, its id)
        self._tokens: dict[int, tuple[Channel, Any]] = {}  # the process's progress token → (channel, its token)
        self._own: set[int] = set()  # requests of the multiplexer's own (an unsubscribe): answers dropped
        self._asked: dict[RequestId, Channel] = {}  # the process's request id → the channel asked
        self._subscribers: dict[str, set[Channel]] = {}
        self._subscribing: dict[int, tuple[Channel, str]] = {}
        self._init_answer: Message | None = None  # the answer to the first `initialize` (its `result`)
        self._init_id: int | None = None  # the process's id of the `initialize` in flight
        self._init_waiting: list[tuple[Channel, RequestId]] = []
        self._initialized_sent = False

    @property
    def running(self) -> bool:
        return self._transport is not None

    @property
    def load(self) -> tuple[int, int]:
        """(sessions, requests in flight): the least is picked for a new session."""
        return len(self.channels), len(self._requests)

    # -- channels --------------------------------------------------------------------------------------------------

    async def attach(self, channel: Channel) -> None:
        """Attach `channel`, starting the process if it is not running; `BackendError` when it cannot start."""
        self.channels.add(channel)  # first: a pool counts it before this start finishes
        if self._stopper is not None:
            self._stopper.cancel()
            self._stopper = None
        try:
            async with self._lock:
                if self._transport is None:
                    transport = self._factory()
                    await transport.open(self._from_process)
                    self._transport = transport
                    self._spawn(self._watch(transport))
        except BaseException:
            self.channels.discard(channel)
            raise

    async def detach(self, channel: Channel) -> None:
        """The session ended (or was stopped for being idle): cancel what it left running at the process."""
        if channel not in self.channels:
            return
        self.channels.discard(channel)
        for pid in list(channel.ids.values()):
            self._forget(pid)
            await self._quietly({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": pid}})
        for asked in [rid for rid, owner in self._asked.items() if owner is channel]:
            del self._asked[asked]
            await self._quietly(error_response(asked, INVALID_REQUEST, "the client session that was asked ended"))
        self._init_waiting = [(c, rid) for c, rid in self._init_waiting if c is not channel]
        for uri in [uri for uri, subs in self._subscribers.items() if channel in subs]:
            await self._unsubscribe(channel, uri)
        if not self.channels and self._linger > 0 and self._transport is not None:
            self._stopper = asyncio.get_running_loop().call_later(self._linger, self._stop_idle)

    def _stop_idle(self) -> None:
        self._stopper = None
        transport = self._transport
        if self.channels or transport is None:
            return
        self._transport = None
        self._reset()
        logger.info("shared backend %r: stopped after %g s without sessions", self.name, self._linger)
        if self._on_idle_stop is not None:
            self._on_idle_stop()
        self._spawn(transport.close())

    async def close(self) -> None:
        if self._stopper is not None:
            self._stopper.cancel()
        transport, self._transport = self._transport, None
        for channel in list(self.channels):
            channel.gone("the gateway is stopping")
        self.channels.clear()
        if transport is not None:
            await transport.close()
        for task in list(self._tasks):
            task.cancel()

    async def _watch(self, transport: Transport) -> None:
        reason = await transport.wait_closed()
        if self._transport is not transport:
            return  # stopped on purpose
        self._transport = None
        self._reset()
        logger.warning("shared backend %r went away (%s): its %d sessions restart", self.name, reason,
                       len(self.channels))  # fmt: skip
        channels, self.channels = list(self.channels), set()
        for channel in channels:
            channel.gone(reason)
        await transport.close()

    # -- client to process -----------------------------------------------------------------------------------------

    async def from_client(self, channel: Channel, message: Message) -> None:
        method = message.get("method")
        if method is None:  # the client's answer to a request of the process's
            if self._asked.get(message.get("id")) is channel:  # type: ignore[arg-type]
                del self._asked[message["id"]]
                await self._send(message)
            return
        if "id" not in message:
            await self._notification(channel, message)
            return
        params = message.get("params")
        if method == "initialize":
            await self._initialize(channel, message)
        elif method == "logging/setLevel":
            refused = "logging/setLevel is refused: this server process is shared by several sessions (--stdio-sharing)"
            logger.info("shared backend %r: %s", self.name, refused)  # said even where the answer is not passed on
            channel.on_message(error_response(message["id"], INVALID_REQUEST, refused))
        elif method in ("resources/subscribe", "resources/unsubscribe") and isinstance(params, dict):
            await self._subscription(channel, message, method, str(params.get("uri")))
        else:
            await self._request(channel, message)

    async def _notification(self, channel: Channel, message: Message) -> None:
        method = message["method"]
        if method == "notifications/initialized":
            if self._initialized_sent:
                return
            self._initialized_sent = True
        elif method == "notifications/cancelled":
            params = message.get("params")
            pid = channel.ids.get(params["requestId"]) if isinstance(params, dict) and "requestId" in params else None
            if pid is None:
                return
            self._forget(pid)
            message = {**message, "params": {**params, "requestId": pid}}  # type: ignore[dict-item]
        await self._send(message)

    async def _request(self, channel: Channel, message: Message, pid: int | None = None) -> None:
        pid = next(self._ids) if pid is None else pid
        self._requests[pid] = (channel, message["id"])
        channel.ids[message["id"]] = pid
        forwarded = {**message, "id": pid}
        params = message.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        if isinstance(meta, dict) and "progressToken" in meta:
            self._tokens[pid] = (channel, meta["progressToken"])
            forwarded["params"] = {**params, "_meta": {**meta, "progressToken": pid}}  # type: ignore[dict-item]
        try:
            await self._send(forwarded)
        except BaseException:
            self._forget(pid)
            raise

    async def _initialize(self, channel: Channel, message: Message) -> None:
        params = message.get("params")
        caps = params.get("capabilities") if isinstance(params, dict) else None
        channel.capabilities = caps if isinstance(caps, dict) else {}
        if self._init_answer is not None:
            channel.on_message({"jsonrpc": "2.0", "id": message["id"], "result": self._init_answer})
            return
        self._init_waiting.append((channel, message["id"]))
        if self._init_id is not None:
            return  # the answer to the one in flight is for this session too
        # the process's `initialize` is the multiplexer's own, for whoever waits: it outlives the session that sent it
        self._init_id = pid = next(self._ids)
        try:
            await self._send({**message, "id": pid})
        except BaseException as exc:
            self._initialized(error_response(pid, INVALID_REQUEST, f"initialize could not be sent: {exc}"))
            raise

    async def _subscription(self, channel: Channel, message: Message, method: str, uri: str) -> None:
        subscribers = self._subscribers.setdefault(uri, set())
        if method == "resources/subscribe":
            first = not subscribers
            subscribers.add(channel)
            if first:
                pid = next(self._ids)
                self._subscribing[pid] = (channel, uri)
                await self._request(channel, message, pid)
                return
        else:
            subscribers.discard(channel)
            if not subscribers:
                del self._subscribers[uri]
                await self._request(channel, message)
                return
        channel.on_message({"jsonrpc": "2.0", "id": message["id"], "result": {}})

    async def _unsubscribe(self, channel: Channel, uri: str) -> None:
        subscribers = self._subscribers.get(uri, set())
        subscribers.discard(channel)
        if not subscribers:
            self._subscribers.pop(uri, None)
            pid = next(self._ids)
            self._own.add(pid)
            note = {"jsonrpc": "2.0", "id": pid, "method": "resources/unsubscribe", "params": {"uri": uri}}
            await self._quietly(note)

    async def _send(self, message: Message) -> None:
        transport = self._transport
        if transport is None:
            raise BackendError(f"backend {self.name!r} is not running")
        await transport.send(message)

    async def _quietly(self, message: Message) -> None:
        with contextlib.suppress(BackendError):
            await self._send(message)

    def _forget(self, pid: int) -> tuple[Channel, RequestId] | None:
        found = self._requests.pop(pid, None)
        if found is not None:
            found[0].ids.pop(found[1], None)
        self._tokens.pop(pid, None)
        return found

    # -- process to clients ----------------------------------------------------------------------------------------

    def _from_process(self, message: Message) -> None:
        method = message.get("method")
        if method is None:
            self._answer(message)
        elif "id" in message:
            self._server_request(message)
        elif method == "notifications/progress":
            params = message.get("params")
            token = params.get("progressToken") if isinstance(params, dict) else None
            found = self._tokens.get(token) if isinstance(token, int) else None
            if found is not None:
                channel, theirs = found
                channel.on_message({**message, "params": {**params, "progressToken": theirs}})  # type: ignore[dict-item]
        elif method == "notifications/cancelled":  # the process gave up a request of its own
            params = message.get("params")
            theirs = params["requestId"] if isinstance(params, dict) and "requestId" in params else None
            asked = self._asked.pop(theirs, None) if theirs is not None else None
            if asked is not None:
                asked.on_message(message)
        elif method == "notifications/resources/updated":
            params = message.get("params")
            uri = params.get("uri") if isinstance(params, dict) else None
            for channel in list(self._subscribers.get(uri, ())) if isinstance(uri, str) else []:
                channel.on_message(message)
        elif method.endswith("/list_changed"):
            for channel in list(self.channels):
                channel.on_message(message)
        else:
            owner = self._sole_busy()
            if owner is not None:
                owner.on_message(message)
            else:
                logger.debug("shared backend %r: %s for no single session: %s", self.name, method, message)

    def _answer(self, message: Message) -> None:
        pid = message.get("id")
        if not isinstance(pid, int):
            return
        if pid == self._init_id:
            self._initialized(message)
            return
        if pid in self._own:
            self._own.discard(pid)
            return
        subscribing = self._subscribing.pop(pid, None)
        if subscribing is not None and "error" in message:
            self._subscribers.get(subscribing[1], set()).discard(subscribing[0])
        found = self._forget(pid)
        if found is not None:
            channel, theirs = found
            channel.on_message({**message, "id": theirs})

    def _initialized(self, message: Message) -> None:
        """The first `initialize` was answered: the waiting sessions get the same answer."""
        self._init_id = None
        waiting, self._init_waiting = self._init_waiting, []
        result = message.get("result")
        if "error" not in message and isinstance(result, dict):
            self._init_answer = result
        for channel, theirs in waiting:
            channel.on_message({**message, "id": theirs})

    def _server_request(self, message: Message) -> None:
        method = message["method"]
        if method == "ping":
            self._spawn(self._quietly({"jsonrpc": "2.0", "id": message["id"], "result": {}}))
            return
        owner = self._sole_busy()
        need = _NEEDS.get(method)
        if owner is None:
            reason = f"{method}: this server process is shared, and no single client session is waiting on it"
        elif need is not None and need not in owner.capabilities:
            reason = f"{method}: the client session did not declare the {need!r} capability"
        else:
            self._asked[message["id"]] = owner
            owner.on_message(message)
            return
        logger.info("shared backend %r: refused %s", self.name, reason)
        self._spawn(self._quietly(error_response(message["id"], METHOD_NOT_FOUND, reason)))

    def _sole_busy(self) -> Channel | None:
        busy = [channel for channel in self.channels if channel.ids]
        return busy[0] if len(busy) == 1 else None

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
