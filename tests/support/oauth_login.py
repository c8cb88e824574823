"""A raw-HTTP OAuth client of the embedded authorization server, as tests and the scale bench use it: dynamic
registration (RFC 7591), a whole login in a new browser (PKCE S256, our consent page, the upstream's redirects), the
code's redemption and refresh (RFC 6749 §4.1, §6). Needs only httpx, so that a benchmark can use it too."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from html import unescape
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx

__all__ = [
    "APP_REDIRECT",
    "authorize_url",
    "consent_form",
    "follow",
    "log_in",
    "login",
    "pkce",
    "query_of",
    "redeem",
    "refresh",
    "register",
]

APP_REDIRECT = "http://127.0.0.1:9/callback"  # the MCP client's; never contacted: the browser stops there


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def register(http: httpx.AsyncClient, base: str) -> httpx.Response:
    metadata = {
        "redirect_uris": [APP_REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "client_name": "raw e2e client",
    }
    return await http.post(f"{base}/oauth/register", json=metadata)


def authorize_url(base: str, client_id: str, challenge: str, state: str, **overrides: str) -> str:
    params = {
        "client_id": client_id,
        "redirect_uri": APP_REDIRECT,
        "response_type": "code",
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return f"{base}/oauth/authorize?{urlencode({k: v for k, v in params.items() if v})}"


def consent_form(page: str) -> dict[str, str]:
    return {k: unescape(v) for k, v in re.findall(r'name="(login|csrf)" value="([^"]*)"', page)}


async def follow(http: httpx.AsyncClient, url: str, *, until: str) -> str:
    """GET `url` and its redirects with `http`'s cookies, allowing our consent page, until a URL starts with `until`
    (not fetched: returned)."""
    for _ in range(20):
        if url.startswith(until):
            return url
        response = await http.get(url)
        if response.status_code == 200 and 'action="/oauth/consent"' in response.text:
            base = f"{urlsplit(url).scheme}://{urlsplit(url).netloc}"
            form = {**consent_form(response.text), "decision": "allow"}
            response = await http.post(f"{base}/oauth/consent", data=form)
        assert response.status_code in (302, 303), f"{url}: {response.status_code} {response.text[:300]}"
        url = urljoin(url, response.headers["location"])
    raise AssertionError("too many redirects")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


async def login(base: str, client_id: str) -> tuple[str, str]:
    """A whole login in a new browser: (authorization code, code verifier)."""
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(8)
    async with httpx.AsyncClient(timeout=10) as browser:
        landed = query_of(await follow(browser, authorize_url(base, client_id, challenge, state), until=APP_REDIRECT))
    assert landed.get("state") == state, landed
    return landed["code"], verifier


async def redeem(
    http: httpx.AsyncClient, base: str, client_id: str, code: str, verifier: str, redirect_uri: str = APP_REDIRECT
) -> httpx.Response:
    form = {"grant_type": "authorization_code", "client_id": client_id, "code": code, "code_verifier": verifier,
            "redirect_uri": redirect_uri}  # fmt: skip
    return await http.post(f"{base}/oauth/token", data=form)


async def log_in(http: httpx.AsyncClient, base: str) -> tuple[str, dict[str, Any]]:
    """A newly registered client's whole login: (its client id, the token response)."""
    registered = await register(http, base)
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    code, verifier = await login(base, client_id)
    tokens = await redeem(http, base, client_id, code, verifier)
    assert tokens.status_code == 200, tokens.text
    return client_id, tokens.json()


async def refresh(http: httpx.AsyncClient, base: str, client_id: str, token: str) -> httpx.Response:
    form = {"grant_type": "refresh_token", "client_id": client_id, "refresh_token": token}
    return await http.post(f"{base}/oauth/token", data=form)
