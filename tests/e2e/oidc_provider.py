"""A real OpenID provider for end-to-end tests: `node tests/e2e/oidc/provider.mjs` (npm `oidc-provider`).

`start_oidc_provider()` spawns it on 127.0.0.1, waits for its ready line and stops it on exit. The
provider logs a test user in without any HTML and grants whatever is asked, so both grants a gateway
meets are one call away: `client_credentials_token()` and `authorization_code_token()` (RFC 6749 §4.1
with PKCE S256, RFC 7636, and a resource indicator, RFC 8707).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import anyio
import httpx
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

__all__ = [
    "DEFAULT_ACCOUNTS",
    "DEFAULT_SCOPE",
    "MACHINE_CLIENT",
    "OIDCProvider",
    "node_binary",
    "start_oidc_provider",
    "web_client",
]

REPO = Path(__file__).resolve().parents[2]
PROVIDER_SCRIPT = REPO / "tests" / "e2e" / "oidc" / "provider.mjs"
TOOLS_NODE = REPO / "tests" / "tools" / "node_modules" / ".bin" / "node"

DEFAULT_SCOPE = "openid profile email mcp:tools"
DEFAULT_ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice": {
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Example",
        "groups": ["mcp-developers"],
    },
}
MACHINE_CLIENT: dict[str, Any] = {
    "client_id": "hivegate-machine",
    "client_secret": "machine-secret",
    "grant_types": ["client_credentials"],
    "response_types": [],
    "redirect_uris": [],
    "token_endpoint_auth_method": "client_secret_basic",
}


def web_client(client_id: str, redirect_uris: Sequence[str], secret: str | None = None) -> dict[str, Any]:
    """Client metadata for the authorization-code grant: public (PKCE only) unless a secret is given."""
    metadata: dict[str, Any] = {
        "client_id": client_id,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "redirect_uris": list(redirect_uris),
        "token_endpoint_auth_method": "client_secret_basic" if secret else "none",
    }
    if secret:
        metadata["client_secret"] = secret
    return metadata


def node_binary() -> str:
    """The Node 22 shipped by tests/tools (npm `node`), else the `node` on PATH."""
    if TOOLS_NODE.exists():
        return str(TOOLS_NODE)
    found = shutil.which("node")
    if found is None:
        raise RuntimeError("node not found: run scripts/install-test-deps.sh")
    return found


def _pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


@dataclass
class OIDCProvider:
    """A running provider. Endpoints follow oidc-provider's defaults under `issuer`."""

    issuer: str
    port: int
    process: Process = field(repr=False)
    stderr: bytearray = field(default_factory=bytearray, repr=False)

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/token"

    @property
    def authorization_endpoint(self) -> str:
        return f"{self.issuer}/auth"

    @property
    def introspection_endpoint(self) -> str:
        return f"{self.issuer}/token/introspection"

    @property
    def userinfo_endpoint(self) -> str:
        return f"{self.issuer}/me"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    async def set_account(self, account: str, claims: Mapping[str, Any] | None) -> None:
        """Change an account's claims from now on (None: the account is gone, its grants stop working)."""
        async with httpx.AsyncClient() as http:
            body = json.dumps(claims)  # `json=None` would send no body at all
            response = await http.put(f"{self.issuer}/test/accounts/{account}", content=body)
            response.raise_for_status()

    async def jwks(self) -> dict[str, Any]:
        async with httpx.AsyncClient() as http:
            response = await http.get(self.jwks_uri)
            response.raise_for_status()
            return dict(response.json())

    async def client_credentials_token(
        self, client_id: str, secret: str, resource: str | None = None, scope: str | None = None
    ) -> str:
        """RFC 6749 §4.4: an access token for a confidential client (a JWT whose `aud` is `resource`)."""
        form = {"grant_type": "client_credentials"}
        if resource is not None:
            form["resource"] = resource
        if scope is not None:
            form["scope"] = scope
        async with httpx.AsyncClient() as http:
            response = await http.post(self.token_endpoint, data=form, auth=(client_id, secret))
        if response.status_code != 200:
            raise RuntimeError(f"client_credentials failed: {response.status_code} {response.text}")
        return str(response.json()["access_token"])

    async def authorization_code_token(
        self,
        client_id: str,
        redirect_uri: str,
        resource: str | None = None,
        scope: str | None = DEFAULT_SCOPE,
        *,
        client_secret: str | None = None,
        login_hint: str | None = None,
    ) -> dict[str, Any]:
        """RFC 6749 §4.1 with PKCE S256: follow /auth's redirects to `redirect_uri`, exchange the code.

        Returns the token response (`access_token`, `id_token`, `token_type`, `expires_in`, `scope`, ...).
        """
        verifier, challenge = _pkce_pair()
        state = secrets.token_urlsafe(16)
        query = {
            "client_id": client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state,
            "nonce": secrets.token_urlsafe(16),
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if scope is not None:
            query["scope"] = scope
        if resource is not None:
            query["resource"] = resource
        if login_hint is not None:
            query["login_hint"] = login_hint
        auth = (client_id, client_secret) if client_secret else None
        async with httpx.AsyncClient() as http:
            callback = await self._follow_to(http, f"{self.authorization_endpoint}?{urlencode(query)}", redirect_uri)
            params = {key: values[0] for key, values in parse_qs(urlsplit(callback).query).items()}
            if "error" in params:
                raise RuntimeError(f"authorization failed: {params}")
            if params.get("state") != state or params.get("iss") != self.issuer:
                raise RuntimeError(f"unexpected authorization response: {params}")
            form = {
                "grant_type": "authorization_code",
                "code": params["code"],
                "redirect_uri": redirect_uri,
                "code_verifier": verifier,
            }
            if auth is None:
                form["client_id"] = client_id
            if resource is not None:
                form["resource"] = resource
            response = await http.post(self.token_endpoint, data=form, auth=auth or httpx.USE_CLIENT_DEFAULT)
        if response.status_code != 200:
            raise RuntimeError(f"code exchange failed: {response.status_code} {response.text}")
        return dict(response.json())

    async def _follow_to(self, http: httpx.AsyncClient, url: str, redirect_uri: str, max_hops: int = 10) -> str:
        """GET `url` and its redirects (keeping the provider's cookies) until one points at `redirect_uri`."""
        for _ in range(max_hops):
            response = await http.get(url)
            if response.status_code not in (302, 303):
                raise RuntimeError(f"no redirect from {url}: {response.status_code} {response.text[:500]}")
            url = urljoin(url, response.headers["location"])
            if url.startswith(redirect_uri):
                return url
        raise RuntimeError(f"more than {max_hops} redirects without reaching {redirect_uri}")

    async def introspect(self, token: str, client_id: str, secret: str) -> dict[str, Any]:
        """RFC 7662 introspection (answers only for opaque tokens: see `opaque_resources`)."""
        async with httpx.AsyncClient() as http:
            response = await http.post(self.introspection_endpoint, data={"token": token}, auth=(client_id, secret))
            response.raise_for_status()
            return dict(response.json())


async def _drain(stream: anyio.abc.ByteReceiveStream, into: bytearray) -> None:
    async for chunk in stream:
        into.extend(chunk)


@asynccontextmanager
async def start_oidc_provider(
    clients: Sequence[Mapping[str, Any]] = (MACHINE_CLIENT,),
    accounts: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    login_account: str = "alice",
    default_resource: str | None = None,
    opaque_resources: Sequence[str] = (),
    default_scope: str = DEFAULT_SCOPE,
    resource_scope: str = DEFAULT_SCOPE,
    access_token_ttl: int = 3600,
    port: int = 0,
    node: str | None = None,
    startup_timeout: float = 20,
) -> AsyncIterator[OIDCProvider]:
    """Run provider.mjs on 127.0.0.1 for the duration of the block.

    `clients` are oidc-provider client metadata (see `MACHINE_CLIENT`, `web_client()`); `accounts` maps
    an account id to its claims (default: alice in group mcp-developers). Tokens for a resource listed
    in `opaque_resources` are opaque (for introspection); all others are RS256 JWTs with `aud` = resource.
    """
    config = {
        "clients": [dict(client) for client in clients],
        "accounts": {name: dict(claims) for name, claims in (accounts or DEFAULT_ACCOUNTS).items()},
        "loginAccount": login_account,
        "defaultResource": default_resource,
        "opaqueResources": list(opaque_resources),
        "defaultScope": default_scope,
        "resourceScope": resource_scope,
        "accessTokenTTL": access_token_ttl,
    }
    command = [node or node_binary(), str(PROVIDER_SCRIPT), "--port", str(port), "--watch-stdin"]
    env = {**os.environ, "OIDC_PROVIDER_CONFIG": json.dumps(config), "NODE_NO_WARNINGS": "1"}
    process = await anyio.open_process(command, env=env, cwd=REPO)
    assert process.stdout is not None
    assert process.stderr is not None
    stderr = bytearray()
    try:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_drain, process.stderr, stderr)
            try:
                with anyio.fail_after(startup_timeout):
                    line = await BufferedByteReceiveStream(process.stdout).receive_until(b"\n", 65536)
            except (anyio.IncompleteRead, anyio.EndOfStream, TimeoutError) as exc:
                raise RuntimeError(f"OIDC provider did not start: {stderr.decode(errors='replace')}") from exc
            ready = json.loads(line)
            yield OIDCProvider(issuer=ready["issuer"], port=int(ready["port"]), process=process, stderr=stderr)
            tasks.cancel_scope.cancel()
    finally:
        await _stop(process)


async def _stop(process: Process) -> None:
    if process.returncode is None:
        process.terminate()
        with anyio.move_on_after(5):
            await process.wait()
        if process.returncode is None:
            process.kill()
    with anyio.CancelScope(shield=True):
        await process.wait()
        await process.aclose()
