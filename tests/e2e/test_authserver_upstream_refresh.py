"""Upstream tokens stay fresh, through real processes only (hivegate with SQLite, oidc-provider issuing upstream
access tokens that are always due for renewal, a header-recording MCP server behind `--upstream-inject`):

- a refresh at our `/oauth/token` refreshes the upstream tokens, and the new access token carries the groups the
  upstream states now (its refreshed ID token), the backend the new upstream access token;
- when the upstream refuses (the account is gone), the refresh answers `invalid_grant` telling the user to log in
  again, and the backend gets a 401 challenge instead of a dead upstream token."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from e2e.oidc_provider import DEFAULT_ACCOUNTS
from e2e.test_authserver_store import gateway
from e2e.test_embedded_auth_server import _unverified_claims
from e2e.test_outgoing_auth import claims_of
from e2e.test_run_outgoing_flags import ACCEPT, INIT, seen_headers
from support.oauth_login import log_in, refresh

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]


async def test_a_refresh_brings_the_upstreams_current_groups_and_a_refusal_ends_the_login(tmp_path: Path) -> None:
    # upstream access tokens of 10 s: always within hivegate's 30 s renewal margin, so every use renews them
    async with gateway(tmp_path, "sqlite", access_ttl=10) as s, httpx.AsyncClient(timeout=10) as http:
        client_id, first = await log_in(http, s.base)
        assert _unverified_claims(first["access_token"])["groups"] == ["mcp-developers"]
        alice = {**DEFAULT_ACCOUNTS["alice"], "groups": ["mcp-admins"]}
        await s.idp.set_account("alice", alice)

        second = await refresh(http, s.base, client_id, first["refresh_token"])
        assert second.status_code == 200, second.text
        assert _unverified_claims(second.json()["access_token"])["groups"] == ["mcp-admins"]
        injected = await seen_headers(s.gateway.url, second.json()["access_token"])
        assert claims_of(injected["authorization"])["groups"] == ["mcp-admins"]  # a new upstream access token

        await s.idp.set_account("alice", None)  # the upstream no longer knows the user: it refuses the refresh
        third = await refresh(http, s.base, client_id, second.json()["refresh_token"])
        assert third.status_code == 400, third.text
        assert third.json()["error"] == "invalid_grant"
        assert "log in again" in third.json()["error_description"]
        token = second.json()["access_token"]
        headers = {"authorization": f"Bearer {token}", "accept": ACCEPT}
        answer = await http.post(s.gateway.url, json=INIT, headers=headers)
        assert answer.status_code == 401, answer.text
        assert "log in again" in answer.json()["error_description"]
    assert not any("Traceback" in line for line in s.gateway.stderr)
