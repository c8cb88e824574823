"""Transports to remote MCP servers: legacy HTTP+SSE (2024-11-05) and Streamable HTTP (2025-03-26 and later).

Used when the front and the backend speak different transports; the same-transport Streamable HTTP case is served
by the reverse proxy instead. The caller's credentials are never sent: these connections carry no Authorization.
A request the gateway traced also carries its `params._meta` trace context as `traceparent`/`tracestate` headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urljoin, urlsplit

import aiohttp
import orjson

from hivegate.backends.sse_parser import iter_events
from hivegate.backends.transport import MessageHandler
from hivegate.core.jsonrpc import Message
from hivegate.errors import BackendError, CredentialRefused, SessionGone
from hivegate.httpclient.streaming import CONNECT_TIMEOUT, streaming_session
from hivegate.observe.exchange import TraceMeta
from hivegate.outgoing.caller import Caller
from hivegate.outgoing.credentials import Credentials

__all__ = ["SseClientTransport", "StreamableClientTransport"]

logger = logging.getLogger("hivegate.backend.remote")

# Resuming a Streamable HTTP answer's stream: the wait when the server names none, the longest wait honoured, and
# how often in a row a resumed stream may bring nothing new before the request is given up.
DEFAULT_RETRY_MS = 500
MAX_RETRY_MS = 30_000
MAX_RESUMES = 20


def _deliver(data: str, on_message: MessageHandler) -> None:
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        logger.warning("backend sent an event that is not JSON")
        return
    for item in message if isinstance(message, list) else [message]:
        if isinstance(item, dict):
            on_message(item)


def _stream_lost(request_id: object, name: str) -> Message:
    """The answer a request gets when its backend closed the stream and it cannot be resumed."""
    text = f"backend {name!r} closed the stream before answering, and it could not be resumed"
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32603, "message": text}}


def _trace_headers(message: Message) -> dict[str, str]:
    """The W3C trace context the gateway put in a request's `_meta` (never a caller's own), as HTTP headers."""
    params = message.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, TraceMeta):
        return {}
    return {key: meta[key] for key in ("traceparent", "tracestate") if key in meta}


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    while True:
        line = await response.content.readline()
        if not line:
            return
        yield line


class SseClientTransport:
    """One legacy SSE connection: GET the stream, wait for the `endpoint` event, POST messages there.

    `headers` are sent with every request (a credential of the gateway's own for this backend, never the caller's).
    """

    def __init__(self, url: str, *, timeout: float, headers: Mapping[str, str] | None = None) -> None:
        self._url = url
        self._extra = dict(headers or {})
        self._timeout = timeout
        self._client: aiohttp.ClientSession | None = None
        self._endpoint: str | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        self._reason = "connection closed"

    async def open(self, on_message: MessageHandler) -> None:
        self._client = streaming_session()
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(on_message, ready))
        try:
            self._endpoint = await asyncio.wait_for(asyncio.shield(ready), self._timeout)
        except (TimeoutError, BackendError) as exc:
            await self.close()
            raise BackendError(f"cannot open SSE stream at {self._url}: {exc or 'timed out'}") from exc

    async def _read(self, on_message: MessageHandler, ready: asyncio.Future[str]) -> None:
        assert self._client is not None
        try:
            async with self._client.get(
                self._url, headers={**self._extra, "Accept": "text/event-stream"}, allow_redirects=False
            ) as resp:
                if resp.status != 200:
                    raise BackendError(f"HTTP {resp.status}")
                async for event in iter_events(_lines(resp)):
                    if event.event == "endpoint":
                        endpoint = urljoin(self._url, event.data.strip())
                        if urlsplit(endpoint)[:2] != urlsplit(self._url)[:2]:
                            raise BackendError("the endpoint event points to another origin")
                        if not ready.done():
                            ready.set_result(endpoint)
                    elif event.event == "message":
                        _deliver(event.data, on_message)
        except (aiohttp.ClientError, BackendError) as exc:
            self._reason = f"SSE stream failed: {exc}"
            if not ready.done():
                ready.set_exception(BackendError(str(exc)))
        finally:
            if not ready.done():
                ready.set_exception(BackendError("stream ended before the endpoint event"))
            self._closed.set()

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        """POST one message to the endpoint (`caller` does not matter: the credential is the gateway's own)."""
        client = self._client
        if client is None or self._endpoint is None:
            raise BackendError("SSE backend is not connected")
        if self._closed.is_set():  # the message never goes out: it may be sent again on a new connection
            raise SessionGone("SSE backend is not connected")
        try:
            async with client.post(
                self._endpoint,
                data=orjson.dumps(message),
                headers={**self._extra, "Content-Type": "application/json", **_trace_headers(message)},
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                allow_redirects=False,
            ) as resp:
                if resp.status in (401, 403):
                    raise CredentialRefused(f"backend refused the gateway's credential (HTTP {resp.status})")
                if resp.status >= 300:
                    raise BackendError(f"backend refused the message: HTTP {resp.status}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendError(f"backend unreachable: {exc.__class__.__name__}") from exc
        except RuntimeError as exc:  # the HTTP client refuses to start a request once closed
            if not (client.closed or self._closed.is_set()):
                raise
            raise SessionGone("SSE backend connection closed while sending") from exc

    async def wait_closed(self) -> str:
        await self._closed.wait()
        return self._reason

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._client is not None:
            await self._client.close()
        self._closed.set()


class StreamableClientTransport:
    """A client session with a Streamable HTTP server: each message is a POST; answers come as JSON or SSE.

    `headers` are sent with every request (a credential of the gateway's own for this backend, never the caller's);
    `credentials` add, to each message, the backend's credential for the caller it is for (`send`'s `caller`).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
        credentials: Credentials | None = None,
        name: str = "backend",
    ) -> None:
        self._url = url
        self._extra = dict(headers or {})
        self._credentials = credentials
        self._name = name
        self._timeout = timeout
        self._client: aiohttp.ClientSession | None = None
        self._on_message: MessageHandler | None = None
        self._session_id: str | None = None
        self._version: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._reason = "session ended"

    async def open(self, on_message: MessageHandler) -> None:
        self._client = streaming_session()
        self._on_message = on_message

    def _headers(self) -> dict[str, str]:
        headers = {**self._extra, "Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        if self._session_id is not None:
            headers["Mcp-Session-Id"] = self._session_id
        if self._version is not None:
            headers["MCP-Protocol-Version"] = self._version
        return headers

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        """POST one message with the credential of `caller`, the caller it is for; the gateway's own messages (no
        caller: a cancellation, a request of its own) reuse the last credential sent."""
        client, on_message = self._client, self._on_message
        if client is None or on_message is None:
            raise BackendError("backend session is closed")
        if self._closed.is_set():  # the message never goes out: it may be sent again on a new session
            raise SessionGone("backend session is closed")
        is_initialize = message.get("method") == "initialize"
        # the credential of the caller this message is for; the gateway's own messages (a cancellation after a
        # timeout, a request of its own) reuse the last one
        if self._credentials is not None and (caller is not None or not self._extra):
            self._extra = {**self._extra, **await self._credentials.headers(caller)}

        def remember(item: Message) -> None:
            if is_initialize and isinstance(item.get("result"), dict):
                self._version = item["result"].get("protocolVersion")
            on_message(item)

        headers = {**self._headers(), **_trace_headers(message)}  # a resumed answer's GET carries the same
        try:
            resp = await client.post(
                self._url,
                data=orjson.dumps(message),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=self._timeout),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise BackendError(f"backend unreachable: {exc.__class__.__name__}") from exc
        except RuntimeError as exc:  # the HTTP client refuses to start a request once closed (close() raced us)
            if not (client.closed or self._closed.is_set()):
                raise
            raise SessionGone(f"backend {self._name!r} session closed while sending") from exc
        if resp.status == 404 and self._session_id is not None:
            resp.release()
            self._reason = f"backend {self._name!r} no longer knows the session (HTTP 404)"
            self._closed.set()
            raise SessionGone(self._reason)
        if resp.status in (401, 403):
            resp.release()
            raise CredentialRefused(f"backend {self._name!r} refused the gateway's credential (HTTP {resp.status})")
        if resp.status >= 400:
            resp.release()
            raise BackendError(f"backend answered HTTP {resp.status}")
        session_id = resp.headers.get("mcp-session-id")
        if session_id:
            self._session_id = session_id
        # the answer is read in the background: send() returns once the message is accepted, so a slow tool call
        # does not hold up the next message (a cancellation, say)
        request_id = message.get("id") if "method" in message else None
        task = asyncio.create_task(self._consume(resp, remember, request_id, headers))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _consume(
        self, resp: aiohttp.ClientResponse, on_message: MessageHandler, request_id: object, headers: Mapping[str, str]
    ) -> None:
        """Read one POST's answer. An SSE stream that ends before the answer to `request_id` came is resumed with
        `GET` + `Last-Event-ID` (the server's event ids, after its `retry` time), as the Streamable HTTP transport
        provides; one that cannot be resumed gets the request an error answer at once, never a silent wait."""
        answered = request_id is None
        last_id: str | None = None
        retry_ms: int | None = None
        resumes = 0

        def deliver(item: Message) -> None:
            nonlocal answered
            if item.get("id") == request_id and ("result" in item or "error" in item):
                answered = True
            on_message(item)

        while True:
            timed_out = progressed = False
            try:
                if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                    body = await resp.read()
                    if body:
                        _deliver(body.decode("utf-8", errors="replace"), deliver)
                    return
                async for event in iter_events(_lines(resp)):
                    # the cursor and the retry time carry over reconnections; an empty id resets nothing to resume
                    if event.id is not None:
                        last_id = event.id or None
                    if event.retry is not None:
                        retry_ms = event.retry
                    if event.event == "message" and event.data:  # an empty one only primes the stream's event id
                        _deliver(event.data, deliver)
                        progressed = True
            except TimeoutError:
                timed_out = True  # nothing for the read timeout: the session's own timeout answers the caller
            except aiohttp.ClientError as exc:
                logger.warning("backend stream broke: %s", exc.__class__.__name__)
            finally:
                resp.release()
            if answered or timed_out or self._closed.is_set():
                return
            if progressed:
                resumes = 0  # the server is making progress: only reconnections that bring no message count
            if last_id is None or resumes >= MAX_RESUMES:
                why = "without an event id to resume from" if last_id is None else f"after {resumes} resumptions"
                logger.warning("backend %r closed the answer's stream %s", self._name, why)
                on_message(_stream_lost(request_id, self._name))
                return
            resumes += 1
            await asyncio.sleep(min(retry_ms if retry_ms is not None else DEFAULT_RETRY_MS, MAX_RETRY_MS) / 1000)
            resumed = await self._resume(last_id, headers)
            if resumed is None:
                on_message(_stream_lost(request_id, self._name))
                return
            resp = resumed

    async def _resume(self, last_id: str, sent: Mapping[str, str]) -> aiohttp.ClientResponse | None:
        """`GET` the stream again from after `last_id`, with the headers its request was sent with (the credential
        of the caller it is for); None (logged) when the server does not resume it."""
        client = self._client
        if client is None or self._closed.is_set():
            return None
        headers = {**sent, "Accept": "text/event-stream", "Last-Event-ID": last_id}
        headers.pop("Content-Type", None)
        try:
            resp = await client.get(
                self._url,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=self._timeout),
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError, RuntimeError) as exc:
            logger.warning("backend %r: resuming a stream failed: %s", self._name, exc.__class__.__name__)
            return None
        if resp.status == 404 and self._session_id is not None:  # as for a POST: the session is gone
            resp.release()
            self._reason = f"backend {self._name!r} no longer knows the session (HTTP 404)"
            self._closed.set()
            return None
        if resp.status != 200 or not resp.headers.get("content-type", "").startswith("text/event-stream"):
            logger.warning("backend %r did not resume a stream (HTTP %d)", self._name, resp.status)
            resp.release()
            return None
        return resp

    async def wait_closed(self) -> str:
        await self._closed.wait()
        return self._reason

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._client is not None:
            if self._session_id is not None and not self._closed.is_set():
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with self._client.delete(
                        self._url,
                        headers=self._headers(),
                        timeout=aiohttp.ClientTimeout(total=5),
                        allow_redirects=False,
                    ):
                        pass
            await self._client.close()
        self._closed.set()
