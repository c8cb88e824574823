"""Session affinity between workers (`--workers`): a session's requests reach the worker that holds it.

The kernel spreads connections over the workers, not sessions, and a session (its stdio process, its event streams)
lives in one worker. So a worker's session ids start with `w<index>.`, and a worker that gets a request for another
worker's session (`Mcp-Session-Id`, or `session_id=` of a legacy `POST /messages`) hands it over, as it came (the
caller's headers, its body), to that worker's private Unix socket and streams the answer back (SSE included). The
owner authenticates and authorizes the request as if it had come to it directly: the same token gives the same
outcome. The caller's address travels in an internal header that only the private socket honours (it is dropped
from requests on the public one). When the owner is gone (it exited and was not back yet) the request is served
here: a session store shared by the workers (Redis) resumes the session; without one the answer is 404 and the
client initializes a new session, as after a restart.

`GET /metrics` is answered for every worker: the worker that gets the scrape adds the other workers' pages, each
sample labelled `worker` (`observe.worker_metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import parse_qs

import httpx

from hivegate.asgi.http import send_bytes
from hivegate.asgi.prefork import Worker
from hivegate.asgi.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["AffinityRouter", "owner_of", "session_prefix"]

logger = logging.getLogger("hivegate.workers")

_CLIENT_HEADER = b"x-hivegate-worker-client"  # host:port of the caller, from the worker that forwarded
_SCRAPE_HEADER = b"x-hivegate-worker-scrape"  # the port a `/metrics` scrape came to: the peer answers as that port
_INTERNAL = (_CLIENT_HEADER, _SCRAPE_HEADER)
_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade", b"proxy-connection"})
_MAX_BODY = 64 * 1024 * 1024  # a forwarded body is read whole first; the owner applies --max-body-size itself


def session_prefix(index: int) -> str:
    return f"w{index}."


def owner_of(session_id: str) -> int | None:
    """The index of the worker whose session `session_id` is (None: not a worker's id)."""
    head, dot, _ = session_id[:12].partition(".")
    if not dot or not head.startswith("w") or not head[1:].isdecimal():
        return None
    return int(head[1:])


class AffinityRouter:
    """ASGI middleware in front of a worker's gateway: forwards other workers' sessions to them."""

    def __init__(self, app: ASGIApp, worker: Worker, public: tuple[str, int]) -> None:
        """`public`: the address of the public socket, shown to the gateway for forwarded requests."""
        self._app = app
        self._worker = worker
        self._public = public
        self._clients: dict[int, httpx.AsyncClient] = {}
        self._private = worker.socket_path(worker.index)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(scope, receive, send)
                return
            await self._app(scope, receive, send)
            return
        server = scope.get("server")
        if server is None or server[0] == self._private:  # the private Unix socket: another worker forwarded it
            await self._app(self._arrived(scope), receive, send)
            return
        session_id: str | None = None
        forged = False
        for key, value in scope["headers"]:
            if key == b"mcp-session-id":
                session_id = value.decode("latin-1")
            elif key in _INTERNAL:
                forged = True
        if forged:
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"] if k not in _INTERNAL]}
        if scope["path"] == "/metrics" and scope["method"] == "GET" and session_id is None:
            await self._scrape(scope, receive, send)
            return
        if session_id is None and scope["path"].endswith("/messages"):
            found = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_id")
            session_id = found[0] if found else None
        owner = owner_of(session_id) if session_id else None
        if owner is None or owner == self._worker.index or owner >= self._worker.count:
            await self._app(scope, receive, send)
            return
        await self._forward(owner, scope, receive, send)

    def _arrived(self, scope: Scope) -> Scope:
        client: tuple[str, int] | None = None
        server = self._public
        headers = []
        for key, value in scope["headers"]:
            if key == _CLIENT_HEADER:
                host, _, port = value.decode("latin-1").rpartition(":")
                client = (host, int(port) if port.isdecimal() else 0)
            elif key == _SCRAPE_HEADER and value.isdigit():
                server = (self._public[0], int(value))
            else:
                headers.append((key, value))
        return {**scope, "headers": headers, "client": client, "server": server}

    async def _scrape(self, scope: Scope, receive: Receive, send: Send) -> None:
        """`GET /metrics`: this worker's page and every other worker's, merged (`observe.worker_metrics`); the
        local answer as it is when it is not a page of metrics (e.g. 404 on a port without them)."""
        start: Message = {}
        body = bytearray()

        async def captured(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                body.extend(message.get("body", b""))

        await self._app(scope, receive, captured)
        if start.get("status") != 200:
            await send(start)
            await send({"type": "http.response.body", "body": bytes(body)})
            return
        port = str((scope.get("server") or ("", 0))[1]).encode()
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP] + [(_SCRAPE_HEADER, port)]
        pages = [(self._worker.index, bytes(body))]
        for index in range(self._worker.count):
            if index == self._worker.index:
                continue
            try:
                resp = await self._client(index).get("http://worker/metrics", headers=headers, timeout=5.0)
            except httpx.TransportError as exc:
                logger.info("worker %d: no metrics (%s)", index, exc)
                continue
            if resp.status_code == 200:
                pages.append((index, resp.content))
        from hivegate.observe.metrics import CONTENT_TYPE
        from hivegate.observe.worker_metrics import merge_worker_pages

        merged = merge_worker_pages(sorted(pages))
        await send_bytes(send, 200, merged, [(b"content-type", CONTENT_TYPE.encode()), (b"cache-control", b"no-store")])

    async def _forward(self, owner: int, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand the request to worker `owner` and relay its answer; serve it here when `owner` cannot be reached."""
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > _MAX_BODY:
                await send_bytes(send, 413, b"")
                return
        client = scope.get("client")
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP]
        if client:
            headers.append((_CLIENT_HEADER, f"{client[0]}:{client[1]}".encode("latin-1")))
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        http = self._client(owner)
        request = http.build_request(scope["method"], "http://worker" + target.decode("latin-1"), headers=headers,
                                     content=bytes(body))  # fmt: skip
        try:
            response = await http.send(request, stream=True)
        except httpx.TransportError as exc:
            logger.info("worker %d unreachable (%s): serving its session here", owner, exc)
            replay = _replay(bytes(body), receive)
            await self._app(scope, replay, send)
            return
        try:
            await send({
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [(k, v) for k, v in response.headers.raw if k.lower() not in _HOP],
            })  # fmt: skip
            relay = asyncio.ensure_future(_relay(response, send))
            gone = asyncio.ensure_future(_disconnected(receive))
            await asyncio.wait((relay, gone), return_when=asyncio.FIRST_COMPLETED)
            for task in (relay, gone):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if relay.done() and not relay.cancelled():
                relay.result()
        except (httpx.TransportError, OSError) as exc:
            logger.info("worker %d: the forwarded answer broke off: %s", owner, exc)
        finally:
            await response.aclose()

    def _client(self, owner: int) -> httpx.AsyncClient:
        http = self._clients.get(owner)
        if http is None:
            transport = httpx.AsyncHTTPTransport(uds=self._worker.socket_path(owner))
            timeout = httpx.Timeout(connect=5.0, read=None, write=30.0, pool=30.0)
            limits = httpx.Limits(max_connections=512, max_keepalive_connections=32)
            http = httpx.AsyncClient(transport=transport, timeout=timeout, limits=limits)
            self._clients[owner] = http
        return http

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sent(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                for http in self._clients.values():
                    await http.aclose()
            await send(message)

        await self._app(scope, receive, sent)


async def _relay(response: httpx.Response, send: Send) -> None:
    async for chunk in response.aiter_raw():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for an app that gets the body already read, then the caller's own messages (its disconnect)."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
