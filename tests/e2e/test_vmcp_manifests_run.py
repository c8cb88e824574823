"""`hivegate vmcp serve -f FOLDER`: Kubernetes-shaped manifests run locally with real backends. An `MCPGroup` of two
`MCPServer`s — one started from the `hivegate.dev/command` annotation (stdio), one already running at `spec.url`
with `outgoingAuth: discovered` picking its `MCPExternalAuthConfig` (header injection from a Secret) — behind a
`VirtualMCPServer` with Cedar policies from a ConfigMap and an `MCPOIDCConfig`."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import httpx
import pytest

from e2e.test_vmcp_shared import call, open_session, post, text_of
from support.backend import fixture_http_server
from support.gateway import FIXTURE, hivegate_vmcp
from support.issuer import local_issuer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

API_KEY = "manifest-api-key-9876"
POLICIES = [
    'permit(principal in THVGroup::"devs", action == Action::"call_tool", resource);',
    'forbid(principal, action == Action::"call_tool", resource == Tool::"local_crash");',
]


def manifests(issuer_url: str, jwks_url: str, remote_url: str) -> str:
    authz = json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": POLICIES}})
    return f"""
apiVersion: toolhive.stacklok.dev/v1beta1
kind: VirtualMCPServer
metadata: {{name: team-tools}}
spec:
  groupRef: {{name: team}}
  incomingAuth:
    type: oidc
    oidcConfigRef: {{name: corp, audience: manifests-e2e}}
    authzConfig: {{type: configMap, configMap: {{name: team-authz}}}}
  outgoingAuth: {{source: discovered}}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPOIDCConfig
metadata: {{name: corp}}
spec:
  type: inline
  inline:
    issuer: {issuer_url}
    jwksUrl: {jwks_url}
    insecureAllowHTTP: true
    jwksAllowPrivateIP: true
    protectedResourceAllowPrivateIP: true
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: team-authz}}
data:
  authz.json: '{authz}'
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPGroup
metadata: {{name: team}}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata:
  name: local
  annotations: {{hivegate.dev/command: {shlex.join([sys.executable, FIXTURE])!r}}}
spec: {{groupRef: team, image: example/never-pulled}}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata: {{name: remote}}
spec: {{groupRef: team, url: '{remote_url}', transport: streamable-http, externalAuthConfigRef: {{name: api-key}}}}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPExternalAuthConfig
metadata: {{name: api-key}}
spec:
  type: headerInjection
  headerInjection: {{headerName: X-API-Key, valueSecretRef: {{name: remote-creds, key: api-key}}}}
"""


async def test_manifests_run_with_discovered_credentials_and_configmap_policies(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    async with local_issuer() as issuer, fixture_http_server() as remote_url:
        (folder / "team.yaml").write_text(manifests(issuer.url, issuer.jwks_url, remote_url))
        env = {"HIVEGATE_SECRET_REMOTE_CREDS_API_KEY": API_KEY}  # the Secret, as the documented local stand-in
        dev = issuer.token("manifests-e2e", sub="dana", groups=["devs"])
        guest = issuer.token("manifests-e2e", sub="gus", groups=["guests"])
        async with (
            hivegate_vmcp(["-f", str(folder), "--port", "0"], env=env) as gateway,
            httpx.AsyncClient(timeout=30) as client,
        ):
            session = await open_session(client, gateway, dev)
            listed = await post(client, gateway, dev, {"jsonrpc": "2.0", "id": 9, "method": "tools/list"}, session)
            names = {t["name"] for t in listed.json()["result"]["tools"]}
            assert {"local_echo", "remote_echo", "remote_headers"} <= names
            assert "local_crash" not in names  # forbidden by the ConfigMap's policy, so not listed
            assert text_of(await post(client, gateway, dev, call("local_echo", text="stdio"), session)) == "stdio"
            seen = json.loads(text_of(await post(client, gateway, dev, call("remote_headers", 3), session)))
            lowered = {k.lower(): v for k, v in seen.items()}
            assert lowered["x-api-key"] == API_KEY
            assert "authorization" not in lowered

            guest_session = await open_session(client, gateway, guest)
            guest_list = await post(client, gateway, guest, {"jsonrpc": "2.0", "id": 4, "method": "tools/list"},
                                    guest_session)  # fmt: skip
            assert guest_list.json()["result"]["tools"] == []
            denied = await post(client, gateway, guest, call("local_echo", 5, text="no"), guest_session)
            assert denied.status_code == 403
            assert denied.json()["id"] == 5
        assert not any(API_KEY in line or dev in line for line in gateway.stderr)


async def test_a_missing_secret_stops_start_up_naming_the_resource_and_how_to_provide_it(tmp_path: Path) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "team.yaml").write_text(
        manifests("https://idp.example.com", "https://idp.example.com/jwks", "http://127.0.0.1:9/mcp")
    )
    expected = (
        r"MCPExternalAuthConfig/api-key: spec\.headerInjection\.valueSecretRef: secret remote-creds/api-key not found "
        r"\(set HIVEGATE_SECRET_REMOTE_CREDS_API_KEY"
    )
    with pytest.raises(RuntimeError, match=expected):
        async with hivegate_vmcp(["-f", str(folder), "--port", "0"]):
            pass
