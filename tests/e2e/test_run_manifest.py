"""`hivegate run -f`: the seeds' standalone `MCPServer` (and an `MCPRemoteProxy`) run as real gateway processes.

Local stand-ins, and nothing else changed in the seed's text: the annotation `hivegate.dev/command` runs the repo's
stdio fixture instead of the image; the inline `oidcConfig` of seeds/001's `weather-server-external` names a local
issuer (http on 127.0.0.1, so `insecureAllowHTTP` and `jwksAllowPrivateIP` are added) instead of
`https://your-oidc-issuer.com`; the seed's `authz-config` ConfigMap is verbatim. `--port 0` replaces the seed's
port 8080, which may be taken here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.test_embedded_auth_server import Browser, MemoryTokens, embedded_setup, sdk_client
from support.backend import fixture_http_server
from support.gateway import FIXTURE, hivegate_run
from support.issuer import LocalIssuer, local_issuer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

COMMAND = f"{sys.executable} {FIXTURE}"
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}

# seeds/001, "Set up authorization", step 2, verbatim
AUTHZ_CONFIGMAP = r"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: authz-config
  namespace: toolhive-system
data:
  authz-config.json: |
    {
      "version": "1.0",
      "type": "cedarv1",
      "cedar": {
        "policies": [
          "permit(principal, action == Action::\"call_tool\", resource == Tool::\"weather\");",
          "permit(principal == Client::\"alice123\", action == Action::\"call_tool\", resource == Tool::\"admin_tool\");",
          "permit(principal, action == Action::\"call_tool\", resource) when { principal.claim_roles.contains(\"premium\") };"
        ],
        "entities_json": "[]"
      }
    }
"""  # noqa: E501


def weather_server(issuer: str) -> str:
    """seeds/001's `weather-server-with-authz`, with the inline oidcConfig of `weather-server-external`."""
    return f"""
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata:
  name: weather-server-with-authz
  namespace: toolhive-system
  annotations:
    hivegate.dev/command: "{COMMAND}"
spec:
  image: ghcr.io/stackloklabs/weather-mcp/server
  transport: sse
  port: 8080
  permissionProfile:
    type: builtin
    name: network
  # Authentication configuration for external IdP
  oidcConfig:
    type: inline
    inline:
      issuer: '{issuer}'
      audience: 'your-audience'
      clientId: 'your-client-id'
      jwksUrl: '{issuer}/jwks'
      insecureAllowHTTP: true
      jwksAllowPrivateIP: true
  # Authorization configuration
  authzConfig:
    type: configMap
    configMap:
      name: authz-config
      key: authz-config.json
  resources:
    limits:
      cpu: '100m'
      memory: '128Mi'
    requests:
      cpu: '50m'
      memory: '64Mi'
"""


def call(url: str, token: str | None, tool: str, arguments: dict[str, Any] | None = None) -> httpx.Response:
    """An MCP session on `url` as the bearer of `token`: initialize, then call `tool`; the call's HTTP answer (or
    the first refused step's)."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "1"}}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello}
    with httpx.Client(timeout=30, headers={**ACCEPT, **auth}) as http:
        resp = http.post(url, json=init)
        if resp.status_code != 200:
            return resp
        session = {"Mcp-Session-Id": resp.headers["mcp-session-id"]}
        http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=session)
        params = {"name": tool, "arguments": arguments or {}}
        return http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": params},
                         headers=session)  # fmt: skip


def text(resp: httpx.Response) -> str:
    body = resp.text
    if body.startswith(("event:", "data:")):
        body = next(line[5:] for line in body.splitlines() if line.startswith("data:"))
    return str(json.loads(body)["result"]["content"][0]["text"])


async def test_seed_mcpserver_with_oidc_and_authz_configmap(tmp_path: Path) -> None:
    async with local_issuer() as issuer:
        manifest = tmp_path / "weather.yaml"
        manifest.write_text(weather_server(issuer.url) + "---" + AUTHZ_CONFIGMAP)
        async with hivegate_run(["-f", str(manifest), "--port", "0"]) as gw:
            assert any("spec.resources: used in a Kubernetes cluster only" in line for line in gw.stderr)
            assert call(gw.url, None, "weather").status_code == 401
            wrong_audience = issuer.token("another-audience", roles=["premium"])
            assert call(gw.url, wrong_audience, "weather").status_code == 401
            basic = issuer.token("your-audience", sub="bob", roles=["basic"])
            assert text(call(gw.url, basic, "weather", {"city": "Oslo"})) == "sunny in Oslo"
            denied = call(gw.url, basic, "admin_tool")
            assert denied.status_code == 403
            premium = issuer.token("your-audience", sub="carol", roles=["premium"])
            allowed = call(gw.url, premium, "admin_tool")
            assert allowed.status_code == 200
            assert text(allowed) == "admin done"
            alice = issuer.token("your-audience", sub="alice123")
            assert text(call(gw.url, alice, "admin_tool")) == "admin done"


def remote_proxy(issuer: LocalIssuer, url: str) -> str:
    """An MCPRemoteProxy whose callers present the issuer's tokens (an MCPOIDCConfig) and whose backend gets an API
    key from a Secret (`headerForward`)."""
    return f"""
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPOIDCConfig
metadata: {{name: local-idp, namespace: tools}}
spec:
  type: inline
  inline: {{issuer: '{issuer.url}', jwksUrl: '{issuer.jwks_url}', insecureAllowHTTP: true, jwksAllowPrivateIP: true}}
---
apiVersion: v1
kind: Secret
metadata: {{name: tools-api, namespace: tools}}
stringData: {{key: s3cr3t-api-key}}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPRemoteProxy
metadata: {{name: remote-tools, namespace: tools}}
spec:
  remoteUrl: '{url}'
  transport: streamable-http
  allowPrivateEndpoint: true
  oidcConfigRef: {{name: local-idp, audience: remote-tools}}
  headerForward:
    addPlaintextHeaders: {{X-Tenant-ID: acme}}
    addHeadersFromSecret:
      - headerName: X-API-Key
        valueSecretRef: {{name: tools-api, key: key}}
  audit: {{enabled: true}}
"""


async def test_remote_proxy_in_front_of_an_http_server(tmp_path: Path) -> None:
    async with local_issuer() as issuer, fixture_http_server() as backend:
        manifest = tmp_path / "remote.yaml"
        manifest.write_text(remote_proxy(issuer, backend))
        async with hivegate_run(["-f", str(manifest)]) as gw:
            assert call(gw.url, None, "headers").status_code == 401
            token = issuer.token("remote-tools")
            seen = json.loads(text(call(gw.url, token, "headers")))
            assert (seen["x-tenant-id"], seen["x-api-key"]) == ("acme", "s3cr3t-api-key")
            assert "authorization" not in seen  # the caller's token stays with the gateway
        assert "s3cr3t-api-key" not in "\n".join(gw.stderr)


async def test_seed_mcpserver_with_the_embedded_authorization_server(tmp_path: Path) -> None:
    """seeds/001's `weather-server-embedded` (step 5) beside the MCPExternalAuthConfig of `embedded_setup` (a real
    OpenID provider upstream). Stand-ins: the command annotation, and the local issuer and resource URL in place of
    `https://mcp.example.com`. The SDK client logs in through the gateway's own authorization server."""
    async with embedded_setup(tmp_path) as setup:
        server = f"""
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata:
  name: weather-server-embedded
  annotations:
    hivegate.dev/command: "{COMMAND}"
spec:
  image: ghcr.io/stackloklabs/weather-mcp/server
  transport: streamable-http
  port: 8080
  permissionProfile:
    type: builtin
    name: network
  # Reference the embedded authorization server configuration
  externalAuthConfigRef:
    name: embedded-auth-server
  # Validate JWTs issued by the embedded authorization server
  oidcConfig:
    type: inline
    resourceUrl: '{setup.issuer}/mcp'
    inline:
      issuer: '{setup.issuer}'
"""
        setup.config.write_text(setup.config.read_text() + server)
        async with hivegate_run(["-f", str(setup.config), "--port", str(setup.port)], env=setup.env) as gw:
            assert call(gw.url, None, "echo", {"text": "x"}).status_code == 401
            browser, storage = Browser(), MemoryTokens()
            async with sdk_client(gw.url, browser, storage) as client:
                result = await client.call_tool("echo", {"text": "logged in"})
                assert result.content[0].text == "logged in"  # type: ignore[union-attr]
            assert storage.tokens is not None
            assert call(gw.url, storage.tokens.access_token, "weather").status_code == 200


# -- in the background, and misuse --------------------------------------------------------------------------------

TWO_SERVERS = f"""
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata:
  name: fetch-one
  annotations: {{hivegate.dev/command: "{COMMAND}"}}
spec:
  image: docker.io/mcp/fetch
  env: [{{name: WHO, value: one}}]
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPServer
metadata:
  name: fetch-two
  annotations: {{hivegate.dev/command: "{COMMAND}"}}
spec:
  image: docker.io/mcp/fetch
  secrets: [{{name: two-secret, key: who, targetEnvName: WHO}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: two-secret}}
stringData: {{who: two}}
"""


@pytest.fixture
def state(tmp_path: Path) -> Iterator[dict[str, str]]:
    paths = [os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    # absolute: these processes run in another folder
    env = {**os.environ, "HIVEGATE_STATE_DIR": str(tmp_path / "state"), "PYTHONPATH": os.pathsep.join(paths)}
    yield env
    for record in (tmp_path / "state" / "workloads").glob("*.json"):
        pid = json.loads(record.read_text()).get("pid")
        if isinstance(pid, int):
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def hivegate(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "hivegate", *args], env=env, capture_output=True, text=True,
                          timeout=90, cwd=cwd)  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_two_mcpservers_in_the_background_are_two_workloads(tmp_path: Path, state: dict[str, str]) -> None:
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "servers.yaml").write_text(TWO_SERVERS)
    started = hivegate(state, "run", "-f", "manifests", cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    lines = started.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["fetch-one", "fetch-two"]
    listing = {w["name"]: w for w in json.loads(hivegate(state, "list", "--format", "json").stdout)}
    assert set(listing) == {"fetch-one", "fetch-two"}
    for name, who in (("fetch-one", "one"), ("fetch-two", "two")):
        assert listing[name]["status"] == "running"
        assert text(call(listing[name]["url"], None, "getenv", {"name": "WHO"})) == who
    # the same resources cannot start twice; the foreground wants one of them
    again = hivegate(state, "run", "-f", str(folder))
    assert again.returncode != 0
    assert "a workload named 'fetch-one' is already running" in again.stderr
    fg = hivegate(state, "run", "--foreground", "-f", str(folder))
    assert (fg.returncode, fg.stderr) == (2, (
        "hivegate run: error: -f/--file: 2 resources (MCPServer/fetch-one, MCPServer/fetch-two): in the "
        "foreground, run one with --resource NAME, or leave out --foreground to start one workload each\n"
    ))  # fmt: skip
    restarted = hivegate(state, "restart", "fetch-two")
    assert restarted.returncode == 0, restarted.stderr
    url = {w["name"]: w for w in json.loads(hivegate(state, "list", "--format", "json").stdout)}["fetch-two"]["url"]
    assert text(call(url, None, "getenv", {"name": "WHO"})) == "two"
    for name in ("fetch-one", "fetch-two"):
        assert hivegate(state, "stop", name).returncode == 0


@pytest.mark.parametrize(
    ("args", "manifest", "error"),
    [
        (["-f", "missing.yaml"], None,
         "-f/--file: no such file missing.yaml (ToolHive's -f is --foreground here)"),
        (["-f", "m.yaml", "--oidc-issuer", "https://idp.example.com"],
         "spec:\n  oidcConfig: {type: kubernetes, kubernetes: {audience: toolhive}}\n",
         "--oidc-issuer and m.yaml:doc1 MCPServer/s: spec.oidcConfig both set it; keep one"),
        (["-f", "m.yaml", "--authz-config", "authz.json"],
         "spec:\n  authzConfig: {type: inline, inline: {policies: ['permit(principal, action, resource);']}}\n",
         "--authz-config and m.yaml:doc1 MCPServer/s: spec.authzConfig both set it; keep one"),
        (["-f", "m.yaml", "--", "python", "server.py"], "spec: {}\n",
         "-f/--file: the manifest names the server; drop the command or URL after the flags"),
        (["-f", "m.yaml"], "spec:\n  toolConfigRef: {name: filter}\n",
         "m.yaml:doc1 MCPServer/s: spec.toolConfigRef: MCPToolConfig is not supported yet"),
        (["-f", "m.yaml"], "spec:\n  replica: 2\n",
         "m.yaml:doc1 MCPServer/s: spec.replica: unknown field (did you mean 'replicas'?)"),
        (["-f", "m.yaml"], "spec:\n  permissionProfile: {type: builtin, name: none}\n",
         "m.yaml:doc1 MCPServer/s: spec.permissionProfile: only {type: builtin, name: network} can run here "
         "(not enforced yet)"),
        (["-f", "m.yaml"], "spec:\n  telemetry: {prometheus: {enabled: true}}\n",
         "m.yaml:doc1 MCPServer/s: spec.telemetry.prometheus.enabled: give --diagnostics-port PORT, where /metrics "
         "is served"),
    ],
)  # fmt: skip
def test_misuse_is_an_error_naming_the_field(
    tmp_path: Path, state: dict[str, str], args: list[str], manifest: str | None, error: str
) -> None:
    if manifest is not None:
        head = "apiVersion: toolhive.stacklok.dev/v1alpha1\nkind: MCPServer\nmetadata:\n  name: s\n  annotations: "
        head += f'{{hivegate.dev/command: "{COMMAND}"}}\n'
        (tmp_path / "m.yaml").write_text(head + manifest)
    done = hivegate(state, "run", "--foreground", *args, cwd=tmp_path)
    assert (done.returncode, done.stderr.splitlines()[-1]) == (2, f"hivegate run: error: {error}")
