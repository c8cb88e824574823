"""The scale bench's load: many MCP sessions, each a user who logged in through the embedded authorization server
(real oidc-provider upstream, through HAProxy) and then, until told to stop, calls tools on the vMCP set (a stdio
backend and an HTTP one) and the `run` set, lists tools, and refreshes its token now and then.

Every operation is recorded (start, end, what, outcome); an outcome is `ok` or the kind of error. A tool call
carries a unique `text`, so the calls answered can be matched with the audit lines written."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from support.oauth_login import login, redeem, refresh, register

__all__ = ["Load", "Op", "SessionLost", "run_load"]

ACCEPT = "application/json, text/event-stream"
VERSION = "2025-06-18"
INIT = {"protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "scale-bench", "version": "1"}}
SESSION_GONE = -32001


@dataclass(frozen=True, slots=True)
class Op:
    start: float  # seconds since the load began
    end: float
    what: str  # e.g. "vmcp call local", "run list", "refresh", "login"
    outcome: str  # "ok" or the kind of error
    call_id: str | None = None  # the unique text of a tool call


@dataclass
class Load:
    """What the load generator saw."""

    ops: list[Op] = field(default_factory=list)
    sessions_lost: list[tuple[float, str, float]] = field(default_factory=list)  # (when, which set, opened when)
    sessions_opened: int = 0
    t0: float = 0.0
    setup_errors: list[str] = field(default_factory=list)

    def now(self) -> float:
        return time.monotonic() - self.t0


class SessionLost(Exception):
    pass


def _rpc(method: str, request_id: int, params: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        body["params"] = params
    return body


def _classify(exc: BaseException) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.ConnectError):
        return "connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "connection closed"
    return type(exc).__name__


def _outcome(response: httpx.Response) -> str:
    if response.request.method == "DELETE" and response.status_code in (200, 202, 204, 404):
        return "ok"
    if response.status_code == 404:
        return "session lost"
    if response.status_code != 200:
        return f"http {response.status_code}"
    text = response.text
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        data = [line[5:] for line in text.splitlines() if line.startswith("data:")]
        text = data[-1] if data else "{}"
    import json

    body = json.loads(text)
    if "error" in body:
        return f"jsonrpc {body['error'].get('code')}"
    if isinstance(body.get("result"), dict) and body["result"].get("isError"):
        return "tool error"
    return "ok"


class User:
    """One logged-in user with one MCP session on each set."""

    def __init__(self, index: int, http: httpx.AsyncClient, load: Load, vmcp_url: str, run_url: str) -> None:
        self.index = index
        self.http = http
        self.load = load
        self.urls = {"vmcp": vmcp_url, "run": run_url}
        self.sessions: dict[str, str | None] = {"vmcp": None, "run": None}
        self.opened: dict[str, float] = {"vmcp": 0.0, "run": 0.0}
        self.client_id = ""
        self.tokens: dict[str, Any] = {}
        self.ids = itertools.count(2)
        self.calls = itertools.count()

    def _headers(self, target: str) -> dict[str, str]:
        headers = {
            "authorization": f"Bearer {self.tokens['access_token']}",
            "accept": ACCEPT,
            "mcp-protocol-version": VERSION,
        }
        session = self.sessions[target]
        if session is not None:
            headers["mcp-session-id"] = session
        return headers

    async def _timed(self, what: str, request: Any, call_id: str | None = None) -> httpx.Response | None:
        start = self.load.now()
        try:
            response = await request
        except (httpx.HTTPError, OSError) as exc:
            self.load.ops.append(Op(start, self.load.now(), what, _classify(exc), call_id))
            return None
        outcome = _outcome(response) if response.request.url.path.endswith("/mcp") else _token_outcome(response)
        self.load.ops.append(Op(start, self.load.now(), what, outcome, call_id))
        return response

    async def log_in(self, client_id: str, base: str) -> None:
        self.client_id = client_id
        start = self.load.now()
        code, verifier = await login(base, client_id)
        answer = await redeem(self.http, base, client_id, code, verifier)
        self.load.ops.append(Op(start, self.load.now(), "login", _token_outcome(answer)))
        answer.raise_for_status()
        self.tokens = answer.json()

    async def refresh(self, base: str) -> None:
        answer = await self._timed("refresh", refresh(self.http, base, self.client_id, self.tokens["refresh_token"]))
        if answer is not None and answer.status_code == 200:
            self.tokens = answer.json()

    async def open(self, target: str) -> None:
        self.sessions[target] = None
        body = _rpc("initialize", 1, INIT)
        answer = await self._timed(
            f"{target} initialize", self.http.post(self.urls[target], json=body, headers=self._headers(target))
        )
        if answer is None or answer.status_code != 200:
            return
        self.sessions[target] = answer.headers.get("mcp-session-id")
        self.opened[target] = self.load.now()
        self.load.sessions_opened += 1
        note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await self.http.post(self.urls[target], json=note, headers=self._headers(target))

    async def request(self, target: str, what: str, body: dict[str, Any], call_id: str | None = None) -> None:
        if self.sessions[target] is None:
            await self.open(target)
            if self.sessions[target] is None:
                return
        answer = await self._timed(
            f"{target} {what}", self.http.post(self.urls[target], json=body, headers=self._headers(target)), call_id
        )
        if answer is not None and answer.status_code == 404:
            self.load.sessions_lost.append((self.load.now(), target, self.opened[target]))
            self.sessions[target] = None

    async def call(self, target: str, tool: str, label: str) -> None:
        call_id = f"c{self.index}-{next(self.calls)}"
        params = {"name": tool, "arguments": {"text": call_id}}
        await self.request(target, f"call {label}", _rpc("tools/call", next(self.ids), params), call_id)

    async def reopen(self, target: str) -> None:
        """End the session (DELETE) and open a new one, as a client does from time to time."""
        if self.sessions[target] is not None:
            await self._timed(f"{target} delete", self.http.delete(self.urls[target], headers=self._headers(target)))
        await self.open(target)

    async def list(self, target: str) -> None:
        await self.request(target, "list", _rpc("tools/list", next(self.ids)))


def _token_outcome(response: httpx.Response) -> str:
    if response.status_code == 200:
        return "ok"
    try:
        error = response.json().get("error", "")
    except ValueError:
        error = ""
    return f"token {response.status_code} {error}".rstrip()


async def _register(http: httpx.AsyncClient, base: str) -> str:
    """A dynamically registered client (retrying while registration is rate limited)."""
    for _ in range(50):
        answer = await register(http, base)
        if answer.status_code == 201:
            return str(answer.json()["client_id"])
        if answer.status_code != 429:
            raise RuntimeError(f"registration failed: {answer.status_code} {answer.text[:200]}")
        await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
    raise RuntimeError("registration still rate limited after 50 tries")


async def run_load(
    vmcp_url: str,
    run_url: str,
    *,
    sessions: int,
    stop: asyncio.Event,
    think: float,
    refresh_every: float,
    reopen_every: float,
    clients: int = 3,
    started: asyncio.Event | None = None,
    load: Load | None = None,
) -> Load:
    """Log `sessions` users in, then run their operations until `stop` is set; `started` is set when that part
    begins, and `load.t0` is its start (the logins are recorded at negative times)."""
    load = load or Load()
    base = run_url.removesuffix("/mcp")
    limits = httpx.Limits(max_connections=sessions * 2 + 10, max_keepalive_connections=sessions * 2 + 10)
    async with httpx.AsyncClient(timeout=10, limits=limits) as http:
        load.t0 = time.monotonic()
        client_ids = [await _register(http, base) for _ in range(min(clients, sessions))]
        users = [User(i, http, load, vmcp_url, run_url) for i in range(sessions)]
        logins = await asyncio.gather(
            *(u.log_in(client_ids[u.index % len(client_ids)], base) for u in users), return_exceptions=True
        )
        failed = [repr(e) for e in logins if isinstance(e, BaseException)]
        if failed:
            load.setup_errors.append(f"{len(failed)} of {sessions} logins failed, first: {failed[0]}")
            users = [u for u, e in zip(users, logins, strict=True) if not isinstance(e, BaseException)]
        await asyncio.gather(*(u.open(t) for u in users for t in ("vmcp", "run")))
        shift = load.now()  # restart the clock: the logins (and first initializes) happened before 0
        load.ops = [Op(op.start - shift, op.end - shift, op.what, op.outcome) for op in load.ops]
        load.t0 = time.monotonic()
        if started is not None:
            started.set()
        await asyncio.gather(*(_user_loop(u, base, stop, think, refresh_every, reopen_every) for u in users))
    return load


async def _user_loop(
    user: User, base: str, stop: asyncio.Event, think: float, refresh_every: float, reopen_every: float
) -> None:
    steps = (
        lambda: user.call("vmcp", "local_echo", "local"),
        lambda: user.call("vmcp", "remote_echo", "remote"),
        lambda: user.list("vmcp"),
        lambda: user.call("run", "echo", "remote"),
        lambda: user.list("run"),
    )
    # stagger the users so that refreshes and steps are spread over time
    await asyncio.sleep(think * (user.index % 10) / 10)
    next_refresh = time.monotonic() + refresh_every * (1 + user.index % 7 / 7)
    next_reopen = time.monotonic() + reopen_every * (1 + user.index % 5 / 5)
    for step in itertools.cycle(steps):
        if stop.is_set():
            return
        if time.monotonic() >= next_refresh:
            await user.refresh(base)
            next_refresh = time.monotonic() + refresh_every
        if time.monotonic() >= next_reopen:
            await user.reopen("vmcp")
            next_reopen = time.monotonic() + reopen_every
        await step()
        await asyncio.sleep(think)
