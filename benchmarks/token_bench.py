"""Token endpoint throughput of the embedded authorization server, through a running `hivegate run` with SQLite.

    python benchmarks/token_bench.py [--codes 2000] [--introspections 20000] [--concurrency 16] [--key rsa|ec]

Authorization codes are made the way a login makes them (the flow service with a stand-in upstream) in the same
SQLite file the gateway uses; then the gateway redeems them over HTTP (`authorization_code` grant: PKCE check,
one-time redemption, JWT signing, refresh token), and the refresh tokens it returned are refreshed (rotation with
reuse detection). Then a confidential static client (`grantTypes: [token_exchange]`, a backend) exchanges every
refreshed access token (RFC 8693: subject signature and revocation check, JWT signing) and introspects 100 of them
over and over (RFC 7662, cached answers: the revocation check still runs). Also: the cost of checking the gateway's
own tokens against any other JWT (first sight and cached). Targets from the issue: >= 300 code exchanges/s,
>= 500 refreshes/s, >= 500 token exchanges/s and >= 2,000 cached introspections/s on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
from joserfc.jwk import ECKey, RSAKey

from hivegate.authn.authenticators import BearerAuthenticator
from hivegate.authn.introspection import basic_auth
from hivegate.authn.jwks import StaticKeys
from hivegate.authn.jwt import JWTVerifier
from hivegate.authserver.clients import Client
from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.pkce import challenge_of
from hivegate.authserver.revocation import RECHECK, Revocations
from hivegate.authserver.service import AuthorizationServer, Params, Redirect
from hivegate.authserver.settings import load_auth_server_config
from hivegate.authserver.upstream.base import UpstreamIdentity, UpstreamTokens
from hivegate.storage.sqlite import SQLiteStore

BENCH_DIR = Path(__file__).resolve().parent
VERIFIER = "v" * 64
REDIRECT = "http://127.0.0.1:9/callback"
CODES_PER_S, REFRESHES_PER_S, EXCHANGES_PER_S, INTROSPECTIONS_PER_S = 300.0, 500.0, 500.0, 2000.0
BACKEND, BACKEND_SECRET = "backend", "bench-backend-secret-0123456789"
EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS = "urn:ietf:params:oauth:token-type:access_token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class StandInUpstream:
    name = "corp"

    async def authorization_url(self, *, state: str, code_challenge: str, nonce: str, redirect_uri: str) -> str:
        return f"https://idp.invalid/authorize?state={state}"

    async def exchange_code(
        self, code: str, *, code_verifier: str, nonce: str, redirect_uri: str
    ) -> tuple[UpstreamTokens, UpstreamIdentity]:
        claims = {"sub": "alice", "groups": ["mcp-developers"]}
        return UpstreamTokens("upstream-at", refresh_token="upstream-rt"), UpstreamIdentity(
            "alice", "Alice", None, claims
        )

    async def refresh(self, refresh_token: str) -> tuple[UpstreamTokens, UpstreamIdentity | None]:
        return UpstreamTokens("upstream-at-2"), None

    async def aclose(self) -> None:
        pass


class StaticClients:
    def __init__(self, client: Client) -> None:
        self._client = client

    async def get(self, client_id: str) -> Client | None:
        return self._client if client_id == self._client.client_id else None

    async def register(self, metadata: Any, *, remote: str) -> tuple[Client, dict[str, Any]]:
        raise NotImplementedError


def write_config(tmp: Path, port: int, key: str) -> Path:
    pem = (
        RSAKey.generate_key(2048).as_pem(private=True)
        if key == "rsa"
        else ECKey.generate_key("P-256").as_pem(private=True)
    )
    (tmp / "signing.pem").write_bytes(pem)
    (tmp / "hmac.key").write_text("b" * 48)
    (tmp / "backend.secret").write_text(BACKEND_SECRET)
    config = tmp / "as.yaml"
    config.write_text(
        f"""issuer: 'http://127.0.0.1:{port}'
signingKeySecretRefs: [{{file: signing.pem}}]
hmacSecretRefs: [{{file: hmac.key}}]
requireConsent: false
clients:
  - {{clientId: bench, redirectUris: ['{REDIRECT}']}}
  - {{clientId: {BACKEND}, grantTypes: [token_exchange], clientSecretRef: {{file: backend.secret}}}}
storage: {{type: sqlite, sqlite: {{path: '{tmp / "as.db"}'}}}}
upstreamProviders:
  - name: corp
    type: oidc
    oidcConfig: {{issuerUrl: 'http://127.0.0.1:1', clientId: hivegate}}
"""
    )
    return config


async def make_codes(config: Path, n: int) -> list[str]:
    """`n` authorization codes, each from a complete login through the flow service, stored in the gateway's file."""
    cfg = load_auth_server_config(config)
    store = SQLiteStore(cfg.storage.path or "")
    server = AuthorizationServer(
        cfg,
        keys=SigningKeys.from_pems(cfg.signing_keys),
        hmac_keys=HMACKeys.from_config(cfg.hmac_keys),
        store=store,
        clients=StaticClients(Client("bench", (REDIRECT,), "static")),
        upstreams=[StandInUpstream()],
        audiences=[f"{cfg.issuer}/mcp"],
    )
    params = Params.of(response_type="code", client_id="bench", redirect_uri=REDIRECT, state="s",
                       code_challenge=challenge_of(VERIFIER), code_challenge_method="S256")  # fmt: skip
    codes = []
    for _ in range(n):
        start = await server.authorize(params, "bench-browser-cookie-value")
        assert isinstance(start, Redirect), start
        state = parse_qs(urlsplit(start.url).query)["state"][0]
        done = await server.callback(Params.of(state=state, code="upstream-code"), "bench-browser-cookie-value")
        assert isinstance(done, Redirect), done
        codes.append(parse_qs(urlsplit(done.url).query)["code"][0])
    await store.aclose()
    return codes


async def hammer(
    url: str, forms: list[dict[str, str]], concurrency: int, authorization: str | None = None
) -> tuple[float, list[float], list[Any]]:
    """POST every form, `concurrency` at a time (with that `Authorization` header when given); (requests/s,
    latencies ms, JSON answers in order)."""
    answers: list[Any] = [None] * len(forms)
    latencies: list[float] = []
    queue = iter(range(len(forms)))
    headers = {"Authorization": authorization} if authorization else None
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency), headers=headers) as http:

        async def worker() -> None:
            for i in queue:
                started = time.perf_counter()
                async with http.post(url, data=forms[i]) as resp:
                    answers[i] = (resp.status, await resp.json())
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(forms) / elapsed, latencies, answers


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def verify_cost(config: Path, db: Path, token: str) -> tuple[float, float, float, float]:
    """µs to check one of the gateway's own tokens: first sight (signature), cached, and the gateway's whole
    check (cached token + the revocation check of its family, remembered; and when the SQLite store is asked)."""
    cfg = load_auth_server_config(config)
    keys = SigningKeys.from_pems(cfg.signing_keys)
    verifier = JWTVerifier(StaticKeys(keys.jwks()), issuer=cfg.issuer, audience=f"{cfg.issuer}/mcp")
    rounds = 300
    started = time.perf_counter()
    for _ in range(rounds):
        await verifier.verify_uncached(token)
    first = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    for _ in range(rounds * 100):
        await verifier.verify(token)
    cached = (time.perf_counter() - started) / (rounds * 100) * 1e6
    store = SQLiteStore(str(db))
    revocations = Revocations(store, ttl=3600)
    gate = BearerAuthenticator(jwt_verifier=verifier, introspector=None, realm=cfg.issuer,
                               revoked=revocations.claims_revoked)  # fmt: skip
    header = f"Bearer {token}"
    await gate.authenticate(header)
    started = time.perf_counter()
    for _ in range(rounds * 100):
        await gate.authenticate(header)
    whole = (time.perf_counter() - started) / (rounds * 100) * 1e6
    claims = (await verifier.verify(token)).claims
    started = time.perf_counter()
    for _ in range(rounds):
        await Revocations(store, ttl=3600).claims_revoked(claims)  # nothing remembered: one store read
    store_read = (time.perf_counter() - started) / rounds * 1e6
    await store.aclose()
    return first, cached, whole, store_read


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=2000)
    parser.add_argument("--introspections", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--key", choices=("rsa", "ec"), default="rsa", help="signing key (default rsa: RS256)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="hivegate-token-bench-"))
    port = free_port()
    config = write_config(tmp, port, args.key)
    hivegate = shutil.which("hivegate", path=str(Path(sys.executable).parent)) or "hivegate"
    proc = subprocess.Popen(
        [
            hivegate,
            "run",
            "--foreground",
            "--port",
            str(port),
            "--auth-server-config",
            str(config),
            "--log-level",
            "warning",
            "--",
            sys.executable,
            str(BENCH_DIR / "stdio_minimal_server.py"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HIVEGATE_STATE_DIR": str(tmp)},
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        if "serving" not in line:
            print(f"hivegate did not start: {line!r}", file=sys.stderr)
            return 1
        print(f"making {args.codes} authorization codes through the flow service ...", flush=True)
        codes = await make_codes(config, args.codes)
        token_url = f"http://127.0.0.1:{port}/oauth/token"
        forms = [{"grant_type": "authorization_code", "code": c, "code_verifier": VERIFIER, "client_id": "bench",
                  "redirect_uri": REDIRECT} for c in codes]  # fmt: skip
        code_rate, code_lat, answers = await hammer(token_url, forms, args.concurrency)
        failed = [a for a in answers if a[0] != 200]
        refresh_forms = [{"grant_type": "refresh_token", "refresh_token": a[1]["refresh_token"], "client_id": "bench"}
                         for a in answers if a[0] == 200]  # fmt: skip
        refresh_rate, refresh_lat, refreshed = await hammer(token_url, refresh_forms, args.concurrency)
        refresh_failed = [a for a in refreshed if a[0] != 200]
        fresh = [a[1]["access_token"] for a in refreshed if a[0] == 200]
        backend = basic_auth(BACKEND, BACKEND_SECRET)
        exchange_forms = [{"grant_type": EXCHANGE, "subject_token": t, "subject_token_type": ACCESS} for t in fresh]
        exchange_rate, exchange_lat, exchanged = await hammer(token_url, exchange_forms, args.concurrency, backend)
        exchange_failed = [a for a in exchanged if a[0] != 200]
        introspect_url = f"http://127.0.0.1:{port}/oauth/introspect"
        asked = [{"token": t, "token_type_hint": "access_token"} for t in fresh[:100]]
        await hammer(introspect_url, asked, args.concurrency, backend)  # first sight: signatures checked, cached
        repeated = [asked[i % len(asked)] for i in range(args.introspections)]
        introspect_rate, introspect_lat, introspected = await hammer(
            introspect_url, repeated, args.concurrency, backend
        )
        introspect_failed = [a for a in introspected if a[0] != 200 or a[1].get("active") is not True]
        first, cached, whole, store_read = await verify_cost(config, tmp / "as.db", answers[0][1]["access_token"])
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    alg = "RS256" if args.key == "rsa" else "ES256"
    print(f"\ntoken endpoint, SQLite, {args.concurrency} concurrent clients, {alg} access tokens")
    print(f"{'grant':<22}{'per second':>12}{'p50 ms':>9}{'p99 ms':>9}{'failed':>8}  target")
    rows = (
        ("authorization_code", code_rate, code_lat, failed, CODES_PER_S),
        ("refresh_token", refresh_rate, refresh_lat, refresh_failed, REFRESHES_PER_S),
        ("token_exchange", exchange_rate, exchange_lat, exchange_failed, EXCHANGES_PER_S),
        ("introspect (cached)", introspect_rate, introspect_lat, introspect_failed, INTROSPECTIONS_PER_S),
    )
    for name, rate, lat, bad, target in rows:
        verdict = "PASS" if rate >= target and not bad else "FAIL"
        print(
            f"{name:<22}{rate:>12.0f}{pct(lat, 50):>9.2f}{pct(lat, 99):>9.2f}{len(bad):>8}  >= {target:.0f}/s {verdict}"
        )
    print(f"\nchecking the gateway's own access token: {first:.0f} µs first sight, {cached:.2f} µs cached")
    print(
        f"with the revocation check of its family: {whole:.2f} µs per request (answer remembered, {RECHECK:g} s); "
        f"{store_read:.0f} µs when SQLite is asked"
    )
    return 0 if all(rate >= target and not bad for _, rate, _, bad, target in rows) else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
