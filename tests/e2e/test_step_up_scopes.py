"""Per-tool scopes with step-up, end to end: `hivegate run --auth-server-config --authz-config` whose policies require
`mcp:admin` for `delete_namespace`. The official Python SDK client logs in with the scopes the gateway advertises,
calls the tool, gets HTTP 403 `insufficient_scope`, logs in again through the embedded authorization server for the
union of scopes (the consent page names `mcp:admin`), and its retried call passes. Real processes: hivegate,
oidc-provider (Node)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from e2e.test_embedded_auth_server import (
    Browser,
    MemoryTokens,
    _unverified_claims,
    embedded_setup,
    run_args,
    sdk_client,
)
from support.gateway import hivegate_run

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SCOPES = "    scopesSupported: [openid, profile, email, offline_access, mcp:admin]\n"
AUTHZ = {
    "version": "1.0",
    "type": "cedarv1",
    "cedar": {"policies": ["permit(principal, action, resource);"]},
    "requiredScopes": {'Tool::"delete_namespace"': ["mcp:admin"]},
}


async def test_the_python_sdk_steps_up_to_a_scope_a_tool_requires(tmp_path: Path) -> None:
    policies = tmp_path / "authz.json"
    policies.write_text(json.dumps(AUTHZ))
    consent_pages: list[str] = []

    async def keep_consent_pages(response: httpx.Response) -> None:
        await response.aread()
        if 'action="/oauth/consent"' in response.text:
            consent_pages.append(response.text)

    browser = Browser(client=httpx.AsyncClient(timeout=10, event_hooks={"response": [keep_consent_pages]}))
    storage = MemoryTokens()
    async with (
        embedded_setup(tmp_path, extra=SCOPES) as setup,
        hivegate_run(run_args(setup, "--authz-config", str(policies)), env=setup.env) as gw,
    ):
        async with sdk_client(gw.url, browser, storage) as client:
            echoed = await client.call_tool("echo", {"text": "first"})
            assert echoed.content[0].text == "first"  # type: ignore[union-attr]
            assert storage.tokens is not None
            first_token = storage.tokens.access_token
            assert "mcp:admin" not in _unverified_claims(first_token)["scope"].split()
            listed = [t.name for t in (await client.list_tools()).tools]
            assert "delete_namespace" in listed  # shown: the caller can step up

            deleted = await client.call_tool("delete_namespace", {"namespace": "staging"})
            assert deleted.content[0].text == "deleted staging"  # type: ignore[union-attr]

        assert browser.consents == 2  # the first login, and the step-up
        assert "<code>mcp:admin</code>" in consent_pages[-1]
        assert "<code>mcp:admin</code>" not in consent_pages[0]
        stepped = _unverified_claims(storage.tokens.access_token)["scope"].split()
        assert {"openid", "offline_access", "mcp:admin"} <= set(stepped)

        async with httpx.AsyncClient(timeout=10) as http:  # what the SDK met with its first token
            call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call",
                    "params": {"name": "delete_namespace", "arguments": {"namespace": "prod"}}}  # fmt: skip
            headers = {"authorization": f"Bearer {first_token}", "accept": "application/json, text/event-stream",
                       "mcp-protocol-version": "2025-11-25"}  # fmt: skip
            refused = await http.post(gw.url, json=call, headers=headers)
        assert refused.status_code == 403
        challenge = refused.headers["www-authenticate"]
        assert challenge.startswith("Bearer ")
        assert 'error="insufficient_scope"' in challenge
        first_scopes = _unverified_claims(first_token)["scope"]
        assert f'scope="mcp:admin {first_scopes}"' in challenge
        assert f'resource_metadata="{gw.base}/.well-known/oauth-protected-resource/mcp"' in challenge
        assert refused.json()["error"]["code"] == 403
        assert refused.json()["id"] == 5
