"""Outgoing authentication: a call whose exchanged token (RFC 8693) is cached, against an ``unauthenticated`` call.

    python benchmarks/outgoing_bench.py [--quick] [--only abc] [--json PATH] [--strict]

Issue target: a call whose exchanged token is cached costs <= 0.2 ms more than an ``unauthenticated`` call.

(a) Two ``hivegate run URL`` gateways in front of the same backend, both validating the callers' JWTs (a local
    issuer): one with no outgoing credential, one with ``--token-exchange-url/-client-id/-client-secret-file/
    -audience``, whose STS is a third hivegate (``hivegate run --auth-server-config``: the embedded authorization
    server with a static ``token_exchange`` client that trusts the local issuer as an ``oidc`` upstream).
(b) The same through two ``hivegate vmcp serve`` with ``outgoingAuth`` ``unauthenticated`` and ``tokenExchange``.
(c) In this process: ``ExchangedToken.headers()`` with the token cached against ``NoCredentials.headers()`` (the
    only work the token-exchange gateway adds to a cached call), and a miss (one exchange at the same STS).

For each: the backend (``fast_backend.py``'s answers, recording every ``Authorization`` header it receives) must get
the exchanged token (signed by the STS, for the backend's audience, naming the caller) from the token-exchange
gateway, nothing from the other, and never the caller's token; after the warm-up the STS must have granted exactly
one exchange per caller token, and none more during the measured calls. Then: tools/call latency at 1 connection
(the two gateways in alternating blocks A B B A ..., and interleaved call by call), tools/call/s at 8 sessions (one
caller each), the gateway process's CPU per call, and, for information, what a cache miss costs (a new caller's
first call). Every process listens on 127.0.0.1 and is stopped at the end, even on error.
"""

from __future__ import annotations

import argparse
import base64
import functools
import itertools
import json
import secrets
import statistics
import sys
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import aiohttp
import orjson

import loadgen
from common import LoadSettings, Report, begin, finish, print_report
from harness import HOST, Identity, ManagedProcess, Processes, cpu_seconds, free_port, wait_for_port
from run import check_auth_enforced, find_hivegate, fmt_ms, fmt_rate, handle_signals, run_benches, verdict
from vmcp_bench import Load, call_body, cli_problem, latency_blocks

TARGET_ADDED_MS = 0.2  # cached tokenExchange call minus unauthenticated call, p50 at 1 connection
STS_CLIENT_ID = "bench-gateway"
SECRET_ENV = "BENCH_STS_CLIENT_SECRET"
KINDS = ("none", "exchange")  # unauthenticated, tokenExchange
LABELS = {"none": "unauthenticated", "exchange": "tokenExchange (cached)"}


@dataclass
class Options(LoadSettings):
    blocks: int
    rounds: int
    sessions: int
    miss_samples: int
    hivegate: list[str] | None
    run_problem: str | None
    vmcp_problem: str | None


@dataclass
class Row:
    figure: str
    none: str
    exchange: str
    compare: str
    target: str
    verdict: str


# --------------------------------------------------------------------------- the backend (a separate process)


class RecordingBackend:
    """``fast_backend.py``'s answers, a new ``Mcp-Session-Id`` per ``initialize`` (a gateway binds a backend session
    to the caller that opened it), and a record of the ``Authorization`` header of every request to ``/mcp``
    (``GET /_bench/seen``; ``GET /_bench/reset?full=1`` clears it and also records every header until the next
    reset). Counting costs the same for both gateways: one pass over the request headers."""

    def __init__(self) -> None:
        self.authorization: Counter[str] = Counter()
        self.headers: set[tuple[str, str]] | None = None
        self.sessions = itertools.count(1)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        import fast_backend

        if scope["type"] != "http" or scope["path"] not in ("/mcp", "/_bench/seen", "/_bench/reset"):
            await fast_backend.app(scope, receive, send)
            return
        if scope["path"] == "/_bench/reset":
            query = parse_qs(scope["query_string"].decode())
            self.authorization.clear()
            self.headers = set() if query.get("full") == ["1"] else None
            await self._respond(send, 200, b"{}")
            return
        if scope["path"] == "/_bench/seen":
            seen = {"authorization": dict(self.authorization), "headers": sorted(self.headers or ())}
            await self._respond(send, 200, orjson.dumps(seen))
            return
        authorization = b""
        for key, value in scope["headers"]:
            if key == b"authorization":
                authorization = value
        self.authorization[authorization.decode("latin-1")] += 1
        if self.headers is not None:
            self.headers.update((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
        if scope["method"] != "POST":
            await fast_backend.app(scope, receive, send)  # DELETE: 200; anything else: 405
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            request = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            await self._respond(send, 400, b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse"}}')
            return
        if not isinstance(request, dict) or "id" not in request:
            await send({"type": "http.response.start", "status": 202, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        method = request.get("method")
        body = orjson.dumps({"jsonrpc": "2.0", "id": request["id"], "result": fast_backend.result_for(method)})
        extra = [(b"mcp-session-id", f"bench-{next(self.sessions)}".encode())] if method == "initialize" else []
        await self._respond(send, 200, body, extra)

    @staticmethod
    async def _respond(send: Any, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        headers = [(b"content-type", b"application/json"), *(extra or [])]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def serve_backend(port: int) -> None:
    import uvicorn

    uvicorn.run(
        RecordingBackend(),
        host=HOST,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )


# --------------------------------------------------------------------------- the shared set-up: backend, STS


@dataclass
class Backend:
    url: str
    base: str
    proc: ManagedProcess

    async def reset(self, *, full: bool = False) -> None:
        async with aiohttp.ClientSession() as http, http.get(f"{self.base}/_bench/reset?full={int(full)}") as resp:
            resp.raise_for_status()

    async def seen(self) -> tuple[dict[str, int], list[tuple[str, str]]]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.base}/_bench/seen") as resp:
            resp.raise_for_status()
            doc = await resp.json()
        return doc["authorization"], [tuple(pair) for pair in doc["headers"]]


@dataclass
class STS:
    issuer: str
    metrics_url: str
    secret: str
    secret_file: Path
    proc: ManagedProcess

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/oauth/token"

    async def exchanges(self) -> int:
        """Token exchanges the STS granted so far (``hivegate_token_grants_total``, from its /metrics)."""
        async with aiohttp.ClientSession() as http, http.get(self.metrics_url) as resp:
            text = await resp.text()
        total = 0.0
        for line in text.splitlines():
            exchange = 'grant_type="token_exchange"' in line and 'outcome="success"' in line
            if line.startswith("hivegate_token_grants_total{") and exchange:
                total += float(line.rsplit(" ", 1)[1])
        return round(total)

    async def jwks(self) -> dict[str, Any]:
        async with aiohttp.ClientSession() as http, http.get(f"{self.issuer}/.well-known/jwks.json") as resp:
            return dict(await resp.json())


@dataclass
class World:
    identity: Identity
    backend: Backend
    sts: STS


def start_backend(procs: Processes) -> Backend:
    proc, port = procs.start_listening("backend", [sys.executable, str(Path(__file__).resolve()), "--serve-backend"])
    base = f"http://{HOST}:{port}"
    return Backend(f"{base}/mcp", base, proc)


def start_sts(procs: Processes, opts: Options, identity: Identity, backend: Backend) -> STS:
    """``hivegate run --auth-server-config``: an embedded authorization server whose static client ``bench-gateway``
    may exchange tokens of the local issuer (its ``oidc`` upstream) for tokens with the backend's audience."""
    from joserfc.jwk import ECKey

    assert opts.hivegate is not None
    port, diagnostics = free_port(), free_port()
    issuer = f"http://{HOST}:{port}"
    key_file = procs.log_dir / "sts-signing.pem"
    key_file.write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    key_file.chmod(0o600)
    secret = secrets.token_urlsafe(24)
    secret_file = procs.log_dir / "sts-client-secret"
    secret_file.write_text(secret + "\n")
    secret_file.chmod(0o600)
    config = {
        "issuer": issuer,
        "signingKeySecretRefs": [{"file": str(key_file)}],
        "hmacSecretRefs": [{"env": "BENCH_STS_HMAC"}],
        "storage": {"type": "memory"},
        "allowedAudiences": [backend.url],
        "upstreamProviders": [
            {"name": "bench", "type": "oidc", "oidcConfig": {"issuerUrl": identity.issuer, "clientId": "bench-sts"}}
        ],
        "clients": [{"clientId": STS_CLIENT_ID, "grantTypes": ["token_exchange"],
                     "clientSecretRef": {"env": SECRET_ENV}}],
    }  # fmt: skip
    path = procs.log_dir / "sts-auth-server.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    argv = [*opts.hivegate, "run", "--foreground", "--name", "bench-sts", "--host", HOST, "--port", str(port)]
    argv += ["--auth-server-config", str(path), "--diagnostics-port", str(diagnostics), "--log-level", "warning"]
    env = {"BENCH_STS_HMAC": secrets.token_hex(32), SECRET_ENV: secret}
    proc = procs.start("sts", [*argv, backend.url], env=env)
    proc.wait_for_url(port, timeout=60)
    wait_for_port(diagnostics, timeout=30, proc=proc)
    return STS(issuer, f"http://{HOST}:{diagnostics}/metrics", secret, secret_file, proc)


# --------------------------------------------------------------------------- the gateways


@dataclass
class Target:
    url: str
    proc: ManagedProcess
    tool: str


def start_run(procs: Processes, opts: Options, world: World, kind: str) -> Target:
    """``hivegate run --foreground URL`` with JWT validation; ``exchange`` adds the ``--token-exchange-*`` flags."""
    assert opts.hivegate is not None
    port = free_port()
    argv = [*opts.hivegate, "run", "--foreground", "--name", f"out-{kind}", "--host", HOST, "--port", str(port)]
    argv += [*world.identity.gateway_args(), "--log-level", "warning"]
    if kind == "exchange":
        argv += ["--token-exchange-url", world.sts.token_url, "--token-exchange-client-id", STS_CLIENT_ID]
        argv += ["--token-exchange-client-secret-file", str(world.sts.secret_file)]
        argv += ["--token-exchange-audience", world.backend.url]
    proc = procs.start(f"run-{kind}", [*argv, world.backend.url])
    return Target(proc.wait_for_url(port, timeout=60), proc, "echo")


def start_vmcp(procs: Processes, opts: Options, world: World, kind: str) -> Target:
    """``hivegate vmcp serve`` with one backend (``b1``), OIDC incoming auth, and ``outgoingAuth`` by ``kind``."""
    assert opts.hivegate is not None
    identity = world.identity
    outgoing: dict[str, Any] = {"source": "inline", "default": {"type": "unauthenticated"}}
    if kind == "exchange":
        exchange = {"tokenUrl": world.sts.token_url, "clientId": STS_CLIENT_ID, "clientSecretEnv": SECRET_ENV,
                    "audience": world.backend.url}  # fmt: skip
        outgoing["backends"] = {"b1": {"type": "tokenExchange", "tokenExchange": exchange}}
    config = {
        "name": f"out-{kind}",
        "backends": [{"name": "b1", "url": world.backend.url, "transport": "streamable-http"}],
        "incomingAuth": {
            "type": "oidc",
            "oidc": {
                "issuer": identity.issuer,
                "audience": identity.audience,
                "jwksUrl": identity.jwks_url,
                "insecureAllowHttp": True,
                "protectedResourceAllowPrivateIp": True,
            },
        },
        "outgoingAuth": outgoing,
        "aggregation": {"conflictResolution": "prefix"},
        # No health checks during the run: the unauthenticated pool checks by listing the backend (requests without
        # Authorization in the middle of the checks and the measurements), a caller-scoped one by a TCP connect.
        "operational": {"failureHandling": {"healthCheckInterval": "1h"}},
    }
    path = procs.log_dir / f"vmcp-{kind}.yaml"
    path.write_text(json.dumps(config, indent=2))
    port = free_port()
    argv = [*opts.hivegate, "vmcp", "serve", "--config", str(path), "--host", HOST, "--port", str(port)]
    proc = procs.start(f"vmcp-{kind}", [*argv, "--log-level", "warning"], env={SECRET_ENV: world.sts.secret})
    return Target(proc.wait_for_url(port, timeout=120), proc, "b1_echo")


# --------------------------------------------------------------------------- checks


def check_result(answer: dict[str, Any], where: str) -> None:
    """A tools/call answer must be the backend's (``ok``), not a tool error."""
    result = answer["result"]
    if result.get("isError") or result.get("content", [{}])[0].get("text") != "ok":
        raise RuntimeError(f"{where}: unexpected tools/call result {result}")


def claims_of(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def verify_exchanged(token: str, jwks: dict[str, Any], sts: STS, backend: Backend) -> dict[str, Any]:
    """The claims of a token the backend received, once its signature verifies with the STS's keys and it is for the
    backend, from the STS, acting for a caller through the gateway's client."""
    from joserfc import jwt
    from joserfc.jwk import KeySet

    decoded = jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["ES256", "RS256", "EdDSA"])
    claims = dict(decoded.claims)
    problems = []
    if claims.get("iss") != sts.issuer:
        problems.append(f"iss {claims.get('iss')!r}")
    if claims.get("aud") != backend.url and backend.url not in (claims.get("aud") or []):
        problems.append(f"aud {claims.get('aud')!r}")
    if claims.get("act") != {"sub": STS_CLIENT_ID}:
        problems.append(f"act {claims.get('act')!r}")
    if int(claims.get("exp", 0)) <= time.time():
        problems.append("expired")
    if problems:
        raise RuntimeError(f"the backend received a token that is not the STS's exchanged token: {', '.join(problems)}")
    return claims


async def audit_backend(
    world: World, callers: dict[str, str], jwks: dict[str, Any], where: str
) -> tuple[int, int, dict[str, int]]:
    """What reached the backend since its last reset: (requests without Authorization, requests with an exchanged
    token, requests per caller subject). Raises when anything else arrived, or a caller's token did."""
    authorization, headers = await world.backend.seen()
    for token in callers.values():
        if any(token in value for value in authorization) or any(token in value for _, value in headers):
            raise RuntimeError(f"{where}: a caller's own token reached the backend")
    bare, exchanged, by_subject = 0, 0, Counter[str]()
    for value, count in authorization.items():
        if not value:
            bare += count
            continue
        scheme, _, token = value.partition(" ")
        if scheme != "Bearer" or not token:
            raise RuntimeError(f"{where}: the backend received an unexpected Authorization header ({value[:30]}...)")
        claims = verify_exchanged(token, jwks, world.sts, world.backend)
        if claims["sub"] not in callers:
            raise RuntimeError(f"{where}: an exchanged token for an unknown subject {claims['sub']!r}")
        exchanged += count
        by_subject[claims["sub"]] += count
    return bare, exchanged, dict(by_subject)


async def sanity(world: World, targets: dict[str, Target], part: str, report: Report[Row]) -> dict[str, str]:
    """Before anything is measured: JWT validation on in both gateways, a tools/call works through each, and the
    backend sees the exchanged token (and only it) from the token-exchange gateway, nothing from the other."""
    callers = {f"{part}-sanity": world.identity.mint(f"{part}-sanity")}
    token = callers[f"{part}-sanity"]
    jwks = await world.sts.jwks()
    for kind, target in targets.items():
        report.notes.append(f"({part}) {LABELS[kind]}: {await check_auth_enforced(target.url, None)}")
    for kind, target in targets.items():
        await world.backend.reset(full=True)
        sid = (await loadgen.open_sessions(target.url, token, 1))[0]
        status, content_type, body = await loadgen.probe(
            target.url, loadgen.request_headers(token, sid), call_body(target.tool)(1)
        )
        if status != 200:
            raise RuntimeError(f"({part}) sanity tools/call through {LABELS[kind]}: HTTP {status}: {body[:300]!r}")
        check_result(loadgen.parse_rpc_body(content_type, body, 1), f"({part}) {LABELS[kind]}")
        await loadgen.close_sessions(target.url, token, [sid])
        bare, exchanged, by_subject = await audit_backend(world, callers, jwks, f"({part}) {LABELS[kind]}")
        if kind == "none" and exchanged:
            raise RuntimeError(f"({part}) the unauthenticated gateway sent the backend a token")
        if kind == "exchange" and (bare or not by_subject):
            raise RuntimeError(f"({part}) the token-exchange gateway sent {bare} requests without the exchanged token")
        if kind == "exchange":
            authorization, _ = await world.backend.seen()
            claims = claims_of(next(v for v in authorization if v).partition(" ")[2])
            report.notes.append(
                f"({part}) the backend received from the token-exchange gateway only `Bearer <exchanged>`: signed by "
                f"the STS, iss {claims['iss']}, aud {claims['aud']}, sub {claims['sub']}, act {claims['act']}; "
                "from the unauthenticated one no Authorization; the caller's token in no header of either"
            )
    await world.backend.reset()
    return callers


# --------------------------------------------------------------------------- measurements


@dataclass
class FirstCall:
    """A new caller (a token never seen): its handshake and first tools/call, then a second tools/call (ms)."""

    initialize_ms: float
    first_call_ms: float
    second_call_ms: float

    @property
    def total_ms(self) -> float:
        return self.initialize_ms + self.first_call_ms


async def first_call(session: aiohttp.ClientSession, target: Target, token: str) -> FirstCall:
    start = time.perf_counter()
    sid = await loadgen.mcp_initialize(session, target.url, token)
    initialized = time.perf_counter()
    headers = loadgen.request_headers(token, sid)
    answer, _ = await loadgen.post_rpc(session, target.url, headers, call_body(target.tool)(1), 1)
    called = time.perf_counter()
    check_result(answer, "first call")
    answer, _ = await loadgen.post_rpc(session, target.url, headers, call_body(target.tool)(2), 2)
    again = time.perf_counter()
    check_result(answer, "second call")
    await loadgen.mcp_close(session, target.url, token, sid)
    ms = [(b - a) * 1000 for a, b in ((start, initialized), (initialized, called), (called, again))]
    return FirstCall(*ms)


async def cache_misses(
    world: World, targets: dict[str, Target], part: str, count: int, callers: dict[str, str]
) -> dict[str, list[FirstCall]]:
    """``count`` new callers, each through both gateways in turn (alternating which goes first), on warm keep-alive
    connections. Both gateways verify the new JWT; only the token-exchange one also asks the STS."""
    results: dict[str, list[FirstCall]] = {kind: [] for kind in targets}
    timeout = aiohttp.ClientTimeout(total=30)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), timeout=timeout) as s1,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1), timeout=timeout) as s2,
    ):
        sessions = dict(zip(targets, (s1, s2), strict=True))
        warm = world.identity.mint(f"{part}-miss-warm")
        callers[f"{part}-miss-warm"] = warm
        for kind, target in targets.items():  # open the connections, warm the code paths
            for _ in range(3):
                await first_call(sessions[kind], target, warm)
        for i in range(count):
            subject = f"{part}-new-{i}"
            token = callers[subject] = world.identity.mint(subject)
            order = list(targets) if i % 2 == 0 else list(reversed(targets))
            for kind in order:
                results[kind].append(await first_call(sessions[kind], targets[kind], token))
    return results


async def sts_round_trip(world: World, count: int, callers: dict[str, str], part: str) -> float:
    """Median time of one token exchange asked of the STS directly (new subject tokens; keep-alive connection)."""
    samples = []
    basic = base64.b64encode(f"{STS_CLIENT_ID}:{world.sts.secret}".encode()).decode()
    auth = {"Authorization": f"Basic {basic}"}
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        for i in range(count + 2):
            subject = f"{part}-sts-{i}"
            token = callers[subject] = world.identity.mint(subject)
            form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": token,
                    "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
                    "audience": world.backend.url}  # fmt: skip
            start = time.perf_counter()
            async with http.post(world.sts.token_url, data=form, headers=auth) as resp:
                doc = await resp.json()
                if resp.status != 200 or "access_token" not in doc:
                    raise RuntimeError(f"STS refused a direct exchange: HTTP {resp.status} {doc}")
            if i >= 2:  # the first two open the connection
                samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


async def measured_load(
    target: Target, headers: list[dict[str, str]], duration: float, sts_pid: int
) -> tuple[loadgen.ThroughputStats, float, float]:
    """One worker per session for ``duration``; the stats, and the CPU seconds of the gateway and of the STS."""
    before, sts_before = cpu_seconds([target.proc.pid]), cpu_seconds([sts_pid])
    stats = await loadgen.http_load(target.url, headers, duration, call_body(target.tool), "aiohttp loadgen")
    return stats, cpu_seconds([target.proc.pid]) - before, cpu_seconds([sts_pid]) - sts_before


def block_value(runs: list[loadgen.LatencyStats], pct: str) -> float:
    """p50 and p90: the mean of the blocks' values; p99: the worst block's."""
    values = [getattr(stats, f"{pct}_ms") for stats in runs]
    return max(values) if pct == "p99" else statistics.fmean(values)


async def compare(opts: Options, world: World, part: str, targets: dict[str, Target], report: Report[Row]) -> None:
    """Everything for one pair of gateways: checks, cache misses, warm-up, latency, throughput, final audit."""
    sts_start = await world.sts.exchanges()
    callers = await sanity(world, targets, part, report)
    jwks = await world.sts.jwks()
    exchanged_tokens = {callers[f"{part}-sanity"]}  # caller tokens the token-exchange gateway has seen

    misses = await cache_misses(world, targets, part, opts.miss_samples, callers)
    exchanged_tokens.update(token for subject, token in callers.items() if "-new-" in subject or "-miss-" in subject)
    direct_ms = await sts_round_trip(world, 10 if opts.quick else 20, callers, part)
    sts_direct = sum(1 for subject in callers if "-sts-" in subject)

    # The measured callers: one for the sequential client, one per load session.
    subjects = [f"{part}-user-{i}" for i in range(opts.sessions)]
    for subject in subjects:
        callers[subject] = world.identity.mint(subject)
    exchanged_tokens.update(callers[s] for s in subjects)
    opened: dict[str, list[str | None]] = {}
    try:
        for kind, target in targets.items():
            opened[kind] = [(await loadgen.open_sessions(target.url, callers[s], 1))[0] for s in subjects]
        headers = {
            kind: [loadgen.request_headers(callers[s], sid) for s, sid in zip(subjects, sids, strict=True)]
            for kind, sids in opened.items()
        }
        for kind, target in targets.items():  # warm-up: every session, every code path, the caches
            stats, _, _ = await measured_load(target, headers[kind], opts.warmup, world.sts.proc.pid)
            if stats.errors or not stats.ok:
                problem = f"{stats.errors} errors, first: {stats.first_error}"
                raise RuntimeError(f"({part}) warm-up through {LABELS[kind]}: {problem}")
        warmed = await world.sts.exchanges() - sts_start
        expected = len(exchanged_tokens) + sts_direct
        if warmed != expected:
            raise RuntimeError(
                f"({part}) the STS granted {warmed} exchanges for {len(exchanged_tokens)} caller tokens seen by the "
                f"token-exchange gateway (+{sts_direct} asked directly): the cache does not work as expected"
            )
        await world.backend.reset()
        sts_cpu_before = cpu_seconds([world.sts.proc.pid])
        single = {kind: hdrs[0] for kind, hdrs in headers.items()}  # caller user-0, its session
        urls = {kind: t.url for kind, t in targets.items()}
        bodies = {kind: call_body(t.tool) for kind, t in targets.items()}
        blocks = await latency_blocks(urls, single, bodies, opts.latency_seconds, opts.blocks)
        paired = await loadgen.paired_latency_run(
            {kind: (targets[kind].url, single[kind]) for kind in targets},
            loadgen.tools_call,
            100,
            1_000_000,
            opts.latency_seconds / 2,
            bodies=bodies,
        )
        loads = {kind: Load() for kind in targets}
        for round_ in range(opts.rounds):  # alternate the order, so drift favours neither
            for kind in list(targets) if round_ % 2 == 0 else list(reversed(targets)):
                stats, cpu, _ = await measured_load(targets[kind], headers[kind], opts.duration, world.sts.proc.pid)
                loads[kind].add(stats, cpu)
        sts_cpu = cpu_seconds([world.sts.proc.pid]) - sts_cpu_before
        during = await world.sts.exchanges() - sts_start - warmed
        bare, exchanged, by_subject = await audit_backend(world, callers, jwks, f"({part}) measured calls")
    finally:
        for kind, sids in opened.items():
            tokens = [callers[s] for s in subjects]
            for sid, token in zip(sids, tokens, strict=False):
                await loadgen.close_sessions(targets[kind].url, token, [sid])
    if during:
        report.errors.append(f"({part}) the STS granted {during} exchanges during the measured calls (cache misses)")
    if set(by_subject) != set(subjects):
        report.errors.append(f"({part}) exchanged tokens reached the backend for {sorted(by_subject)}, not {subjects}")

    # ---- rows
    n = min(sum(s.count for s in runs) for runs in blocks.values())
    for pct in ("p50", "p90", "p99"):
        none_ms, exch_ms = block_value(blocks["none"], pct), block_value(blocks["exchange"], pct)
        diff = exch_ms - none_ms
        target = pct == "p50"
        report.rows.append(
            Row(
                f"({part}) tools/call {pct}, 1 conn, {opts.blocks} blocks A B B A.. (n>={n} each)",
                fmt_ms(none_ms),
                fmt_ms(exch_ms),
                f"{diff:+.3f} ms ({exch_ms / none_ms:.2f}x)",
                f"<= +{TARGET_ADDED_MS:g} ms" if target else "-",
                verdict(diff <= TARGET_ADDED_MS) if target else "-",
            )
        )
    block_diffs = [x.p50_ms - u.p50_ms for u, x in zip(blocks["none"], blocks["exchange"], strict=True)]
    spread = [s.p50_ms for runs in blocks.values() for s in runs]
    report.notes.append(
        f"({part}) p50 per pair of adjacent blocks, tokenExchange minus unauthenticated: median "
        f"{statistics.median(block_diffs):+.3f} ms, from {min(block_diffs):+.3f} to {max(block_diffs):+.3f} ms "
        f"(the blocks' p50s themselves range over {min(spread):.3f}-{max(spread):.3f} ms: the machine's noise)"
    )
    p_none, p_exch = paired["none"], paired["exchange"]
    report.rows.append(
        Row(
            f"({part}) tools/call p50, 1 conn, interleaved call by call (n={p_none.count})",
            fmt_ms(p_none.p50_ms),
            fmt_ms(p_exch.p50_ms),
            f"{p_exch.p50_ms - p_none.p50_ms:+.3f} ms",
            "-",
            "-",
        )
    )
    l_none, l_exch = loads["none"], loads["exchange"]
    ratio = l_exch.per_second / l_none.per_second if l_none.per_second else float("nan")
    report.rows.append(
        Row(
            f"({part}) tools/call/s, {opts.sessions} sessions x 1, a caller each ({opts.rounds} x {opts.duration:g} s)",
            fmt_rate(l_none.per_second),
            fmt_rate(l_exch.per_second),
            f"{ratio:.2f}x",
            "-",
            "-",
        )
    )
    c_none, c_exch = l_none.cpu_us, l_exch.cpu_us
    report.rows.append(
        Row(
            f"({part}) CPU per call, gateway process, {opts.sessions} sessions",
            "n/a" if c_none is None else f"{c_none:.0f} us",
            "n/a" if c_exch is None else f"{c_exch:.0f} us",
            "n/a" if c_none is None or c_exch is None else f"{c_exch - c_none:+.0f} us",
            "-",
            "-",
        )
    )
    m_none, m_exch = misses["none"], misses["exchange"]
    # The cache miss (with the worst difference), then the same callers' next call: per-caller differences.
    for figure, what, target, worst in (
        (f"new caller: handshake + first tools/call (cache miss), median of {len(m_none)}", "total_ms", "info", True),
        ("same callers' second tools/call (cached), median", "second_call_ms", "-", False),
    ):
        diffs = [getattr(x, what) - getattr(u, what) for u, x in zip(m_none, m_exch, strict=True)]
        report.rows.append(
            Row(
                f"({part}) {figure}",
                fmt_ms(statistics.median(getattr(c, what) for c in m_none)),
                fmt_ms(statistics.median(getattr(c, what) for c in m_exch)),
                f"{statistics.median(diffs):+.3f} ms" + (f" (max {max(diffs):+.3f})" if worst else ""),
                target,
                "-",
            )
        )
    where = "initialize" if part == "a" else "first tools/call"
    report.notes.append(
        f"({part}) cache miss: the exchange happens on a new caller's first request to the backend ({where}); "
        f"medians: initialize {statistics.median(c.initialize_ms for c in m_none):.3f} vs "
        f"{statistics.median(c.initialize_ms for c in m_exch):.3f} ms, first tools/call "
        f"{statistics.median(c.first_call_ms for c in m_none):.3f} vs "
        f"{statistics.median(c.first_call_ms for c in m_exch):.3f} ms; one exchange asked of the STS directly "
        f"(aiohttp, keep-alive): {direct_ms:.3f} ms median"
    )
    report.notes.append(
        f"({part}) STS: {warmed} exchanges granted for {len(exchanged_tokens)} distinct caller tokens through the "
        f"token-exchange gateway (+{sts_direct} asked directly) before measuring, {during} during the measured "
        f"calls (STS CPU meanwhile {sts_cpu * 1000:.0f} ms); the backend received {exchanged} requests with an "
        f"exchanged token ({len(by_subject)} subjects) and {bare} without Authorization, the callers' tokens never"
    )
    for kind, load in loads.items():
        if load.errors:
            report.errors.append(f"({part}) {LABELS[kind]}: {load.errors} failed calls, first: {load.first_error}")
    report.raw[part] = {
        "latency_blocks": {kind: [asdict(s) for s in runs] for kind, runs in blocks.items()},
        "latency_paired": {kind: asdict(s) for kind, s in paired.items()},
        "load": {kind: {**asdict(load), "per_second": load.per_second} for kind, load in loads.items()},
        "cache_miss": {kind: [asdict(c) for c in calls] for kind, calls in misses.items()},
        "sts_direct_ms": direct_ms,
        "sts_exchanges": {"before_measuring": warmed, "during": during, "caller_tokens": len(exchanged_tokens)},
        "backend": {"bare": bare, "exchanged": exchanged, "by_subject": by_subject},
    }


# --------------------------------------------------------------------------- (a), (b), (c)


async def bench_run(opts: Options, procs: Processes, world: World, report: Report[Row]) -> None:
    if opts.run_problem is not None:
        raise RuntimeError(opts.run_problem)
    targets = {kind: start_run(procs, opts, world, kind) for kind in KINDS}
    await compare(opts, world, "a", targets, report)


async def bench_vmcp(opts: Options, procs: Processes, world: World, report: Report[Row]) -> None:
    if opts.vmcp_problem is not None:
        raise RuntimeError(opts.vmcp_problem)
    targets = {kind: start_vmcp(procs, opts, world, kind) for kind in KINDS}
    await compare(opts, world, "b", targets, report)


async def bench_inprocess(opts: Options, procs: Processes, world: World, report: Report[Row]) -> None:
    """What the token-exchange gateway does more per call, alone: ``ExchangedToken.headers()`` with the token cached
    (after one real exchange at the STS) against ``NoCredentials.headers()``, each followed by the reverse proxy's
    conversion of the headers to bytes. Timed in this process, so the machine's noise between processes is out."""
    from hivegate.core.principal import Principal
    from hivegate.httpclient.guard import GuardedHTTPClient
    from hivegate.outgoing.caller import Caller
    from hivegate.outgoing.credentials import ExchangedToken, NoCredentials, caller_token

    token = world.identity.mint("c-inprocess")
    caller = Caller(Principal("c-inprocess", world.identity.issuer, "jwt"), token)
    http = GuardedHTTPClient(allow_http=True, allow_private=True, timeout=10.0)
    exchanged = ExchangedToken(
        token_url=world.sts.token_url,
        http=http,
        subject=caller_token(),
        client_id=STS_CLIENT_ID,
        client_secret=world.sts.secret,
        audience=world.backend.url,
    )
    credentials = {"none": NoCredentials(), "exchange": exchanged}
    try:
        start = time.perf_counter()
        first = await exchanged.headers(caller)  # the miss: one exchange at the STS
        miss_ms = (time.perf_counter() - start) * 1000
        if exchanged.exchanges != 1 or not first.get("Authorization", "").startswith("Bearer "):
            raise RuntimeError(f"(c) the first headers() made {exchanged.exchanges} exchanges: {list(first)}")
        loops, repeats = (2_000, 10) if opts.quick else (5_000, 20)
        per_call_us: dict[str, list[float]] = {kind: [] for kind in credentials}
        for _ in range(repeats):
            for kind, cred in credentials.items():
                start = time.perf_counter()
                for _ in range(loops):
                    extra = await cred.headers(caller)
                    [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in extra.items()]
                per_call_us[kind].append((time.perf_counter() - start) / loops * 1e6)
        if exchanged.exchanges != 1:
            raise RuntimeError(f"(c) {exchanged.exchanges} exchanges for one caller token: the cache missed")
        warm_misses = []  # new callers once the connection to the STS is open
        for i in range(10 if opts.quick else 20):
            other = world.identity.mint(f"c-inprocess-{i}")
            other_caller = Caller(Principal(f"c-inprocess-{i}", world.identity.issuer, "jwt"), other)
            start = time.perf_counter()
            await exchanged.headers(other_caller)
            warm_misses.append((time.perf_counter() - start) * 1000)
        if exchanged.exchanges != 1 + len(warm_misses):
            raise RuntimeError(f"(c) {exchanged.exchanges} exchanges for {1 + len(warm_misses)} caller tokens")
    finally:
        await http.aclose()
    none_us, exch_us = (statistics.median(per_call_us[kind]) for kind in ("none", "exchange"))
    report.rows.append(
        Row(
            f"(c) outgoing credential per call, in-process (+ header bytes), median of {repeats} x {loops:,}",
            f"{none_us:.2f} us",
            f"{exch_us:.2f} us",
            f"{exch_us - none_us:+.2f} us",
            f"<= +{TARGET_ADDED_MS * 1000:g} us",
            verdict((exch_us - none_us) / 1000 <= TARGET_ADDED_MS),
        )
    )
    report.rows.append(
        Row(
            f"(c) a miss in-process: ExchangedToken.headers() for a new caller, median of {len(warm_misses)}",
            "-",
            fmt_ms(statistics.median(warm_misses)),
            f"max {max(warm_misses):.3f} ms",
            "info",
            "-",
        )
    )
    report.notes.append(
        f"(c) in this process: the very first ExchangedToken.headers() took {miss_ms:.2f} ms (one exchange, a new "
        f"HTTP client and connection to the STS); then 1 exchange in all for {repeats * loops:,} cached calls, and "
        "one per new caller"
    )
    report.raw["c"] = {"per_call_us": per_call_us, "first_miss_ms": miss_ms, "warm_misses_ms": warm_misses}


# --------------------------------------------------------------------------- main


def print_table(opts: Options, report: Report[Row], elapsed: float) -> None:
    context = [
        "(a) hivegate run URL, (b) hivegate vmcp serve; JWT validation on; same backend; STS: hivegate run with",
        "    --auth-server-config (RFC 8693 token_exchange client); load: aiohttp in this process",
    ]
    title = f"hivegate outgoing auth benchmark — {'quick' if opts.quick else 'full'} mode"
    header = ["figure", LABELS["none"], LABELS["exchange"], "difference", "target", "result"]
    print_report(title, context, header, report, elapsed)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="tokenExchange (cached) vs unauthenticated outgoing auth.")
    parser.add_argument("--quick", action="store_true", help="shorter runs (about half the time)")
    parser.add_argument("--only", default="abc", help="(a) run, (b) vmcp serve, (c) in-process (default: abc)")
    parser.add_argument("--duration", type=float, help="seconds per throughput run (default 2)")
    parser.add_argument("--sessions", type=int, default=8, help="concurrent sessions, one caller each (default 8)")
    parser.add_argument("--gateway-cmd", help="command that runs the hivegate CLI (default: the venv's `hivegate`)")
    parser.add_argument("--json", type=Path, help="also write every figure as JSON to this path")
    parser.add_argument("--strict", action="store_true", help="exit 2 if the target is missed")
    parser.add_argument("--serve-backend", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.serve_backend is not None:
        serve_backend(args.serve_backend)
        return 0
    handle_signals()
    hivegate = find_hivegate(args.gateway_cmd)
    opts = Options(
        quick=args.quick,
        duration=args.duration or 2.0,
        warmup=1.0 if args.quick else 2.0,
        latency_seconds=4.0 if args.quick else 8.0,
        blocks=4 if args.quick else 8,
        rounds=2 if args.quick else 4,
        sessions=args.sessions,
        miss_samples=10 if args.quick else 20,
        hivegate=hivegate,
        run_problem=cli_problem(hivegate, "run"),
        vmcp_problem=cli_problem(hivegate, "vmcp", "serve"),
    )
    report: Report[Row] = Report()
    started = begin(report)
    benches = {"a": bench_run, "b": bench_vmcp, "c": bench_inprocess}
    with Processes() as procs:
        print(f"logs: {procs.log_dir}", file=sys.stderr)
        try:
            if opts.run_problem is not None:
                raise RuntimeError(f"the STS needs `hivegate run`: {opts.run_problem}")
            identity = Identity.start(procs)
            backend = start_backend(procs)
            world = World(identity, backend, start_sts(procs, opts, identity, backend))
        except Exception as exc:
            report.errors.append(f"set-up: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            world = None
        if world is not None:
            jobs = {key: functools.partial(bench, opts, procs, world, report) for key, bench in benches.items()}
            run_benches(procs, jobs, args.only, report.errors)
    return finish(print_table, opts, report, started, json_path=args.json, strict=args.strict)


if __name__ == "__main__":
    sys.exit(main())
