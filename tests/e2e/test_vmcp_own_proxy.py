"""`hivegate vmcp serve -f`: an `MCPServer`'s own `oidcConfig` and `authzConfig` (seeds/001's
`weather-server-with-authz`) are enforced behind a `VirtualMCPServer`, as its own proxy would in ToolHive, under
every conflict strategy: no token → 401, a caller outside the permitted group → refused (JSON-RPC 403
"denied by policy"), the permitted group → the call passes, decided on `Tool::"weather"` whatever the vMCP advertises.

Real parts: the vMCP process, the stdio fixture server, and a local issuer that signs the callers' tokens and
exchanges them (RFC 8693) for tokens of the backend's audience (the vMCP's `tokenExchange` outgoing auth, found
through the MCPServer's `externalAuthConfigRef`). Local stand-ins, as the seed's resources cannot run here: the
`hivegate.dev/command` annotation for the image; an inline `oidcConfig` at the local issuer for the seed's
`type: kubernetes` one; the seed's ConfigMap with its weather policy limited to a group, so a refusal can be seen.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import httpx
import pytest

from e2e.test_vmcp_shared import ACCEPT, INIT, call, open_session, post, text_of
from support.gateway import FIXTURE, hivegate_vmcp
from support.issuer import LocalIssuer, local_issuer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AUDIENCE = "weather-hub"  # the vMCP's
BACKEND_AUDIENCE = "weather-backend"  # what the token exchange asks for, and what the server's oidcConfig accepts
STS_SECRET = "sts-secret-5521"
POLICIES = [
    'permit(principal in THVGroup::"forecasters", action == Action::"call_tool", resource == Tool::"weather");',
    'permit(principal == Client::"alice123", action == Action::"call_tool", resource == Tool::"admin_tool");',
    'permit(principal, action == Action::"call_tool", resource) when { principal.claim_roles.contains("premium") };',
]


def manifests(issuer: LocalIssuer, conflict: str, call_log: Path) -> str:
    authz = json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": POLICIES, "entities_json": "[]"}})
    command = shlex.join([sys.executable, FIXTURE])
    own_oidc = f"""
    type: inline
    inline:
      issuer: {issuer.url}
      jwksUrl: {issuer.jwks_url}
      insecureAllowHTTP: true
      jwksAllowPrivateIP: true"""
    order = (
        "\n      conflictResolutionConfig: {priorityOrder: [weather-server-with-authz]}"
        if conflict == "priority"
        else ""
    )
    return f"""
apiVersion: toolhive.stacklok.dev/v1beta1
kind: VirtualMCPServer
metadata: {{name: weather-hub, namespace: toolhive-system}}
spec:
  groupRef: {{name: weather}}
  incomingAuth:
    type: oidc
    oidcConfigRef: {{name: corp, audience: {AUDIENCE}}}
  outgoingAuth: {{source: discovered}}
  config:
    aggregation:
      conflictResolution: {conflict}{order}
      tools: [{{workload: weather-strict, filter: [strict_echo]}}]
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPOIDCConfig
metadata: {{name: corp, namespace: toolhive-system}}
spec:
  type: inline
  inline: {{issuer: '{issuer.url}', jwksUrl: '{issuer.jwks_url}', insecureAllowHTTP: true, jwksAllowPrivateIP: true,
           protectedResourceAllowPrivateIP: true}}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPGroup
metadata: {{name: weather, namespace: toolhive-system}}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: authz-config
  namespace: toolhive-system
data:
  authz-config.json: '{authz}'
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata:
  name: weather-server-with-authz
  namespace: toolhive-system
  annotations: {{hivegate.dev/command: {command!r}}}
spec:
  groupRef: weather
  image: ghcr.io/stackloklabs/weather-mcp/server
  transport: sse
  port: 8080
  permissionProfile:
    type: builtin
    name: network
  env: [{{name: FIXTURE_CALL_LOG, value: '{call_log}'}}]
  externalAuthConfigRef: {{name: weather-exchange}}
  # Authentication configuration
  oidcConfig:{own_oidc}
      audience: {BACKEND_AUDIENCE}
  # Authorization configuration
  authzConfig:
    type: configMap
    configMap:
      name: authz-config
      key: authz-config.json
  resources:
    limits: {{cpu: '100m', memory: '128Mi'}}
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata:
  name: weather-strict
  namespace: toolhive-system
  annotations: {{hivegate.dev/command: {command!r}}}
spec:
  groupRef: weather
  image: example/never-pulled
  env: [{{name: FIXTURE_CALL_LOG, value: '{call_log}'}}, {{name: FIXTURE_TOOL_ALIAS, value: strict_echo}}]
  externalAuthConfigRef: {{name: weather-exchange}}
  oidcConfig:{own_oidc}
      audience: another-audience
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPExternalAuthConfig
metadata: {{name: weather-exchange, namespace: toolhive-system}}
spec:
  type: tokenExchange
  tokenExchange:
    tokenUrl: {issuer.token_url}
    clientId: weather-hub
    clientSecretRef: {{name: sts-client, key: secret}}
    audience: {BACKEND_AUDIENCE}
---
apiVersion: v1
kind: Secret
metadata: {{name: sts-client, namespace: toolhive-system}}
stringData: {{secret: {STS_SECRET}}}
"""


@pytest.mark.parametrize(
    ("conflict", "weather", "echo"),
    [
        ("prefix", "weather-server-with-authz_weather", "weather-strict_strict_echo"),
        ("priority", "weather", "strict_echo"),
        ("manual", "weather", "strict_echo"),
    ],
)
async def test_the_servers_own_oidc_and_cedar_hold_behind_the_vmcp(
    tmp_path: Path, conflict: str, weather: str, echo: str
) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    call_log = tmp_path / "calls.jsonl"
    async with local_issuer() as issuer:
        (folder / "weather.yaml").write_text(manifests(issuer, conflict, call_log))
        fay = issuer.token(AUDIENCE, sub="fay", groups=["forecasters"])
        gil = issuer.token(AUDIENCE, sub="gil", groups=["guests"])
        async with (
            hivegate_vmcp(["-f", str(folder), "--port", "0"]) as gateway,
            httpx.AsyncClient(timeout=30) as client,
        ):
            anonymous = await client.post(
                gateway.url, json={"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": INIT},
                headers={"accept": ACCEPT},
            )  # fmt: skip
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"].startswith("Bearer")

            session = await open_session(client, gateway, fay)
            listed = await post(client, gateway, fay, {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, session)
            names = {t["name"] for t in listed.json()["result"]["tools"]}
            assert weather in names
            assert not {n for n in names if n.endswith(("admin_tool", "echo"))}  # its policies; its 401
            assert text_of(await post(client, gateway, fay, call(weather, 4, city="Oslo"), session)) == "sunny in Oslo"
            strict = await post(client, gateway, fay, call(echo, 5, text="hi"), session)
            assert strict.json()["error"] == {
                "code": -32000,
                "message": "backend 'weather-strict' refused the gateway's credential (HTTP 401: Token audience does "
                "not include this server)",
            }

            guest = await open_session(client, gateway, gil)
            denied = await post(client, gateway, gil, call(weather, 6, city="Rome"), guest)
            assert denied.json() == {"jsonrpc": "2.0", "id": 6, "error": {"code": 403, "message": "denied by policy"}}
            assert denied.status_code == 200  # refused behind the vMCP's routing: an answer, like any backend's
            guest_list = await post(client, gateway, gil, {"jsonrpc": "2.0", "id": 7, "method": "tools/list"}, guest)
            assert guest_list.json()["result"]["tools"] == []

        reached = [json.loads(line) for line in call_log.read_text().splitlines()]
        assert reached == [{"method": "tools/call", "name": "weather"}]  # only fay's call reached a server
        assert issuer.exchanges >= 2  # fay's and gil's tokens were exchanged for the backend's audience
        logged = "\n".join(gateway.stderr)
        assert (
            "backend 'weather-server-with-authz': its own authzConfig refused tools/call 'weather' for 'gil'" in logged
        )
        assert fay not in logged
        assert gil not in logged
        assert STS_SECRET not in logged


async def test_a_server_with_its_own_oidc_and_no_credential_does_not_start(tmp_path: Path) -> None:
    """The defect this fixes: with outgoing auth that sends no token, calls went through unchecked (HTTP 200)."""
    folder = tmp_path / "manifests"
    folder.mkdir()
    async with local_issuer() as issuer:
        text = manifests(issuer, "prefix", tmp_path / "calls.jsonl").replace(
            "  externalAuthConfigRef: {name: weather-exchange}\n", ""
        )
        (folder / "weather.yaml").write_text(text)
        with pytest.raises(RuntimeError) as err:
            async with hivegate_vmcp(["-f", str(folder), "--port", "0"]):
                pass
    assert "backend 'weather-server-with-authz' has its own oidcConfig, so the vMCP must send it a bearer token" in str(
        err.value
    )
