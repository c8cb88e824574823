"""The virtual MCP server when a backend fails: the pool's health state machine (a backend down is never reported or
routed as healthy until a check succeeds) and the circuit breaker (opened by the backend's own failures alone, one
trial call when half-open, closed by a success; one caller's credential failures count for nothing), driven the way
the front end drives a client session, with in-memory backends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hivegate.authn.oidc_config import OIDCConfig
from hivegate.backends.session import BackendSession
from hivegate.backends.transport import MessageHandler, Transport
from hivegate.core.jsonrpc import Message
from hivegate.core.principal import Principal
from hivegate.errors import BackendError, CredentialRefused
from hivegate.outgoing.caller import Caller
from hivegate.outgoing.credentials import OutgoingAuthError
from hivegate.vmcp.pool import BackendPool
from hivegate.vmcp.session import VirtualTransport
from hivegate.vmcp.spec import (
    BackendConfig,
    CircuitBreaker,
    FailureHandling,
    IncomingAuth,
    Operational,
    VMCPConfig,
)
from support.sinks import Sink

pytestmark = pytest.mark.anyio

THRESHOLD = 2  # failed calls in a row that open the circuit
OPEN_FOR = 0.2  # seconds the circuit stays open


class Backend:
    """One backend as a test steers it: `down` (unreachable), `failing` (its calls answered HTTP 502), `hold` (calls
    wait for it), `refuse` (callers, by token, whose credential fails: at every message, or at `tools/call` only)."""

    def __init__(self) -> None:
        self.down = False
        self.failing = False
        self.hold: asyncio.Event | None = None
        self.refuse: dict[str, BackendError] = {}
        self.refuse_calls_only = False
        self.calls = 0  # tools/call that reached it

    def transport(self) -> Transport:
        return _Wire(self)


class _Wire:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._on_message: MessageHandler | None = None
        self._closed = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()

    async def open(self, on_message: MessageHandler) -> None:
        if self._backend.down:
            raise BackendError("backend unreachable: ClientConnectorError")
        self._on_message = on_message

    async def send(self, message: Message, caller: Caller | None = None) -> None:
        b = self._backend
        method, rid = message.get("method"), message.get("id")
        # `caller`: whose credential goes with this message, as a remote transport sends it
        refused = b.refuse.get(caller.token or "") if caller is not None else None
        if refused is not None and (method == "tools/call" or not b.refuse_calls_only):
            raise refused
        if b.down:
            raise BackendError("backend unreachable: ClientConnectorError")
        if rid is None or method is None:
            return
        if method == "tools/call":
            if b.failing:
                raise BackendError("backend answered HTTP 502")
            b.calls += 1
            if b.hold is not None:
                task = asyncio.create_task(self._answer_when(b.hold, rid))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return
        self._answer(rid, method)

    async def _answer_when(self, released: asyncio.Event, rid: Any) -> None:
        await released.wait()
        self._answer(rid, "tools/call")

    def _answer(self, rid: Any, method: str) -> None:
        result: Any = {}
        if method == "initialize":
            result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                      "serverInfo": {"name": "alpha", "version": "1"}}  # fmt: skip
        elif method == "tools/list":
            result = {"tools": [{"name": "echo", "inputSchema": {"type": "object"}}]}
        elif method == "tools/call":
            result = {"content": [{"type": "text", "text": "ok"}]}
        assert self._on_message is not None
        self._on_message({"jsonrpc": "2.0", "id": rid, "result": result})

    async def wait_closed(self) -> str:
        await self._closed.wait()
        return "closed"

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._closed.set()


def pool_of(backend: Backend, **handling: Any) -> BackendPool:
    cfg = VMCPConfig(
        name="team",
        backends=(BackendConfig("alpha", "stdio", command="x"),),
        incoming_auth=IncomingAuth("anonymous", OIDCConfig(mode="anonymous")),
        operational=Operational(failure_handling=FailureHandling(partial_failure_mode="bestEffort", **handling)),
    )
    return BackendPool(cfg, {"alpha": backend.transport})


def breaker_pool(backend: Backend) -> BackendPool:
    return pool_of(backend, circuit_breaker=CircuitBreaker(enabled=True, failure_threshold=THRESHOLD, timeout=OPEN_FOR))


class Client:
    """One caller's session with the virtual MCP server, as the front end drives it."""

    def __init__(self, pool: BackendPool, token: str) -> None:
        self._pool = pool
        self.token = token
        self.caller = Caller(Principal(subject=token, issuer="https://idp", kind="jwt"), token)
        self.session = BackendSession(lambda: VirtualTransport(pool, name="team"), name="team")
        self._ids = 0

    async def start(self) -> Client:
        await self.session.start()
        await self.ask("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                      "clientInfo": {"name": "t", "version": "1"}})  # fmt: skip
        return self

    async def send(self, method: str, params: Any) -> tuple[Any, Sink]:
        self._ids += 1
        sink = Sink(streaming=False)
        message = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
        await self.session.request(message, sink, caller=self.caller)
        return self._ids, sink

    async def ask(self, method: str, params: Any) -> Message:
        _, sink = await self.send(method, params)
        async with asyncio.timeout(5):
            while not sink.items:
                sink.event.clear()
                await sink.event.wait()
        return sink.items[0]

    async def call(self) -> Message:
        return await self.ask("tools/call", {"name": "alpha_echo", "arguments": {}})

    async def cancel(self, rid: Any) -> None:
        cancel = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": rid}}
        await self.session.send(cancel, caller=self.caller)


def ok(answer: Message) -> bool:
    return answer.get("result") == {"content": [{"type": "text", "text": "ok"}]}


def circuit(pool: BackendPool) -> str:
    return str(pool.statuses["alpha"].view()["circuit"])


async def open_circuit(pool: BackendPool, backend: Backend, client: Client) -> None:
    backend.failing = True
    for _ in range(THRESHOLD):
        assert (await client.call())["error"]["message"] == "backend answered HTTP 502"
    backend.failing = False
    assert circuit(pool) == "open"


# -- health: a backend down is never healthy until a check succeeds ----------------------------------------------------


async def check(pool: BackendPool) -> tuple[str, int, bool]:
    """One health check: (state, consecutive failures, whether a call would be routed to it)."""
    await pool._check("alpha")
    status = pool.statuses["alpha"]
    return status.state, status.failures, pool.refusal("alpha") is None and pool.healthy_count() == 1


async def test_a_backend_down_at_start_up_stays_unhealthy_at_every_failed_check_until_one_succeeds() -> None:
    backend = Backend()
    backend.down = True
    pool = pool_of(backend, unhealthy_threshold=3)
    assert await pool.start() == ["alpha: backend unreachable: ClientConnectorError"]
    assert pool.statuses["alpha"].state == "unhealthy"
    for failures in range(2, 7):  # below the threshold, at it, and past it: never degraded, never routed
        assert await check(pool) == ("unhealthy", failures, False)
        assert pool.statuses["alpha"].view()["status"] == "unhealthy"
    backend.down = False
    assert await check(pool) == ("healthy", 0, True)
    await pool.close()


async def test_a_healthy_backend_failing_checks_is_degraded_and_routed_then_unhealthy_and_stays_so() -> None:
    backend = Backend()
    pool = pool_of(backend, unhealthy_threshold=3)
    assert await pool.start() == []
    backend.down = True
    assert await check(pool) == ("degraded", 1, True)  # still serving as far as anyone knows: still routed
    assert await check(pool) == ("degraded", 2, True)
    assert await check(pool) == ("unhealthy", 3, False)
    assert await check(pool) == ("unhealthy", 4, False)
    backend.down = False
    assert await check(pool) == ("healthy", 0, True)
    backend.down = True
    assert await check(pool) == ("degraded", 1, True)  # a new incident starts from healthy again
    await pool.close()


# -- the circuit breaker -----------------------------------------------------------------------------------------------


async def test_the_circuit_opens_after_threshold_failed_calls_and_refuses_without_asking_the_backend() -> None:
    backend = Backend()
    pool = breaker_pool(backend)
    await pool.start()
    client = await Client(pool, "b").start()
    assert ok(await client.call())
    backend.failing = True
    assert (await client.call())["error"]["message"] == "backend answered HTTP 502"
    assert circuit(pool) == "closed"  # one failure below the threshold
    assert (await client.call())["error"]["message"] == "backend answered HTTP 502"
    assert circuit(pool) == "open"
    backend.failing = False
    refused = await client.call()
    message = "backend 'alpha' is unavailable: circuit open after 2 failed calls"
    assert refused["error"] == {"code": -32000, "message": message}
    assert backend.calls == 1  # only the first call reached it
    await client.session.close()
    await pool.close()


async def test_a_success_resets_the_count_of_failed_calls() -> None:
    backend = Backend()
    pool = breaker_pool(backend)
    await pool.start()
    client = await Client(pool, "b").start()
    for _ in range(3):
        backend.failing = True
        assert "error" in await client.call()
        backend.failing = False
        assert ok(await client.call())
    assert circuit(pool) == "closed"
    await client.session.close()
    await pool.close()


async def test_a_half_open_circuit_lets_one_trial_through_and_its_success_closes_it() -> None:
    backend = Backend()
    pool = breaker_pool(backend)
    await pool.start()
    first, second = await Client(pool, "b").start(), await Client(pool, "c").start()
    await open_circuit(pool, backend, first)
    await asyncio.sleep(OPEN_FOR + 0.05)
    assert circuit(pool) == "half-open"
    backend.hold = asyncio.Event()
    _, trial = await first.send("tools/call", {"name": "alpha_echo", "arguments": {}})
    refused = await second.call()  # while the trial is in flight
    assert refused["error"]["message"] == "backend 'alpha' is unavailable: circuit half-open, a trial call is in flight"
    assert backend.calls == 1
    backend.hold.set()
    async with asyncio.timeout(5):
        await trial.event.wait()
    assert ok(trial.items[0])
    assert circuit(pool) == "closed"
    backend.hold = None
    assert ok(await second.call())
    await first.session.close()
    await second.session.close()
    await pool.close()


async def test_a_failed_trial_opens_the_circuit_again() -> None:
    backend = Backend()
    pool = breaker_pool(backend)
    await pool.start()
    client = await Client(pool, "b").start()
    await open_circuit(pool, backend, client)
    await asyncio.sleep(OPEN_FOR + 0.05)
    backend.failing = True
    assert (await client.call())["error"]["message"] == "backend answered HTTP 502"
    assert circuit(pool) == "open"
    assert "circuit open" in (await client.call())["error"]["message"]
    await client.session.close()
    await pool.close()


CREDENTIAL_FAILURES = {
    "sts-refused": OutgoingAuthError("token exchange refused by the STS: invalid_grant: subject token expired"),
    "backend-401": CredentialRefused("backend 'alpha' refused the gateway's credential (HTTP 401)"),
    "backend-403": CredentialRefused("backend 'alpha' refused the gateway's credential (HTTP 403)"),
}


@pytest.mark.parametrize("at", ["session-open", "call"])
@pytest.mark.parametrize("failure", list(CREDENTIAL_FAILURES))
async def test_one_callers_credential_failures_never_open_the_circuit_for_another(failure: str, at: str) -> None:
    backend = Backend()
    pool = breaker_pool(backend)
    await pool.start()
    a, b = Client(pool, "a"), Client(pool, "b")
    await a.start()
    await b.start()
    if at == "call":
        assert ok(await a.call())  # A's backend session is open: its credential fails on a later call
    backend.refuse = {"a": CREDENTIAL_FAILURES[failure]}
    backend.refuse_calls_only = at == "call"
    for _ in range(THRESHOLD * 3):
        refused = await a.call()
        assert refused["error"]["code"] == -32000
        assert str(CREDENTIAL_FAILURES[failure]) in refused["error"]["message"]  # A is told why
    assert circuit(pool) == "closed"
    assert pool.statuses["alpha"].call_failures == 0
    assert ok(await b.call())
    await a.session.close()
    await b.session.close()
    await pool.close()


async def test_a_half_open_trial_failing_for_its_callers_credential_leaves_the_trial_to_the_next_caller() -> None:
    backend = Backend()
    pool = breaker_pool(backend)
    await pool.start()
    a, b = await Client(pool, "a").start(), await Client(pool, "b").start()
    await open_circuit(pool, backend, b)
    await asyncio.sleep(OPEN_FOR + 0.05)
    backend.refuse = {"a": OutgoingAuthError("token exchange refused by the STS: invalid_grant: expired")}
    assert "token exchange refused" in (await a.call())["error"]["message"]
    assert circuit(pool) == "half-open"  # neither re-opened nor closed by it, and the trial slot is free again
    assert ok(await b.call())
    assert circuit(pool) == "closed"
    await a.session.close()
    await b.session.close()
    await pool.close()


async def test_a_half_open_trial_cancelled_by_its_client_frees_the_trial_slot() -> None:
    backend = Backend()
    pool = breaker_pool(backend)
    await pool.start()
    a, b = await Client(pool, "a").start(), await Client(pool, "b").start()
    await open_circuit(pool, backend, b)
    await asyncio.sleep(OPEN_FOR + 0.05)
    backend.hold = asyncio.Event()
    rid, _ = await a.send("tools/call", {"name": "alpha_echo", "arguments": {}})
    await a.cancel(rid)  # no answer will ever come for it
    backend.hold = None
    assert ok(await b.call())
    assert circuit(pool) == "closed"
    await a.session.close()
    await b.session.close()
    await pool.close()


async def test_calls_failed_by_their_client_session_closing_are_not_the_backends_failures() -> None:
    backend = Backend()
    pool = breaker_pool(backend)
    await pool.start()
    a, b = await Client(pool, "a").start(), await Client(pool, "b").start()
    assert ok(await a.call())
    backend.hold = asyncio.Event()
    for _ in range(THRESHOLD):
        await a.send("tools/call", {"name": "alpha_echo", "arguments": {}})
    await a.session.close()  # its in-flight calls end with the session
    assert pool.statuses["alpha"].call_failures == 0
    backend.hold = None
    assert ok(await b.call())
    await b.session.close()
    await pool.close()
