"""`hivegate run -f`'s reading of one `MCPServer` / `MCPRemoteProxy`: the seeds' resources, field by field."""

from __future__ import annotations

from pathlib import Path

import pytest

from hivegate.errors import ConfigError
from hivegate.vmcp.manifests.proxyfields import Telemetry
from hivegate.vmcp.manifests.standalone import ManifestServer, build_server, read_servers
from hivegate.vmcp.spec import TokenExchange

DATA = Path(__file__).parent / "data"
STAND_IN = "  annotations: {hivegate.dev/command: 'python3 server.py'}\n"


def seed_001_with_command(tmp_path: Path) -> Path:
    """seeds/001 verbatim, each MCPServer started by a local command instead of its image."""
    text = (DATA / "seed_001.yaml").read_text()
    docs = [
        d.replace("\nspec:\n", f"\n{STAND_IN}spec:\n", 1) if "kind: MCPServer\n" in d else d
        for d in text.split("\n---\n")
    ]
    path = tmp_path / "seed_001.yaml"
    path.write_text("\n---\n".join(docs))
    return path


def servers(path: Path) -> dict[str, ManifestServer]:
    manifests = read_servers([path])
    return {d.name: build_server(manifests, d) for d in manifests.servers}


def test_seed_001_mcpservers_map_to_their_gateways(tmp_path: Path) -> None:
    found = servers(seed_001_with_command(tmp_path))
    assert sorted(found) == ["weather-server-embedded", "weather-server-external", "weather-server-k8s",
                             "weather-server-shared-oidc", "weather-server-with-authz"]  # fmt: skip
    external = found["weather-server-external"]
    assert (external.transport, external.command, external.port) == ("stdio", ("python3", "server.py"), 8080)
    assert external.auth is not None
    assert (external.auth.issuer, external.auth.audience, external.auth.client_id, external.auth.jwks_url) == (
        "https://your-oidc-issuer.com", "your-audience", "your-client-id", "https://your-oidc-issuer.com/path/to/jwks",
    )  # fmt: skip
    origin = "seed_001.yaml:doc1 MCPServer/weather-server-external: spec"
    assert external.warnings == (
        f"{origin}.resources: used in a Kubernetes cluster only; not applied here",
        f"{origin}.permissionProfile: network: the server runs with this machine's network, as the profile allows",
        f"{origin}.transport: sse: the server started by hivegate.dev/command speaks stdio (set "
        "hivegate.dev/transport to run it otherwise)",
    )
    shared = found["weather-server-shared-oidc"].auth
    assert shared is not None
    assert (shared.issuer, shared.audience) == ("https://auth.example.com", "https://mcp.example.com")
    k8s = found["weather-server-k8s"].auth
    assert k8s is not None
    assert (k8s.issuer, k8s.audience, k8s.service_account) == (
        "https://kubernetes.default.svc", "toolhive", "client-apps/mcp-client"
    )  # fmt: skip
    authz = found["weather-server-with-authz"]
    assert authz.authz is not None
    assert len(authz.authz.cedar.policies) == 3
    assert authz.authz_source == "seed_001.yaml:doc14 MCPServer/weather-server-with-authz: spec.authzConfig"
    embedded = found["weather-server-embedded"]
    assert embedded.auth_server is not None
    assert embedded.auth_server.issuer == "https://mcp.example.com"
    assert embedded.auth is not None
    assert embedded.auth.resource_url == "https://mcp.example.com"
    assert "embeddedAuthServer" in embedded.fields
    assert embedded.upstream_inject is None  # a stdio server: no HTTP request to carry Okta's token


def test_seed_001_images_serving_http_are_refused_naming_the_field(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text("#!/bin/sh\n")
    (bin_dir / "docker").chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", str(bin_dir))
        manifests = read_servers([DATA / "seed_001.yaml"])
        with pytest.raises(ConfigError) as err:
            build_server(manifests, manifests.servers[0])
    assert str(err.value) == (
        "seed_001.yaml:doc1 MCPServer/weather-server-external: spec.image: an image serving sse cannot run under "
        "`hivegate run -f` yet; set spec.url to where it runs, or the annotation hivegate.dev/command to a local "
        "command"
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


def one(tmp_path: Path, spec: str, *, kind: str = "MCPServer", extra: str = "") -> ManifestServer:
    head = f"apiVersion: toolhive.stacklok.dev/v1beta1\nkind: {kind}\nmetadata:\n  name: s\n"
    if kind == "MCPServer":
        head += STAND_IN
    found = servers(write(tmp_path, head + "spec:\n" + spec + extra))
    return found["s"]


def test_a_remote_proxy_with_headers_a_token_exchange_and_telemetry(tmp_path: Path) -> None:
    proxy = one(
        tmp_path,
        """
  remoteUrl: https://mcp.example.com/mcp
  proxyPort: 9000
  groupRef: {name: team}
  oidcConfig: {type: inline, inline: {issuer: 'https://idp.example.com', audience: tools}}
  headerForward:
    addPlaintextHeaders: {X-Tenant-ID: acme}
    addHeadersFromSecret: [{headerName: X-API-Key, valueSecretRef: {name: api, key: k}}]
  telemetry:
    openTelemetry:
      enabled: true
      endpoint: otel-collector:4318
      insecure: true
      headers: ['x-honeycomb-team=abc']
      tracing: {enabled: true, samplingRate: '0.25'}
  audit: {enabled: true}
""",
        kind="MCPRemoteProxy",
        extra="---\napiVersion: v1\nkind: Secret\nmetadata: {name: api}\nstringData: {k: v1}\n",
    )
    assert (proxy.transport, proxy.url, proxy.port, proxy.group, proxy.audit) == (
        "streamable-http", "https://mcp.example.com/mcp", 9000, "team", True
    )  # fmt: skip
    assert proxy.forward_headers == (("X-Tenant-ID", "acme"), ("X-API-Key", "v1"))
    assert proxy.telemetry == Telemetry("http://otel-collector:4318", None, 0.25, (("x-honeycomb-team", "abc"),))
    assert proxy.warnings == ()


def test_a_remote_proxys_transport_is_read(tmp_path: Path) -> None:
    """`transport` is a field of MCPRemoteProxy too (ToolHive's CRD has it): sse reaches a legacy SSE server."""
    proxy = one(tmp_path, "  remoteUrl: https://mcp.example.com/sse\n  transport: sse\n", kind="MCPRemoteProxy")
    assert (proxy.transport, proxy.url) == ("sse", "https://mcp.example.com/sse")


def test_a_token_exchange_config_is_the_remote_backends_credential(tmp_path: Path) -> None:
    proxy = one(tmp_path, """
  remoteUrl: http://127.0.0.1:9/mcp
  oidcConfig: {type: inline, inline: {issuer: 'https://idp.example.com', audience: tools}}
  externalAuthConfigRef: {name: sts}
""", kind="MCPRemoteProxy", extra="""---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPExternalAuthConfig
metadata: {name: sts}
spec:
  type: tokenExchange
  tokenExchange: {tokenUrl: 'https://sts.example.com/token', audience: backend, clientId: gw}
""")  # fmt: skip
    assert proxy.token_exchange == TokenExchange("https://sts.example.com/token", client_id="gw", audience="backend")
    assert proxy.warnings == (
        "m.yaml:doc1 MCPRemoteProxy/s: spec.remoteUrl: a private or loopback address: ToolHive refuses it without "
        "allowPrivateEndpoint: true; hivegate does not restrict it",
    )


def test_env_and_secrets_become_the_stdio_servers_environment(tmp_path: Path) -> None:
    server = one(
        tmp_path,
        """
  env: [{name: MODE, value: fast}]
  secrets: [{name: creds, key: token, targetEnvName: API_TOKEN}]
  proxyMode: sse
  tools: [weather]
""",
        extra="---\napiVersion: v1\nkind: Secret\nmetadata: {name: creds}\nstringData: {token: t0k}\n",
    )
    assert dict(server.env) == {"MODE": "fast", "API_TOKEN": "t0k"}
    assert (server.proxy_mode, server.tools) == ("sse", ("weather",))


def test_the_folder_of_a_mounted_configmap_is_read_once(tmp_path: Path) -> None:
    """A ConfigMap mounted in a pod: `NAME -> ..data/NAME`, `..data -> ..2026_12_07…/`."""
    folder = tmp_path / "config"
    stamped = folder / "..2026_12_07_13_00_00.1"
    stamped.mkdir(parents=True)
    (stamped / "server.yaml").write_text(
        f"apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata:\n  name: s\n{STAND_IN}spec: {{}}\n"
    )
    (folder / "..data").symlink_to(stamped.name)
    (folder / "server.yaml").symlink_to("..data/server.yaml")
    assert [d.name for d in read_servers([folder]).servers] == ["s"]


HEADER_CONFIG = """---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPExternalAuthConfig
metadata: {name: hdr}
spec:
  type: headerInjection
  headerInjection: {headerName: X-API-Key, valueSecretRef: {name: api, key: k}}
---
apiVersion: v1
kind: Secret
metadata: {name: api}
stringData: {k: v1}
"""


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ("  replica: 2\n", "spec.replica: unknown field (did you mean 'replicas'?)"),
        ("  headerForward: {addPlaintextHeaders: {X-A: b}}\n", "spec.headerForward: unknown field (of MCPServer)"),
        ("  volumes: [{name: data}]\n", "spec.volumes: not supported yet"),
        ("  telemetryConfigRef: {name: otel}\n",
         "spec.telemetryConfigRef: MCPTelemetryConfig is not supported yet; use telemetry"),
        ("  authzConfigRef: {name: shared}\n",
         "spec.authzConfigRef: MCPAuthzConfig is not supported yet; use authzConfig"),
        ("  proxyPort: 9000\n  port: 9001\n", "spec.port: 9001 differs from proxyPort 9000; keep one"),
        ("  proxyPort: 70000\n", "spec.proxyPort: must be between 0 and 65535, got 70000"),
        ("  oidcConfig: {type: kubernetes, kubernetes: {}}\n  oidcConfigRef: {name: x, audience: y}\n",
         "spec.oidcConfigRef: give oidcConfig or oidcConfigRef, not both"),
        ("  externalAuthConfigRef: {name: hdr}\n",
         "spec.externalAuthConfigRef: a stdio server has no HTTP requests to authenticate"),
        ("  telemetry: {openTelemetry: {enabled: true, metrics: {enabled: true}}}\n",
         "spec.telemetry.openTelemetry.metrics.enabled: OTLP metrics are not exported; use telemetry.prometheus"),
        ("  telemetry: {openTelemetry: {enabled: true, tracing: {enabled: true}}}\n",
         "spec.telemetry.openTelemetry.endpoint: required when tracing is enabled"),
        ("  authzConfig: {type: inline, inline: {policies: ['permit(principal, action, resource);'], "
         "primaryUpstreamProvider: okta}}\n",
         "spec.authzConfig.inline.primaryUpstreamProvider: used by vmcp serve only"),
        ("  permissionProfile: {type: configMap, name: p, key: k}\n",
         "spec.permissionProfile: only {type: builtin, name: network} can run here (not enforced yet)"),
    ],
)  # fmt: skip
def test_errors_name_the_field(tmp_path: Path, spec: str, error: str) -> None:
    with pytest.raises(ConfigError) as err:
        one(tmp_path, spec, extra=HEADER_CONFIG)
    assert str(err.value) == f"m.yaml:doc1 MCPServer/s: {error}"


EMBEDDED = """---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPExternalAuthConfig
metadata: {name: as}
spec:
  type: embeddedAuthServer
  embeddedAuthServer:
    issuer: 'https://mcp.example.com'
    upstreamProviders:
      - name: okta
        type: oidc
        oidcConfig: {issuerUrl: 'https://okta.example.com', clientId: c, clientSecretRef: {name: s, key: k}}
---
apiVersion: v1
kind: Secret
metadata: {name: s}
stringData: {k: v}
"""


def test_the_embedded_authorization_server_and_its_issuer(tmp_path: Path) -> None:
    proxy = one(tmp_path, """
  remoteUrl: https://tools.example.com/mcp
  authServerRef: {kind: MCPExternalAuthConfig, name: as}
  externalAuthConfigRef: {name: as}
  oidcConfig: {type: inline, resourceUrl: 'https://mcp.example.com/mcp', inline: {issuer: 'https://mcp.example.com'}}
""", kind="MCPRemoteProxy", extra=EMBEDDED)  # fmt: skip
    assert proxy.auth_server is not None
    assert proxy.upstream_inject == "okta"  # an HTTP backend gets the caller's Okta token
    with pytest.raises(ConfigError) as err:
        one(tmp_path, """
  externalAuthConfigRef: {name: as}
  oidcConfig: {type: inline, inline: {issuer: 'https://other.example.com'}}
""", extra=EMBEDDED)  # fmt: skip
    assert str(err.value) == (
        "m.yaml:doc1 MCPServer/s: spec.oidcConfig.inline.issuer: 'https://other.example.com' is not the embedded "
        "authorization server's issuer 'https://mcp.example.com' (m.yaml:doc2 MCPExternalAuthConfig/as: "
        "spec.embeddedAuthServer.issuer)"
    )


def test_secrets_not_in_the_manifests_come_from_files_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a pod the manifests are a mounted ConfigMap and the Secrets are mounted volumes or environment variables,
    never copied into the ConfigMap."""
    secrets = tmp_path / "secrets"
    (secrets / "creds").mkdir(parents=True)
    (secrets / "creds" / "token").write_text("from-a-file\n")
    monkeypatch.setenv("HIVEGATE_SECRETS_DIR", str(secrets))
    monkeypatch.setenv("HIVEGATE_SECRET_OTHER_KEY", "from-the-env")
    server = one(tmp_path, """
  secrets:
    - {name: creds, key: token, targetEnvName: API_TOKEN}
    - {name: other, key: key, targetEnvName: OTHER}
""")  # fmt: skip
    assert dict(server.env) == {"API_TOKEN": "from-a-file", "OTHER": "from-the-env"}
    with pytest.raises(ConfigError) as err:
        one(tmp_path, "  secrets: [{name: gone, key: k}]\n")
    assert str(err.value) == (
        f"m.yaml:doc1 MCPServer/s: spec.secrets[0]: secret gone/k not found (set HIVEGATE_SECRET_GONE_K, or create "
        f"{secrets}/gone/k)"
    )


@pytest.mark.parametrize(
    ("config", "headers"),
    [
        (HEADER_CONFIG, (("X-API-Key", "v1"),)),
        ("---\napiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPExternalAuthConfig\nmetadata: {name: hdr}\n"
         "spec: {type: bearerToken, bearerToken: {tokenSecretRef: {name: api, key: k}}}\n---\napiVersion: v1\n"
         "kind: Secret\nmetadata: {name: api}\nstringData: {k: t0k}\n", (("Authorization", "Bearer t0k"),)),
        ("---\napiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPExternalAuthConfig\nmetadata: {name: hdr}\n"
         "spec: {type: unauthenticated}\n", ()),
    ],
)  # fmt: skip
def test_header_configs_are_the_remote_backends_headers(
    tmp_path: Path, config: str, headers: tuple[tuple[str, str], ...]
) -> None:
    proxy = one(tmp_path, "  remoteUrl: https://tools.example.com/mcp\n  externalAuthConfigRef: {name: hdr}\n",
                kind="MCPRemoteProxy", extra=config)  # fmt: skip
    assert (proxy.forward_headers, proxy.token_exchange, proxy.upstream_inject) == (headers, None, None)


def test_an_mcpservers_oidc_keys_read_in_the_vmcp_configs_spelling_too(tmp_path: Path) -> None:
    spec = "  oidcConfig: {type: inline, inline: {issuer: 'http://127.0.0.1:9', audience: t, insecureAllowHttp: true, "
    server = one(tmp_path, spec + "jwksAllowPrivateIp: true}}\n")
    assert server.auth is not None
    assert (server.auth.insecure_allow_http, server.auth.jwks_allow_private_ip) == (True, True)


def _with_storage(tmp_path: Path, spec: str) -> Path:
    path = tmp_path / "stored.yaml"
    path.write_text(
        "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata:\n  name: tools\n  namespace: ns\n"
        f"{STAND_IN}spec:\n{spec}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: redis}}\n"
        "stringData: {password: pw}\n"
    )
    return path


def test_session_storage_in_redis_is_read_with_its_password_from_a_secret(tmp_path: Path) -> None:
    spec = (
        "  sessionStorage: {provider: redis, address: 'cache:6379', db: 2, passwordRef: {name: redis, key: password}}\n"
    )
    server = servers(_with_storage(tmp_path, spec))["tools"]
    storage = server.session_storage
    assert storage is not None
    assert (storage.redis_url, storage.password, storage.key_prefix) == (
        "redis://cache:6379/2", "pw", "hivegate:MCPServer:ns:tools:"
    )  # fmt: skip
    assert server.warnings == ()


@pytest.mark.parametrize(
    ("spec", "warning"),
    [
        ("  url: http://tools.example/mcp\n  transport: streamable-http\n",
         "spec.sessionStorage: not used: the server keeps its sessions (streamable-http)"),
        ("  proxyMode: sse\n", "spec.sessionStorage: not used: with proxyMode sse a client's stream stays"),
    ],
)  # fmt: skip
def test_session_storage_where_a_session_cannot_move_is_a_warning(tmp_path: Path, spec: str, warning: str) -> None:
    storage = "  sessionStorage: {provider: redis, address: 'cache:6379'}\n"
    text = _with_storage(tmp_path, spec + storage).read_text()
    if "url:" in spec:
        text = text.replace(STAND_IN, "")
    (tmp_path / "stored.yaml").write_text(text)
    server = servers(tmp_path / "stored.yaml")["tools"]
    assert server.session_storage is None
    assert [w for w in server.warnings if "sessionStorage" in w] == [
        next(w for w in server.warnings if w.startswith(f"stored.yaml:doc1 MCPServer/tools: {warning}"))
    ]


def test_session_storage_takes_toolhives_fields(tmp_path: Path) -> None:
    spec = "  sessionStorage: {provider: redis, address: 'cache:6379', ttl: 5m}\n"
    with pytest.raises(ConfigError, match=r"spec\.sessionStorage\.ttl: unknown field"):
        servers(_with_storage(tmp_path, spec))
    with pytest.raises(ConfigError, match=r"spec\.sessionStorage\.address: required with provider redis"):
        servers(_with_storage(tmp_path, "  sessionStorage: {provider: redis}\n"))
