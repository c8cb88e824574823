"""RFC 7662 introspection at `hivegate run --auth-server-config`, through real processes (hivegate, the npm
`oidc-provider`): a backend configured as a confidential client asks `/oauth/introspect` whether tokens are active,
and sees a revocation by the client and a family revoked by a refresh-token reuse; tokens of the real OpenID
provider and garbage are inactive. hivegate's own RFC 7662 client (`--oidc-introspection-url`) reads the answers."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from e2e.test_embedded_auth_server import embedded_setup, run_args
from hivegate.authn.introspection import RFC7662Introspector
from hivegate.authserver.grants.refresh import REFRESH_GRACE
from hivegate.errors import AuthenticationError
from hivegate.httpclient.guard import GuardedHTTPClient
from support.gateway import hivegate_run
from support.oauth_login import login, redeem, refresh, register

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

BACKEND_SECRET = "backend-secret-value-0123456789"
BACKEND = """    clients:
      - clientId: backend
        grantTypes: [token_exchange]
        clientSecretRef: {name: backend, key: secret}
"""
INACTIVE = {"active": False}


async def test_a_backend_sees_fresh_revoked_and_foreign_tokens(tmp_path: Path) -> None:
    async with embedded_setup(tmp_path, extra=BACKEND) as setup:
        env = {**setup.env, "HIVEGATE_SECRET_BACKEND_SECRET": BACKEND_SECRET}
        async with hivegate_run(run_args(setup), env=env) as gw, httpx.AsyncClient(timeout=30) as http:
            metadata = (await http.get(f"{gw.base}/.well-known/oauth-authorization-server")).json()
            endpoint = metadata["introspection_endpoint"]
            assert endpoint == f"{setup.issuer}/oauth/introspect"

            async def introspect(token: str, **extra: str) -> dict[str, Any]:
                answer = await http.post(endpoint, data={"token": token, **extra}, auth=("backend", BACKEND_SECRET))
                assert answer.status_code == 200, answer.text
                assert answer.headers["cache-control"] == "no-store"
                return dict(answer.json())

            client_id = (await register(http, gw.base)).json()["client_id"]
            code, verifier = await login(gw.base, client_id)
            tokens = (await redeem(http, gw.base, client_id, code, verifier)).json()
            access, first_refresh = tokens["access_token"], tokens["refresh_token"]

            active = await introspect(access)
            assert active["active"] is True
            assert active["token_type"] == "Bearer"
            assert (active["iss"], active["aud"], active["sub"]) == (setup.issuer, gw.url, "alice")
            assert active["client_id"] == client_id
            assert active["exp"] > time.time()

            # hivegate's own RFC 7662 client, as a second gateway with --oidc-introspection-url would use it
            guarded = GuardedHTTPClient(allow_http=True, allow_private=True)
            try:
                other_gateway = RFC7662Introspector(guarded, endpoint, client_id="backend",
                                                    client_secret=BACKEND_SECRET, issuer=setup.issuer,
                                                    audience=gw.url, cache_ttl=0, negative_ttl=0)  # fmt: skip
                assert (await other_gateway.verify_uncached(access)).subject == "alice"

                # a refresh-token reuse after the grace window revokes the family: every token of it is inactive
                rotated = (await refresh(http, gw.base, client_id, first_refresh)).json()
                assert (await introspect(rotated["access_token"], token_type_hint="access_token"))["active"] is True
                reused_at = time.monotonic()
                with anyio.fail_after(REFRESH_GRACE + 15):
                    while (reuse := await refresh(http, gw.base, client_id, first_refresh)).status_code == 200:
                        assert time.monotonic() - reused_at < REFRESH_GRACE + 2, "the reuse was never refused"
                        await anyio.sleep(1)  # within the grace window the reuse is honoured: ask again shortly
                assert reuse.json()["error"] == "invalid_grant"
                assert await introspect(access) == INACTIVE
                assert await introspect(rotated["access_token"]) == INACTIVE
                with pytest.raises(AuthenticationError, match="not active"):
                    await other_gateway.verify_uncached(access)

                # a client's own revocation of a fresh login's access token
                code, verifier = await login(gw.base, client_id)
                fresh = (await redeem(http, gw.base, client_id, code, verifier)).json()["access_token"]
                assert (await other_gateway.verify_uncached(fresh)).subject == "alice"
                revoked = await http.post(f"{gw.base}/oauth/revoke", data={"token": fresh, "client_id": client_id})
                assert revoked.status_code == 200
                assert await introspect(fresh) == INACTIVE
                with pytest.raises(AuthenticationError, match="not active"):
                    await other_gateway.verify_uncached(fresh)
            finally:
                await guarded.aclose()

            # tokens of the real OpenID provider (another issuer) and garbage
            foreign = await setup.idp.authorization_code_token(
                "hivegate-as", f"{setup.issuer}/oauth/callback", resource=gw.url, client_secret="as-secret"
            )
            assert str(foreign["access_token"]).count(".") == 2  # a JWT, with the same `aud`
            assert await introspect(str(foreign["access_token"])) == INACTIVE
            assert await introspect(str(foreign["id_token"])) == INACTIVE
            assert await introspect("not-a-token") == INACTIVE
            assert await introspect(access[:-8] + "AAAAAAAA") == INACTIVE

            # who may ask, and malformed requests
            anonymous = await http.post(endpoint, data={"token": access})
            assert (anonymous.status_code, anonymous.json()["error"]) == (401, "invalid_client")
            public = await http.post(endpoint, data={"token": access, "client_id": client_id})
            assert (public.status_code, public.json()["error"]) == (401, "invalid_client")
            wrong = await http.post(endpoint, data={"token": access}, auth=("backend", "not-the-secret"))
            assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")
            assert wrong.headers["www-authenticate"].startswith("Basic")
            missing = await http.post(endpoint, data={}, auth=("backend", BACKEND_SECRET))
            assert (missing.status_code, missing.json()["error"]) == (400, "invalid_request")
            not_form = await http.post(endpoint, json={"token": access}, auth=("backend", BACKEND_SECRET))
            assert (not_form.status_code, not_form.json()["error"]) == (400, "invalid_request")
            assert (await http.get(endpoint)).status_code == 405
        assert not any("Traceback" in line for line in gw.stderr)
        assert not any(access in line or BACKEND_SECRET in line for line in gw.stderr)
