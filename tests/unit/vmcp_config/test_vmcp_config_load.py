"""A vMCP config file loads into the dataclasses the runtime consumes: every key, the defaults, secrets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from hivegate.authn.oidc_config import OIDCConfig
from hivegate.authserver.secrets import SecretResolver
from hivegate.authz.policy_config import AuthzConfig, CedarConfig
from hivegate.errors import ConfigError
from hivegate.observe.audit import AuditConfig
from hivegate.vmcp import (
    Aggregation,
    BackendConfig,
    CircuitBreaker,
    FailureHandling,
    HeaderInjection,
    IncomingAuth,
    Operational,
    OutgoingAuth,
    SessionStorage,
    Telemetry,
    TokenExchange,
    ToolOverride,
    Unauthenticated,
    UpstreamInject,
    VMCPConfig,
    WorkloadTools,
    load_vmcp_config,
    parse_vmcp_config,
)

HMAC = "k" * 32

FULL = """
name: engineering-tools
groupRef: engineering
server: {host: 0.0.0.0, port: 9443, path: /gateway/mcp}
metadata: {team: platform}
backends:
  - name: github
    url: https://github-mcp.example.com/mcp
    metadata: {env: prod}
  - name: legacy
    url: http://legacy.internal:8080/sse
    transport: sse
  - name: kubernetes
    command: kubernetes-mcp-server
    args: [--read-only]
    env: {KUBECONFIG: /etc/kube/config}
incomingAuth:
  type: oidc
  oidc:
    issuer: https://tools.example.com
    clientId: engineering-tools
    clientSecretEnv: VMCP_CLIENT_SECRET
    audience: https://tools.example.com/mcp
    resource: https://tools.example.com/mcp
    jwksUrl: https://tools.example.com/jwks
    introspectionUrl: https://tools.example.com/introspect
    scopes: [openid, mcp:tools]
    protectedResourceAllowPrivateIp: true
    insecureAllowHttp: false
  authz:
    type: cedar
    policies:
      - 'permit(principal in THVGroup::"mcp-developers", action, resource);'
      - 'permit(principal, action == Action::"call_tool", resource == Tool::"github_search");'
    entitiesJson: '[{"uid": {"type": "Tool", "id": "github_search"}, "attrs": {}, "parents": []}]'
    groupClaimName: groups
    roleClaimName: roles
    primaryUpstreamProvider: okta
authServerConfig:
  issuer: https://tools.example.com
  hmacSecretRefs: [{name: as-hmac, key: key}]
  upstreamProviders:
    - name: okta
      type: oidc
      oidcConfig: {issuerUrl: https://okta.example.com, clientId: tools}
    - name: github
      type: oidc
      oidcConfig: {issuerUrl: https://github-idp.example.com, clientId: tools}
outgoingAuth:
  source: inline
  default: {type: unauthenticated}
  backends:
    github:
      type: upstreamInject
      upstreamInject: {providerName: github}
    legacy:
      type: header_injection
      headerInjection: {headerName: X-API-Key, headerValueEnv: LEGACY_KEY}
    kubernetes:
      type: tokenExchange
      tokenExchange:
        tokenUrl: https://sts.example.com/token
        clientId: vmcp
        clientSecretRef: {name: sts, key: secret}
        audience: https://kubernetes.example.com
        scopes: [k8s]
        subjectTokenType: id_token
        subjectProviderName: okta
        externalTokenHeaderName: X-Upstream-Token
aggregation:
  conflictResolution: priority
  conflictResolutionConfig:
    prefixFormat: "{workload}."
    priorityOrder: [github, kubernetes]
  tools:
    - workload: github
      filter: [search, get_issue]
      overrides:
        search: {name: find_code, description: Search code}
        get_issue: {description: Read one issue}
    - workload: legacy
      excludeAll: true
  excludeAllTools: false
operational:
  logLevel: debug
  timeouts:
    default: 45s
    perWorkload: {legacy: 2m}
  failureHandling:
    healthCheckInterval: 10s
    healthCheckTimeout: 5s
    unhealthyThreshold: 5
    statusReportingInterval: 1m
    partialFailureMode: bestEffort
    circuitBreaker: {enabled: true, failureThreshold: 7, timeout: 90s}
sessionStorage:
  provider: redis
  address: 127.0.0.1:6379
  db: 2
  keyPrefix: "tools:"
  passwordRef: {name: redis, key: password}
  ttl: 1h
telemetry:
  endpoint: otel.example.com:4318
  serviceName: engineering-tools
  serviceVersion: "1.2"
  tracingEnabled: true
  metricsEnabled: false
  samplingRate: "0.25"
  headers: {x-api-key: abc}
  insecure: true
  enablePrometheusMetricsPath: true
  environmentVariables: [DEPLOY_ENV]
  customAttributes: {region: eu}
  useLegacyAttributes: false
audit:
  component: vmcp
  eventTypes: [mcp_tool_call]
  excludeEventTypes: [mcp_ping]
  includeRequestData: true
  includeResponseData: true
  maxDataSize: 4096
  logFile: audit.jsonl
compositeTools: []
"""

ENVIRON = {
    "VMCP_CLIENT_SECRET": "oidc-secret",
    "LEGACY_KEY": "legacy-key",
    "HIVEGATE_SECRET_STS_SECRET": "sts-secret",
    "HIVEGATE_SECRET_REDIS_PASSWORD": "redis-pass",
    "HIVEGATE_SECRET_AS_HMAC_KEY": HMAC,
}


def resolver(tmp_path: Path, environ: dict[str, str] | None = None) -> SecretResolver:
    return SecretResolver(base_dir=tmp_path, environ=ENVIRON if environ is None else environ)


def minimal(**extra: Any) -> dict[str, Any]:
    return {
        "name": "tools",
        "backends": [{"name": "fetch", "url": "http://127.0.0.1:9001/mcp"}],
        "incomingAuth": {"type": "anonymous"},
        **extra,
    }


def test_every_key_of_a_full_config_lands_in_its_field(tmp_path: Path) -> None:
    cfg = parse_vmcp_config(yaml.safe_load(FULL), resolver=resolver(tmp_path))
    expected_rest = {
        "name": "engineering-tools",
        "group_ref": "engineering",
        "host": "0.0.0.0",
        "port": 9443,
        "path": "/gateway/mcp",
        "metadata": {"team": "platform"},
    }
    assert {k: getattr(cfg, k) for k in expected_rest} == expected_rest
    assert cfg.backends == (
        BackendConfig("github", "streamable-http", url="https://github-mcp.example.com/mcp", metadata={"env": "prod"}),
        BackendConfig("legacy", "sse", url="http://legacy.internal:8080/sse"),
        BackendConfig(
            "kubernetes",
            "stdio",
            command="kubernetes-mcp-server",
            args=("--read-only",),
            env={"KUBECONFIG": "/etc/kube/config"},
        ),
    )
    assert [b.kind for b in cfg.backends] == ["remote", "remote", "stdio"]
    assert cfg.incoming_auth == IncomingAuth(
        type="oidc",
        oidc=OIDCConfig(
            issuer="https://tools.example.com",
            audience="https://tools.example.com/mcp",
            jwks_url="https://tools.example.com/jwks",
            introspection_url="https://tools.example.com/introspect",
            client_id="engineering-tools",
            client_secret="oidc-secret",
            scopes=("openid", "mcp:tools"),
            resource_url="https://tools.example.com/mcp",
            jwks_allow_private_ip=True,
            mode="oidc",
        ),
        authz=AuthzConfig(
            version="1.0",
            cedar=CedarConfig(
                policies=(
                    'permit(principal in THVGroup::"mcp-developers", action, resource);',
                    'permit(principal, action == Action::"call_tool", resource == Tool::"github_search");',
                ),
                entities_json='[{"uid": {"type": "Tool", "id": "github_search"}, "attrs": {}, "parents": []}]',
                group_claim_name="groups",
                role_claim_name="roles",
            ),
        ),
        primary_upstream_provider="okta",
    )
    assert cfg.auth_server is not None
    assert cfg.auth_server.issuer == "https://tools.example.com"
    assert [u.name for u in cfg.auth_server.upstreams] == ["okta", "github"]
    assert cfg.auth_server.hmac_keys == (HMAC.encode(),)
    assert cfg.outgoing_auth == OutgoingAuth(
        source="inline",
        default=Unauthenticated(),
        backends={
            "github": UpstreamInject("github"),
            "legacy": HeaderInjection("X-API-Key", "legacy-key"),
            "kubernetes": TokenExchange(
                token_url="https://sts.example.com/token",
                client_id="vmcp",
                client_secret="sts-secret",
                audience="https://kubernetes.example.com",
                scopes=("k8s",),
                subject_token_type="urn:ietf:params:oauth:token-type:id_token",
                subject_provider_name="okta",
                external_token_header_name="X-Upstream-Token",
            ),
        },
    )
    assert cfg.aggregation == Aggregation(
        conflict_resolution="priority",
        prefix_format="{workload}.",
        priority_order=("github", "kubernetes"),
        tools=(
            WorkloadTools(
                "github",
                filter=("search", "get_issue"),
                overrides={
                    "search": ToolOverride("find_code", "Search code"),
                    "get_issue": ToolOverride(None, "Read one issue"),
                },
            ),
            WorkloadTools("legacy", exclude_all=True),
        ),
    )
    assert cfg.operational == Operational(
        log_level="debug",
        default_timeout=45.0,
        per_workload_timeouts={"legacy": 120.0},
        failure_handling=FailureHandling(
            health_check_interval=10.0,
            health_check_timeout=5.0,
            unhealthy_threshold=5,
            status_reporting_interval=60.0,
            partial_failure_mode="bestEffort",
            circuit_breaker=CircuitBreaker(enabled=True, failure_threshold=7, timeout=90.0),
        ),
    )
    assert cfg.session_storage == SessionStorage(
        provider="redis", address="127.0.0.1:6379", db=2, key_prefix="tools:", password="redis-pass", ttl=3600.0
    )
    assert cfg.session_storage.redis_url == "redis://127.0.0.1:6379/2"
    assert cfg.telemetry == Telemetry(
        endpoint="otel.example.com:4318",
        service_name="engineering-tools",
        service_version="1.2",
        tracing_enabled=True,
        sampling_rate=0.25,
        headers={"x-api-key": "abc"},
        insecure=True,
        enable_prometheus_metrics_path=True,
        environment_variables=("DEPLOY_ENV",),
        custom_attributes={"region": "eu"},
        use_legacy_attributes=False,
    )
    assert cfg.audit == AuditConfig(
        component="vmcp",
        event_types=frozenset({"mcp_tool_call"}),
        exclude_event_types=frozenset({"mcp_ping"}),
        include_request_data=True,
        include_response_data=True,
        max_data_size=4096,
        log_file="audit.jsonl",
    )
    # the helpers a runtime uses
    assert cfg.backend("legacy").transport == "sse"
    assert cfg.outgoing_auth.for_backend("nobody") == Unauthenticated()
    assert cfg.aggregation.tools_for("kubernetes") == WorkloadTools("kubernetes")
    assert cfg.operational.timeout_for("legacy") == 120.0
    assert cfg.operational.timeout_for("github") == 45.0


def test_the_file_loader_reads_the_same_config(tmp_path: Path) -> None:
    path = tmp_path / "vmcp.yaml"
    path.write_text(FULL)
    assert load_vmcp_config(path, resolver=resolver(tmp_path)) == parse_vmcp_config(
        yaml.safe_load(FULL), resolver=resolver(tmp_path)
    )


def test_secrets_never_show_in_repr(tmp_path: Path) -> None:
    text = repr(parse_vmcp_config(yaml.safe_load(FULL), resolver=resolver(tmp_path)))
    for secret in ("oidc-secret", "legacy-key", "sts-secret", "redis-pass", HMAC):
        assert secret not in text


def test_a_minimal_config_gets_toolhive_defaults(tmp_path: Path) -> None:
    cfg = parse_vmcp_config(minimal(), resolver=resolver(tmp_path, {}))
    assert cfg == VMCPConfig(
        name="tools",
        backends=(BackendConfig("fetch", "streamable-http", url="http://127.0.0.1:9001/mcp"),),
        incoming_auth=IncomingAuth("anonymous", OIDCConfig(mode="anonymous")),
    )
    assert (cfg.host, cfg.port, cfg.path, cfg.group_ref) == ("127.0.0.1", 4483, "/mcp", "default")
    assert cfg.aggregation.conflict_resolution == "prefix"
    assert cfg.aggregation.prefix_format == "{workload}_"
    handling = cfg.operational.failure_handling
    assert (cfg.operational.default_timeout, handling.health_check_interval, handling.unhealthy_threshold) == (
        30,
        30,
        3,
    )
    assert handling.partial_failure_mode == "fail"
    assert handling.circuit_breaker == CircuitBreaker(enabled=False, failure_threshold=5, timeout=60.0)
    assert cfg.session_storage.provider == "memory"
    assert cfg.session_storage.ttl == 1800.0
    assert cfg.session_storage.redis_url is None
    assert cfg.outgoing_auth.for_backend("fetch") == Unauthenticated()


@pytest.mark.parametrize("mode", ["local", "anonymous"])
def test_local_and_anonymous_carry_their_mode_for_the_authenticator(tmp_path: Path, mode: str) -> None:
    cfg = parse_vmcp_config(minimal(incomingAuth={"type": mode}), resolver=resolver(tmp_path, {}))
    assert cfg.incoming_auth.oidc.mode == mode


def test_manual_conflict_resolution_loads_conflicts_are_found_at_start_up(tmp_path: Path) -> None:
    cfg = parse_vmcp_config(minimal(aggregation={"conflictResolution": "manual"}), resolver=resolver(tmp_path, {}))
    assert cfg.aggregation.conflict_resolution == "manual"


def test_toolhive_snake_case_strategy_names_and_best_effort_spelling_are_accepted(tmp_path: Path) -> None:
    data = minimal(
        outgoingAuth={
            "default": {"type": "header_injection", "headerInjection": {"headerName": "X-Key", "headerValue": "v"}}
        },
        operational={"failureHandling": {"partialFailureMode": "best_effort"}},
    )
    cfg = parse_vmcp_config(data, resolver=resolver(tmp_path, {}))
    assert cfg.outgoing_auth.default == HeaderInjection("X-Key", "v")
    assert cfg.operational.failure_handling.partial_failure_mode == "bestEffort"


def test_secret_references_resolve_from_the_mounted_secrets_folder(tmp_path: Path) -> None:
    (tmp_path / "secrets" / "api").mkdir(parents=True)
    (tmp_path / "secrets" / "api" / "key").write_text("from-file\n")
    data = minimal(
        outgoingAuth={
            "default": {
                "type": "headerInjection",
                "headerInjection": {"headerName": "X-Key", "valueSecretRef": {"name": "api", "key": "key"}},
            }
        }
    )
    cfg = parse_vmcp_config(data, resolver=resolver(tmp_path, {}))
    assert cfg.outgoing_auth.default == HeaderInjection("X-Key", "from-file")


def test_a_missing_environment_variable_is_a_load_error(tmp_path: Path) -> None:
    data = minimal(
        outgoingAuth={
            "default": {"type": "headerInjection", "headerInjection": {"headerName": "X", "headerValueEnv": "K"}}
        }
    )
    with pytest.raises(ConfigError) as err:
        parse_vmcp_config(data, resolver=resolver(tmp_path, {}))
    assert str(err.value) == "outgoingAuth.default.headerInjection.headerValueEnv: environment variable K is not set"


def test_redis_url_form_and_address_form(tmp_path: Path) -> None:
    by_url = minimal(sessionStorage={"provider": "redis", "url": "rediss://:pw@cache:6380/1"})
    cfg = parse_vmcp_config(by_url, resolver=resolver(tmp_path, {}))
    assert cfg.session_storage.redis_url == "rediss://:pw@cache:6380/1"
    assert "pw" not in repr(cfg)


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "vmcp.yaml"
    with pytest.raises(ConfigError, match=r"vmcp config .*vmcp.yaml: cannot read"):
        load_vmcp_config(path)
    path.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError) as syntax:
        load_vmcp_config(path)
    assert str(syntax.value) == (  # FILE:LINE:COL, as editors read it
        f"vmcp config {path}:2:1: not valid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow "
        "sequence from line 1, column 7)"
    )
    path.write_text(yaml.safe_dump(minimal(backends=[{"name": "a", "url": "ftp://x"}])))
    with pytest.raises(ConfigError) as err:
        load_vmcp_config(path)
    assert str(err.value) == "vmcp.yaml: backends[0].url: must be an absolute http(s) URL, got 'ftp://x'"
    path.write_text("apiVersion: toolhive.stacklok.dev/v1beta1\nkind: VirtualMCPServer\n")
    with pytest.raises(ConfigError, match=r"a Kubernetes manifest .*load it with -f"):
        load_vmcp_config(path)


@pytest.mark.parametrize(
    ("keys", "private", "http"),
    [
        ({"jwksAllowPrivateIP": True}, True, False),  # the CRDs' spelling
        ({"jwksAllowPrivateIp": True}, True, False),  # ToolHive's vMCP config's
        ({"protectedResourceAllowPrivateIp": True}, True, False),
        ({"protectedResourceAllowPrivateIP": True}, True, False),
        ({"insecureAllowHttp": True}, False, True),
        ({"insecureAllowHTTP": True}, False, True),
    ],
)
def test_incoming_oidc_keys_read_in_either_toolhive_spelling(
    tmp_path: Path, keys: dict[str, bool], private: bool, http: bool
) -> None:
    oidc = {"issuer": "http://127.0.0.1:9/" if http else "https://idp.example.com", "audience": "tools", **keys}
    cfg = parse_vmcp_config(minimal(incomingAuth={"type": "oidc", "oidc": oidc}), resolver=resolver(tmp_path))
    assert (cfg.incoming_auth.oidc.jwks_allow_private_ip, cfg.incoming_auth.oidc.insecure_allow_http) == (
        private,
        http,
    )


def test_an_incoming_oidc_key_given_in_both_spellings_is_an_error(tmp_path: Path) -> None:
    oidc = {"issuer": "https://idp.example.com", "audience": "t", "insecureAllowHTTP": True, "insecureAllowHttp": True}
    with pytest.raises(ConfigError) as info:
        parse_vmcp_config(minimal(incomingAuth={"type": "oidc", "oidc": oidc}), resolver=resolver(tmp_path))
    assert str(info.value) == "incomingAuth.oidc.insecureAllowHTTP: also given as insecureAllowHttp; give it once"
