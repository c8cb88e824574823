"""The four fronts a client can reach an MCP server through, started as real gateway processes with one issuer and
one Cedar policy file, and a raw client that speaks to each of them alike.

- `stdio`: `hivegate run -- python stdio_server.py` (Streamable HTTP in front of a stdio child per session);
- `remote`: `hivegate run http://…/mcp` (the reverse proxy in front of the fixture served over HTTP);
- `sse`: `hivegate run --proxy-mode sse -- …` (the legacy HTTP+SSE transport; answers arrive on the event stream);
- `vmcp`: `hivegate vmcp serve` with the fixture as its one stdio backend (names kept bare: `manual`).

`RawSession.request` sends a JSON-RPC message and returns the answer the client gets, however the front delivers it,
so a test can assert that every front decides the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import yaml

from support.backend import fixture_http_server
from support.gateway import FIXTURE, RunningGateway, hivegate_run, hivegate_vmcp
from support.issuer import LocalIssuer, local_issuer

FrontKind = Literal["stdio", "remote", "sse", "vmcp"]
FRONTS: tuple[FrontKind, ...] = ("stdio", "remote", "sse", "vmcp")
AUDIENCE = "hivegate-fronts"
ACCEPT = "application/json, text/event-stream"
INIT_PARAMS = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}}


@dataclass
class Front:
    kind: FrontKind
    gateway: RunningGateway
    issuer: LocalIssuer
    call_log: Path

    @property
    def url(self) -> str:
        return self.gateway.url

    def token(self, sub: str = "alice", **claims: Any) -> str:
        return self.issuer.token(AUDIENCE, sub=sub, **claims)

    def calls(self) -> list[tuple[str, str]]:
        """`(method, name)` of every call that reached the backend."""
        if not self.call_log.exists():
            return []
        return [(e["method"], e["name"]) for e in map(json.loads, self.call_log.read_text().splitlines())]

    def stderr(self) -> str:
        return "\n".join(self.gateway.stderr)


def _write_authz(path: Path, policies: Sequence[str], required_scopes: Mapping[str, list[str]] | None) -> Path:
    doc: dict[str, Any] = {
        "version": "1.0",
        "type": "cedarv1",
        "cedar": {"policies": list(policies), "entities_json": "[]"},
    }
    if required_scopes:
        doc["requiredScopes"] = dict(required_scopes)
    path.write_text(json.dumps(doc))
    return path


@asynccontextmanager
async def start_front(
    kind: FrontKind,
    directory: Path,
    issuer: LocalIssuer,
    policies: Sequence[str],
    *,
    http_mode: str = "--http",
    extra: Sequence[str] = (),
    required_scopes: Mapping[str, list[str]] | None = None,
) -> AsyncIterator[Front]:
    """One front as a real gateway process (and, for `remote`, the fixture as a real HTTP server); `required_scopes`
    is the authz config's `requiredScopes`."""
    directory.mkdir(parents=True, exist_ok=True)
    call_log = directory / "calls.jsonl"
    authz = _write_authz(directory / "authz.json", policies, required_scopes)
    oidc = ["--oidc-issuer", issuer.url, "--oidc-audience", AUDIENCE, "--oidc-jwks-url", issuer.jwks_url,
            "--oidc-insecure-allow-http", "--jwks-allow-private-ip", "--authz-config", str(authz)]  # fmt: skip
    stdio = ["-e", f"FIXTURE_CALL_LOG={call_log}", "--", sys.executable, FIXTURE]
    async with AsyncExitStack() as stack:
        if kind == "stdio":
            gateway = await stack.enter_async_context(hivegate_run([*oidc, *extra, *stdio]))
        elif kind == "sse":
            gateway = await stack.enter_async_context(hivegate_run([*oidc, "--proxy-mode", "sse", *extra, *stdio]))
        elif kind == "remote":
            env = {"FIXTURE_CALL_LOG": str(call_log)}
            url = await stack.enter_async_context(fixture_http_server(http_mode, env=env))
            gateway = await stack.enter_async_context(hivegate_run([*oidc, *extra, url]))
        else:
            config = {
                "name": "fronts",
                "backends": [
                    {"name": "tools", "command": sys.executable, "args": [FIXTURE],
                     "env": {"FIXTURE_CALL_LOG": str(call_log)}},
                ],
                "aggregation": {"conflictResolution": "manual"},
                "incomingAuth": {
                    "type": "oidc",
                    "oidc": {"issuer": issuer.url, "audience": AUDIENCE, "jwksUrl": issuer.jwks_url,
                             "insecureAllowHttp": True, "protectedResourceAllowPrivateIp": True},
                    "authz": {"type": "cedar", "policies": list(policies),
                              **({"requiredScopes": dict(required_scopes)} if required_scopes else {})},
                },
            }  # fmt: skip
            path = directory / "vmcp.yaml"
            path.write_text(yaml.safe_dump(config))
            gateway = await stack.enter_async_context(hivegate_vmcp(["--config", str(path), "--port", "0", *extra]))
        yield Front(kind, gateway, issuer, call_log)


@asynccontextmanager
async def checked_front(
    kind: FrontKind, directory: Path, policies: Sequence[str], **options: Any
) -> AsyncIterator[Front]:
    """`start_front` with an issuer of its own; on the way out, the gateway must have logged no traceback."""
    async with local_issuer() as issuer, start_front(kind, directory, issuer, policies, **options) as started:
        yield started
        assert "Traceback" not in started.stderr()


@dataclass
class Answer:
    """What a client got for one message: the HTTP status of its POST and the JSON-RPC answer (from the POST's body,
    or for the legacy SSE front from the event stream)."""

    status: int
    message: Any


@dataclass
class RawSession:
    """One client session with a front, by hand-written HTTP requests."""

    front: Front = field(repr=False)
    http: httpx.AsyncClient = field(repr=False)
    token: str = field(repr=False)
    session_id: str | None = None
    messages_url: str | None = None  # legacy SSE: where to POST
    events: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"authorization": f"Bearer {self.token}", "accept": ACCEPT, "mcp-protocol-version": "2025-06-18"}
        if self.session_id is not None:
            headers["mcp-session-id"] = self.session_id
        headers.update(extra or {})
        return headers

    async def post(
        self, body: bytes | Any, headers: Sequence[tuple[str, str]] | Mapping[str, str | None] | None = None
    ) -> httpx.Response:
        """POST `body` (bytes as they are, anything else as JSON) with the session's headers; `headers` as a mapping
        replaces them (`None` leaves one out), as a list of pairs adds them as sent (a name may repeat)."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        url = self.messages_url or self.front.url
        pairs = list(self.headers({"content-type": "application/json"}).items())
        if isinstance(headers, Mapping):
            pairs = [(k, v) for k, v in pairs if k not in headers]
            pairs += [(k, v) for k, v in headers.items() if v is not None]
        elif headers is not None:
            pairs += list(headers)
        return await self.http.post(url, content=content, headers=pairs)

    async def request(
        self,
        message: Mapping[str, Any] | Sequence[Any] | bytes,
        *,
        headers: Mapping[str, str | None] | None = None,
        timeout: float = 30,
    ) -> Answer:
        """Send one message (or a batch, or raw bytes) and wait for the answer the client gets."""
        if isinstance(message, Mapping) and "id" in message and "method" not in message:
            raise ValueError("use post() for responses")
        resp = await self.post(message, headers)
        if self.messages_url is None or resp.status_code != 202:
            return Answer(resp.status_code, _body(resp))
        wanted = message.get("id") if isinstance(message, Mapping) else None
        if wanted is None:
            return Answer(resp.status_code, None)
        async with asyncio.timeout(timeout):
            while True:
                event = await self.events.get()
                if event.get("id") == wanted and "method" not in event:
                    return Answer(resp.status_code, event)

    def rpc(self, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": next(self.ids), "method": method}
        if params is not None:
            message["params"] = dict(params)
        return message


def _body(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    if resp.headers.get("content-type", "").startswith("text/event-stream"):
        events = [json.loads(line[5:]) for line in resp.text.splitlines() if line.startswith("data:")]
        return events[-1] if events else None
    try:
        return resp.json()
    except ValueError:
        return resp.text


@asynccontextmanager
async def open_session(front: Front, http: httpx.AsyncClient, token: str) -> AsyncIterator[RawSession]:
    """An initialized session with `front` (for legacy SSE, an open event stream read in the background)."""
    session = RawSession(front, http, token)
    if front.kind != "sse":
        resp = await session.post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT_PARAMS})
        assert resp.status_code == 200, resp.text
        session.session_id = resp.headers["mcp-session-id"]
        ack = await session.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert ack.status_code == 202, ack.text
        yield session
        return
    ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def read_stream() -> None:
        async with http.stream("GET", front.url, headers=session.headers()) as stream:
            assert stream.status_code == 200, await stream.aread()
            kind = ""
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:"):
                    data = line[5:].strip()
                    if kind == "endpoint" and not ready.done():
                        ready.set_result(data)
                    elif kind == "message":
                        session.events.put_nowait(json.loads(data))

    reader = asyncio.create_task(read_stream())
    try:
        async with asyncio.timeout(30):
            endpoint = await ready
        session.messages_url = front.gateway.base + endpoint
        answer = await session.request({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": INIT_PARAMS})
        assert answer.status == 202, answer.message
        await session.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        yield session
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await reader
