"""Kubernetes-shaped manifests, run locally: the seeds' resources load into a `VMCPConfig`, references resolved."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from hivegate.errors import ConfigError
from hivegate.vmcp import BackendConfig, ContainerSpec, HeaderInjection, TokenExchange, UpstreamInject, VMCPConfig
from hivegate.vmcp.manifests import load_manifests

DATA = Path(__file__).parent / "data"
WEATHER_IMAGE = "ghcr.io/stackloklabs/weather-mcp/server"
SEED_001_SERVERS = [
    "weather-server-embedded",
    "weather-server-external",
    "weather-server-k8s",
    "weather-server-shared-oidc",
    "weather-server-with-authz",
]

# VirtualMCPServers that use every resource of seeds/001 (whose MCPServers get `groupRef: weather` added)
SEED_001_VMCPS = """
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPGroup
metadata: {name: weather, namespace: toolhive-system}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPOIDCConfig
metadata: {name: embedded-issuer, namespace: toolhive-system}
spec:
  type: inline
  inline: {issuer: 'https://mcp.example.com'}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: VirtualMCPServer
metadata: {name: weather, namespace: toolhive-system}
spec:
  groupRef: {name: weather}
  incomingAuth:
    type: oidc
    oidcConfigRef: {name: embedded-issuer, audience: 'https://mcp.example.com', resourceUrl: 'https://mcp.example.com'}
    authzConfig:
      type: configMap
      configMap: {name: authz-config, key: authz-config.json}
  outgoingAuth:
    source: discovered
    backends:  # the servers with an oidcConfig of their own get a bearer token (the embedded one: discovered)
      weather-server-external: &bearer {type: externalAuthConfigRef, externalAuthConfigRef: {name: weather-bearer}}
      weather-server-k8s: *bearer
      weather-server-shared-oidc: *bearer
      weather-server-with-authz: *bearer
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPExternalAuthConfig
metadata: {name: weather-bearer, namespace: toolhive-system}
spec:
  type: bearerToken
  bearerToken: {tokenSecretRef: {name: weather-token, key: token}}
---
apiVersion: v1
kind: Secret
metadata: {name: weather-token, namespace: toolhive-system}
stringData: {token: a-token-the-servers-accept}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPGroup
metadata: {name: github-login, namespace: toolhive-system}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: VirtualMCPServer
metadata: {name: github-login, namespace: toolhive-system}
spec:
  groupRef: {name: github-login}
  incomingAuth:
    type: oidc
    oidcConfigRef: {name: embedded-issuer, audience: 'https://mcp.example.com'}
  outgoingAuth:
    source: inline
    default:
      type: externalAuthConfigRef
      externalAuthConfigRef: {name: embedded-auth-oauth2}
  config:
    backends:
      - {name: github-tools, url: 'https://github-tools.example.com/mcp'}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPGroup
metadata: {name: shared, namespace: toolhive-system}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: VirtualMCPServer
metadata: {name: shared-oidc, namespace: toolhive-system}
spec:
  groupRef: {name: shared}
  incomingAuth:
    type: oidc
    oidcConfig:
      type: configMap
      configMap: {name: shared-oidc-config, key: oidc.json}
  config:
    backends:
      - {name: tools, url: 'https://tools.example.com/mcp'}
"""


# What every stdio image backend gets: no network, a read-only root with a writable /tmp, no capabilities.
CONFINED = ("--network", "none", "--read-only", "--tmpfs", "/tmp", "--cap-drop", "ALL", "--security-opt",
            "no-new-privileges")  # fmt: skip


@pytest.fixture
def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A `docker` on a PATH of its own: the loader finds a container runtime whatever this machine has."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text("#!/bin/sh\nexit 0\n")
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return str(docker)


@pytest.fixture
def no_runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def seed_001_folder(tmp_path: Path) -> Path:
    """seeds/001 verbatim, each MCPServer joined to the `weather` group, next to the VirtualMCPServers above."""
    docs = (DATA / "seed_001.yaml").read_text().split("\n---\n")
    joined = [
        d.replace("\nspec:\n", "\nspec:\n  groupRef: weather\n", 1) if "kind: MCPServer\n" in d else d for d in docs
    ]
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "seed_001.yaml").write_text("\n---\n".join(joined))
    (folder / "vmcps.yaml").write_text(SEED_001_VMCPS)
    return folder


# -- the seeds ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "issuer", "audience"),
    [
        ("anonymous", "anonymous", None, None),
        ("oidc-inline", "oidc", "https://auth.example.com", "vmcp"),
        ("oidc-introspection", "oidc", "https://auth.example.com", "vmcp"),
        ("service-accounts", "oidc", "https://kubernetes.default.svc", "toolhive"),
        ("discovered", "anonymous", None, None),
    ],
)
def test_seed_000_incoming_auth_fragments_load(name: str, kind: str, issuer: str | None, audience: str | None) -> None:
    cfg = load_manifests([DATA / "seed_000.yaml"], name=name)
    assert cfg.name == name
    assert cfg.incoming_auth.type == kind
    assert (cfg.incoming_auth.oidc.issuer, cfg.incoming_auth.oidc.audience) == (issuer, audience)
    assert cfg.backends == (BackendConfig("fetch", "streamable-http", url="http://127.0.0.1:9001/mcp"),)
    assert cfg.group_ref == "tools"


def test_seed_000_client_secret_comes_from_the_secret_manifest() -> None:
    cfg = load_manifests([DATA / "seed_000.yaml"], name="oidc-introspection")
    assert cfg.incoming_auth.oidc.client_id == "<YOUR_CLIENT_ID>"
    assert cfg.incoming_auth.oidc.client_secret == "<YOUR_CLIENT_SECRET>"
    assert cfg.outgoing_auth.source == "discovered"  # the CRD's default


def test_seed_001_every_resource_loads_with_a_container_runtime(
    tmp_path: Path, fake_docker: str, caplog: pytest.LogCaptureFixture
) -> None:
    folder = seed_001_folder(tmp_path)
    with caplog.at_level(logging.WARNING, logger="hivegate.vmcp"):
        cfg = load_manifests([folder], name="weather")
    # the per-server proxy's and pod's fields are named, not dropped in silence
    unapplied = {m for r in caplog.records for m in re.findall(r"(spec\.\w+): configures ToolHive", r.getMessage())}
    assert {"spec.permissionProfile", "spec.resources", "spec.port"} <= unapplied
    assert [b.name for b in cfg.backends] == SEED_001_SERVERS
    for backend in cfg.backends:
        assert backend.kind == "container"
        assert backend.container == ContainerSpec(fake_docker, WEATHER_IMAGE, 8080)
    assert cfg.backend("weather-server-embedded").transport == "streamable-http"
    assert cfg.backend("weather-server-external").transport == "sse"
    # the embedded-authorization-server MCPServer: the vMCP runs that server and sends the backend Okta's token
    assert cfg.auth_server is not None
    assert cfg.auth_server.issuer == "https://mcp.example.com"
    assert [u.name for u in cfg.auth_server.upstreams] == ["okta"]
    assert cfg.auth_server.upstreams[0].client_secret == "<YOUR_UPSTREAM_CLIENT_SECRET>"
    assert cfg.auth_server.hmac_keys == (b"<YOUR_CRYPTOGRAPHICALLY_RANDOM_KEY>",)
    assert cfg.auth_server.lifespans.refresh == 168 * 3600
    assert cfg.outgoing_auth.source == "discovered"
    assert cfg.outgoing_auth.backends["weather-server-embedded"] == UpstreamInject("okta")
    # the Cedar policies of the authz-config ConfigMap
    assert cfg.incoming_auth.authz is not None
    assert len(cfg.incoming_auth.authz.cedar.policies) == 3
    assert cfg.incoming_auth.oidc.resource_url == "https://mcp.example.com"
    # each MCPServer's own oidcConfig and authzConfig, enforced by the vMCP as its own proxy would
    own = {b.name: b.own_auth for b in cfg.backends}
    assert all(a is not None and a.oidc is not None for a in own.values())
    k8s = own["weather-server-k8s"]
    assert k8s is not None
    assert k8s.oidc is not None
    assert (k8s.oidc.issuer, k8s.oidc.audience, k8s.oidc.service_account) == (
        "https://kubernetes.default.svc",
        "toolhive",
        "client-apps/mcp-client",
    )
    authz = own["weather-server-with-authz"]
    assert authz is not None
    assert authz.authz is not None
    assert len(authz.authz.cedar.policies) == 3
    assert [a.authz for n, a in own.items() if n != "weather-server-with-authz" and a is not None] == [None] * 4
    assert cfg.outgoing_auth.backends["weather-server-k8s"] == HeaderInjection(
        "Authorization", "Bearer a-token-the-servers-accept"
    )


def test_seed_001_servers_with_their_own_oidc_and_no_credential_fail_naming_the_first(
    tmp_path: Path, fake_docker: str
) -> None:
    folder = seed_001_folder(tmp_path)
    vmcps = (folder / "vmcps.yaml").read_text()
    start = vmcps.index("    backends:  # the servers")
    end = vmcps.index("---", start)
    (folder / "vmcps.yaml").write_text(vmcps[:start] + vmcps[end:])
    with pytest.raises(ConfigError) as err:
        load_manifests([folder], name="weather")
    assert str(err.value).startswith(
        "seed_001.yaml:doc1 MCPServer/weather-server-external: spec: backend 'weather-server-external' has its own "
        "oidcConfig, so the vMCP must send it a bearer token that config accepts, and its outgoing auth "
        "(unauthenticated) sends none; give it tokenExchange (without externalTokenHeaderName), bearerToken, "
    )
    assert str(err.value).endswith("spec.outgoingAuth.backends.weather-server-external)")


def test_seed_001_oauth2_upstream_and_shared_oidc_configmap(tmp_path: Path, fake_docker: str) -> None:
    folder = seed_001_folder(tmp_path)
    github = load_manifests([folder], name="github-login")
    assert github.auth_server is not None
    upstream = github.auth_server.upstreams[0]
    assert (upstream.name, upstream.type, upstream.token_endpoint) == (
        "github",
        "oauth2",
        "https://github.com/login/oauth/access_token",
    )
    assert upstream.user_info is not None
    assert upstream.user_info.field_mapping.subject_fields == ("id", "login")
    assert github.outgoing_auth.default == UpstreamInject("github")
    shared = load_manifests([folder], name="shared-oidc")
    oidc = shared.incoming_auth.oidc
    assert (oidc.issuer, oidc.audience, oidc.client_id, oidc.jwks_url) == (
        "https://auth.example.com",
        "https://mcp.example.com",
        "shared-client-id",
        "https://auth.example.com/.well-known/jwks.json",
    )


def test_seed_001_without_docker_or_podman_fails_naming_the_server_and_the_alternatives(
    tmp_path: Path, no_runtime: None
) -> None:
    folder = seed_001_folder(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_manifests([folder], name="weather")
    assert str(err.value) == (
        "seed_001.yaml:doc11 MCPServer/weather-server-embedded: spec.image: running "
        f"'{WEATHER_IMAGE}' needs docker or podman on PATH, and neither was found; set spec.url to where the server "
        "already runs, or the annotation hivegate.dev/command to a local command that starts it"
    )
    # the VirtualMCPServers without image backends load all the same
    assert load_manifests([folder], name="shared-oidc").name == "shared-oidc"


def test_seed_002_engineering_tools(fake_docker: str) -> None:
    cfg = load_manifests([DATA / "seed_002.yaml"])
    assert cfg.name == "engineering-tools"
    github, kubernetes = cfg.backends
    args = ("run", "--rm", "-i", "--label", "hivegate.workload=github", *CONFINED,
            "-e", "GITHUB_TOOLSETS", "ghcr.io/github/github-mcp-server", "stdio")  # fmt: skip
    assert github == BackendConfig(
        "github",
        "stdio",
        command=fake_docker,
        args=args,
        env={"GITHUB_TOOLSETS": "repos,issues"},
    )
    assert kubernetes.container == ContainerSpec(fake_docker, "ghcr.io/containers/kubernetes-mcp-server", 8080)
    assert cfg.outgoing_auth.backends["github"] == UpstreamInject("okta")
    assert cfg.outgoing_auth.backends["kubernetes"] == TokenExchange(
        token_url="https://sts.example.com/oauth2/token",
        client_id="vmcp-exchange",
        client_secret="exchange-secret",
        audience="https://kubernetes.example.com",
        scopes=("k8s:read",),
        subject_provider_name="okta",
    )
    assert cfg.auth_server is not None
    assert cfg.auth_server.upstreams[0].redirect_uri == "https://engineering-tools.example.com/oauth/callback"
    assert cfg.incoming_auth.oidc.issuer == cfg.auth_server.issuer
    assert cfg.incoming_auth.authz is not None
    assert len(cfg.incoming_auth.authz.cedar.policies) == 6
    assert cfg.session_storage.provider == "redis"
    assert cfg.session_storage.password == "redis-pass"
    assert cfg.operational.failure_handling.partial_failure_mode == "bestEffort"


def test_a_pod_manifest_like_seed_004_is_skipped(tmp_path: Path) -> None:
    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: thv-everything, namespace: mcp-servers}\nspec: {}\n")
    cfg = load_manifests([pod, DATA / "seed_000.yaml"], name="anonymous")
    assert cfg.name == "anonymous"


# -- how an MCPServer becomes a backend --------------------------------------------------------------------------------

GROUP = """
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPGroup
metadata: {name: g}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: VirtualMCPServer
metadata: {name: v}
spec:
  groupRef: {name: g}
  incomingAuth: {type: anonymous}
"""


def load(tmp_path: Path, servers: str, extra: str = "") -> VMCPConfig:
    path = tmp_path / "m.yaml"
    path.write_text(GROUP + "---\n" + servers + ("\n---\n" + extra if extra else ""))
    return load_manifests([path])


def test_the_command_annotation_runs_a_local_stdio_server(tmp_path: Path, no_runtime: None) -> None:
    cfg = load(
        tmp_path,
        """
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata:
  name: weather
  annotations: {hivegate.dev/command: "python -m weather_server --units 'metric units'"}
spec:
  groupRef: g
  image: ghcr.io/stackloklabs/weather-mcp/server
  env: [{name: API_KEY, value: abc}]
""",
    )
    assert cfg.backends == (
        BackendConfig(
            "weather",
            "stdio",
            command="python",
            args=("-m", "weather_server", "--units", "metric units"),
            env={"API_KEY": "abc"},
        ),
    )


def test_the_command_annotation_with_an_http_transport_listens_on_spec_url(tmp_path: Path) -> None:
    server = """
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata:
  name: weather
  annotations: {hivegate.dev/command: "weather-server --port 9100", hivegate.dev/transport: sse}
spec:
  groupRef: g
  url: http://127.0.0.1:9100/sse
"""
    backend = load(tmp_path, server).backends[0]
    assert backend == BackendConfig(
        "weather", "sse", url="http://127.0.0.1:9100/sse", command="weather-server", args=("--port", "9100")
    )
    assert backend.kind == "launched"
    with pytest.raises(ConfigError, match=r"MCPServer/weather: spec.url: required: where the sse server"):
        load(tmp_path, server.replace("  url: http://127.0.0.1:9100/sse\n", ""))


def test_spec_url_is_a_running_server_and_wins_over_the_image(tmp_path: Path, no_runtime: None) -> None:
    cfg = load(
        tmp_path,
        """
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata: {name: remote}
spec:
  groupRef: {name: g}
  image: ghcr.io/example/remote
  url: https://remote.example.com/mcp
""",
    )
    assert cfg.backends == (BackendConfig("remote", "streamable-http", url="https://remote.example.com/mcp"),)


def test_secrets_become_the_container_environment_never_its_command_line(tmp_path: Path, fake_docker: str) -> None:
    cfg = load(
        tmp_path,
        """
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata: {name: github}
spec:
  groupRef: g
  image: ghcr.io/github/github-mcp-server
  secrets: [{name: github-token, key: token, targetEnvName: GITHUB_PERSONAL_ACCESS_TOKEN}]
""",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: github-token}\nstringData: {token: ghp_secret}\n",
    )
    backend = cfg.backends[0]
    assert backend.env == {"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_secret"}
    assert "ghp_secret" not in " ".join(backend.args)
    assert "ghp_secret" not in repr(cfg)
    assert backend.args == (
        "run", "--rm", "-i", "--label", "hivegate.workload=github", *CONFINED,
        "-e", "GITHUB_PERSONAL_ACCESS_TOKEN", "ghcr.io/github/github-mcp-server",
    )  # fmt: skip


def test_podman_is_used_when_docker_is_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    podman = bin_dir / "podman"
    podman.write_text("#!/bin/sh\n")
    podman.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    server = "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: s}\n"
    cfg = load(tmp_path, server + "spec: {groupRef: g, image: example/s}\n")
    assert cfg.backends[0].command == str(podman)


def test_bearer_token_and_header_injection_configs_become_header_strategies(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata: {name: a}
spec: {groupRef: g, url: 'https://a.example.com/mcp', externalAuthConfigRef: {name: bearer}}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata: {name: b}
spec: {groupRef: g, url: 'https://b.example.com/mcp', externalAuthConfigRef: {name: api-key}}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPExternalAuthConfig
metadata: {name: bearer}
spec:
  type: bearerToken
  bearerToken: {tokenSecretRef: {name: creds, key: token}}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPExternalAuthConfig
metadata: {name: api-key}
spec:
  type: headerInjection
  headerInjection: {headerName: X-API-Key, valueSecretRef: {name: creds, key: api-key}}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {token: t0k3n, api-key: k3y}
""",
    )
    assert dict(cfg.outgoing_auth.backends) == {
        "a": HeaderInjection("Authorization", "Bearer t0k3n"),
        "b": HeaderInjection("X-API-Key", "k3y"),
    }


# -- errors name file, document, resource and field --------------------------------------------------------------------

SERVER_A = """apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata: {name: a}
spec: {groupRef: g, url: 'https://a.example.com/mcp', externalAuthConfigRef: {name: ext}}"""

ERRORS = [
    (
        "missing MCPExternalAuthConfig",
        SERVER_A,
        "m.yaml:doc3 MCPServer/a: spec.externalAuthConfigRef: MCPExternalAuthConfig 'ext' not found in namespace "
        "default",
    ),
    (
        "missing Secret",
        SERVER_A
        + "\n---\napiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPExternalAuthConfig\nmetadata: {name: ext}\n"
        "spec: {type: headerInjection, headerInjection: {headerName: X, valueSecretRef: {name: nope, key: k}}}",
        "m.yaml:doc4 MCPExternalAuthConfig/ext: spec.headerInjection.valueSecretRef: secret nope/k not found "
        "(set HIVEGATE_SECRET_NOPE_K, or create {dir}/secrets/nope/k)",
    ),
    (
        "unknown strategy type",
        SERVER_A
        + "\n---\napiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPExternalAuthConfig\nmetadata: {name: ext}\n"
        "spec: {type: kerberos}",
        "m.yaml:doc4 MCPExternalAuthConfig/ext: spec.type: unknown strategy type 'kerberos' "
        "(use unauthenticated, headerInjection, tokenExchange or upstreamInject)",
    ),
    (
        "upstreamInject with no authorization server",
        SERVER_A
        + "\n---\napiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPExternalAuthConfig\nmetadata: {name: ext}\n"
        "spec: {type: upstreamInject, upstreamInject: {providerName: okta}}",
        "m.yaml:doc4 MCPExternalAuthConfig/ext: spec.upstreamInject.providerName: names upstream provider 'okta', "
        "but there is no embedded authorization server",
    ),
    (
        "unknown field in an MCPServer",
        "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: a}\n"
        "spec: {groupRef: g, url: 'https://a.example.com/mcp', imagePullPolicy: Always}",
        "m.yaml:doc3 MCPServer/a: spec.imagePullPolicy: unknown field",
    ),
    (
        "an MCPServer with nothing to run",
        "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: a}\nspec: {groupRef: g}",
        "m.yaml:doc3 MCPServer/a: spec.image: required (or spec.url, or the annotation hivegate.dev/command)",
    ),
    (
        "an empty group",
        "",
        "m.yaml:doc2 VirtualMCPServer/v: spec.groupRef: no MCPServer in namespace default has groupRef 'g'",
    ),
    (
        "a ToolHive kind vmcp serve does not read",
        "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPRemoteProxy\nmetadata: {name: r}\nspec: {}",
        "m.yaml:doc3 MCPRemoteProxy/r: not supported by vmcp serve yet (`hivegate run -f` runs it on its own)",
    ),
    (
        "an MCPServer name that is not a DNS label",
        "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: a.b}\n"
        "spec: {groupRef: g, url: 'https://a.example.com/mcp'}",
        "m.yaml:doc3 MCPServer/a.b: metadata.name: must be a DNS label (lowercase letters, digits and hyphens, "
        "at most 63), got 'a.b'",
    ),
    (
        "a resource defined twice",
        "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPGroup\nmetadata: {name: g}",
        "m.yaml:doc3 MCPGroup/g: also defined at m.yaml:doc1",
    ),
]


@pytest.mark.parametrize(("servers", "message"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_a_bad_manifest_names_file_document_resource_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, servers: str, message: str
) -> None:
    monkeypatch.delenv("HIVEGATE_SECRETS_DIR", raising=False)
    with pytest.raises(ConfigError) as err:
        load(tmp_path, servers)
    assert str(err.value) == message.replace("{dir}", str(tmp_path))


def test_vmcp_spec_errors(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(
        GROUP.replace(
            "incomingAuth: {type: anonymous}",
            "incomingAuth: {type: anonymous}\n  config: {aggregation: {tools: [{workload: nope}]}}",
        )
        + "---\napiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: a}\n"
        "spec: {groupRef: g, url: 'https://a.example.com/mcp'}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_manifests([path])
    assert str(err.value) == (
        "v.yaml:doc2 VirtualMCPServer/v: spec.config.aggregation.tools[0].workload: no backend named 'nope' (known: a)"
    )


def test_an_mcpgroup_spec_holds_a_description_only(tmp_path: Path) -> None:
    server = "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: a}\n"
    server += "spec: {groupRef: g, url: 'https://a.example.com/mcp'}"
    path = tmp_path / "m.yaml"
    path.write_text(
        GROUP.replace("metadata: {name: g}", "metadata: {name: g}\nspec: {descripton: tools}") + "---\n" + server
    )
    with pytest.raises(ConfigError) as err:
        load_manifests([path])
    assert str(err.value) == "m.yaml:doc1 MCPGroup/g: spec.descripton: unknown field (did you mean 'description'?)"
    path.write_text(
        GROUP.replace("metadata: {name: g}", "metadata: {name: g}\nspec: {description: tools}") + "---\n" + server
    )
    assert load_manifests([path]).group_ref == "g"


def test_several_vmcps_need_a_name_and_a_missing_one_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"several VirtualMCPServers \(anonymous, discovered, oidc-inline"):
        load_manifests([DATA / "seed_000.yaml"])
    with pytest.raises(ConfigError, match="no VirtualMCPServer named 'nope'"):
        load_manifests([DATA / "seed_000.yaml"], name="nope")
    with pytest.raises(ConfigError, match="no such file or folder"):
        load_manifests([tmp_path / "missing"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match=r"no \.yaml, \.yml or \.json files"):
        load_manifests([empty])


def test_outgoing_auth_for_a_backend_not_in_the_group_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(
        GROUP.replace(
            "incomingAuth: {type: anonymous}",
            "incomingAuth: {type: anonymous}\n  outgoingAuth: {backends: {b: {type: discovered}}}",
        )
        + "---\napiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: a}\n"
        "spec: {groupRef: g, url: 'https://a.example.com/mcp'}\n"
    )
    with pytest.raises(ConfigError) as err:
        load_manifests([path])
    assert (
        str(err.value)
        == "v.yaml:doc2 VirtualMCPServer/v: spec.outgoingAuth.backends.b: no backend named 'b' (known: a)"
    )


def test_a_remote_server_does_not_need_the_secrets_of_its_container(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: a}\n"
        "spec: {groupRef: g, url: 'https://a.example.com/mcp', secrets: [{name: absent, key: k}]}",
    )
    assert cfg.backends[0].env == {}
