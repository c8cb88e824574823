"""`--oidc-clock-skew` applies to every token the embedded authorization server checks: its own access tokens on
incoming requests, the subject tokens of token exchange and its upstreams' ID tokens. Time is injected, or tokens are
dated in the past: nothing waits."""

from __future__ import annotations

import time
from typing import Any

import pytest
from test_token_exchange import BACKEND, TrustedIdP, exchange, sts
from test_token_exchange import ISSUER as STS

from hivegate.authn.oidc_config import OIDCConfig
from hivegate.authserver.build import EmbeddedAuthServer, embedded_auth_server
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.settings import AuthServerConfig, StorageConfig, UpstreamConfig
from hivegate.authserver.upstream import build_upstream, upstream_http_client
from hivegate.authserver.upstream.base import UpstreamError
from hivegate.cli.main import build_parser
from hivegate.cli.run import config_from_args
from hivegate.compose.incoming import incoming
from hivegate.compose.lifecycle import Lifecycle
from hivegate.errors import AuthenticationError, ConfigError

pytestmark = pytest.mark.anyio

ISSUER = "https://mcp.example.com"
RESOURCE = f"{ISSUER}/mcp"
T0 = 1_800_000_000.0
CORP = UpstreamConfig("corp", "oidc", "hivegate-as", issuer_url="https://idp.example.com")
CONFIG = AuthServerConfig(issuer=ISSUER, upstreams=(CORP,), storage=StorageConfig(type="memory"))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def own_token(embedded: EmbeddedAuthServer, issued_at: float, lifetime: float = 60.0) -> str:
    """A token of the gateway's own, for its MCP endpoint, living `lifetime` seconds from `issued_at`."""
    claims = {"iss": ISSUER, "sub": "alice", "aud": RESOURCE, "iat": int(issued_at), "exp": int(issued_at + lifetime)}
    return embedded.server.keys.sign(claims)


async def accepted(embedded: EmbeddedAuthServer, token: str) -> bool:
    try:
        await embedded.authenticator.authenticate(f"Bearer {token}")
    except AuthenticationError:
        return False
    return True


@pytest.mark.parametrize(("skew", "last_good"), [(0.0, 60), (60.0, 120), (5.0, 65)])
async def test_the_gateways_own_one_minute_token_lives_its_minute_plus_the_skew(skew: float, last_good: int) -> None:
    clock = Clock(T0)
    embedded = embedded_auth_server(
        CONFIG, server_name="t", mcp_path="/mcp", resource_url=None, clock_skew=skew, clock=clock
    )
    try:
        token = own_token(embedded, T0)
        clock.now = T0 + last_good
        assert await accepted(embedded, token)
        clock.now = T0 + last_good + 1
        assert not await accepted(embedded, token)  # verified tokens are cached until `exp` at the latest
    finally:
        await embedded.aclose()


async def test_the_default_skew_is_the_flags_default() -> None:
    clock = Clock(T0 + 120)
    embedded = embedded_auth_server(CONFIG, server_name="t", mcp_path="/mcp", resource_url=None, clock=clock)
    try:
        assert OIDCConfig().clock_skew == 60.0
        token = own_token(embedded, T0)
        assert await accepted(embedded, token)
        clock.now = T0 + 121
        assert not await accepted(embedded, token)
    finally:
        await embedded.aclose()


@pytest.mark.parametrize(("skew", "expected"), [(0.0, False), (60.0, True)])
async def test_incoming_checks_the_embedded_servers_tokens_with_the_configured_skew(
    skew: float, expected: bool
) -> None:
    lifecycle = Lifecycle()
    entry = incoming(
        lifecycle,
        oidc=OIDCConfig(clock_skew=skew),
        auth_server=CONFIG,
        server_name="t",
        mcp_path="/mcp",
        metrics=None,
    )
    try:
        assert entry.embedded is not None
        token = own_token(entry.embedded, time.time() - 61)  # a one-minute token, issued 61 s ago
        assert await accepted(entry.embedded, token) is expected
    finally:
        await lifecycle.shutdown()


@pytest.mark.parametrize(("skew", "expected"), [(0.0, False), (60.0, True)])
async def test_token_exchange_checks_subject_tokens_with_the_configured_skew(skew: float, expected: bool) -> None:
    s = sts(TrustedIdP(), clock_skew=skew)
    now = int(time.time())
    # a one-minute token of its own, issued 61 s ago
    subject = s.keys.sign({"iss": STS, "sub": "alice", "aud": BACKEND, "client_id": "gateway-a", "iat": now - 61,
                           "exp": now - 1, "jti": "j-1"})  # fmt: skip
    if expected:
        assert (await exchange(s, subject_token=subject, audience=BACKEND))["issued_token_type"]
    else:
        with pytest.raises(OAuthError) as refused:
            await exchange(s, subject_token=subject, audience=BACKEND)
        assert refused.value.error == "invalid_grant"
        assert refused.value.description == "the subject token has expired (or has no 'exp')"


@pytest.mark.parametrize(("skew", "expected"), [(0.0, False), (60.0, True)])
async def test_upstream_id_tokens_are_checked_with_the_configured_skew(skew: float, expected: bool) -> None:
    http = upstream_http_client([CORP])
    try:
        upstream: Any = build_upstream(CORP, http, clock_skew=skew)
        now = int(time.time())
        claims = {"iss": CORP.issuer_url, "aud": "hivegate-as", "sub": "alice", "iat": now - 61, "exp": now - 1}
        if expected:
            upstream.check_id_token(claims)
        else:
            with pytest.raises(UpstreamError, match="it has expired"):
                upstream.check_id_token(claims)
    finally:
        await http.aclose()


@pytest.mark.parametrize(("flag", "seconds"), [("0s", 0.0), ("90s", 90.0), (None, 60.0)])
def test_the_flag_reaches_the_embedded_servers_config(flag: str | None, seconds: float) -> None:
    extra = ["--oidc-clock-skew", flag] if flag else []
    args = build_parser().parse_args(
        ["run", "--auth-server-config", "auth.yaml", *extra, "https://mcp.example.com/mcp"]
    )
    assert config_from_args(args).auth.clock_skew == seconds


def test_a_skew_out_of_range_is_refused_with_the_embedded_server_too() -> None:
    argv = ["run", "--auth-server-config", "auth.yaml", "--oidc-clock-skew", "601s", "https://mcp.example.com/mcp"]
    with pytest.raises(ConfigError) as refused:
        config_from_args(build_parser().parse_args(argv))
    assert str(refused.value) == "--oidc-clock-skew must be between 0 and 600 seconds (got 601.0)"
