"""Bad vMCP configs: each gives one error line that names the path of the field at fault."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hivegate.authserver.secrets import SecretResolver
from hivegate.errors import ConfigError
from hivegate.vmcp import parse_vmcp_config

OKTA = {"name": "okta", "type": "oidc", "oidcConfig": {"issuerUrl": "https://okta.example.com", "clientId": "c"}}
AUTH_SERVER = {"issuer": "https://tools.example.com", "upstreamProviders": [OKTA]}
OIDC = {"type": "oidc", "oidc": {"issuer": "https://tools.example.com", "audience": "tools"}}
BASE: dict[str, Any] = {
    "name": "tools",
    "backends": [
        {"name": "github", "url": "https://github-mcp.example.com/mcp"},
        {"name": "kubernetes", "command": "kubernetes-mcp-server"},
    ],
    "incomingAuth": {"type": "anonymous"},
}


def edit(change: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    change(data)
    return data


def strategy(name: str, value: dict[str, Any]) -> Callable[[dict[str, Any]], object]:
    return lambda d: d.update(outgoingAuth={"backends": {name: value}})


CASES: list[tuple[str, Callable[[dict[str, Any]], object], str]] = [
    (
        "unknown key, nested",
        lambda d: d.update(aggregation={"tools": [{"workload": "github"}, {"workload": "kubernetes", "filtr": ["x"]}]}),
        "aggregation.tools[1].filtr: unknown field (did you mean 'filter'?)",
    ),
    ("unknown key, top level", lambda d: d.update(backend=[]), "backend: unknown field (did you mean 'backends'?)"),
    (
        "unknown key, deep in operational",
        lambda d: d.update(operational={"failureHandling": {"circuitBreaker": {"treshold": 3}}}),
        "operational.failureHandling.circuitBreaker.treshold: unknown field",
    ),
    (
        "both url and command",
        lambda d: d["backends"][1].update(url="http://127.0.0.1:9000/mcp"),
        "backends[1]: give url (a remote server) or command (a stdio server), not both",
    ),
    (
        "neither url nor command",
        lambda d: d["backends"][0].pop("url"),
        "backends[0]: needs url (a remote server) or command (a stdio server)",
    ),
    (
        "duplicate backend names",
        lambda d: d["backends"].append({"name": "github", "url": "https://other.example.com/mcp"}),
        "backends[2].name: duplicate backend name 'github'",
    ),
    (
        "backend name not a DNS label",
        lambda d: d["backends"][0].update(name="GitHub_Tools"),
        "backends[0].name: must be a DNS label (lowercase letters, digits and hyphens, at most 63), got 'GitHub_Tools'",
    ),
    ("no backends", lambda d: d.update(backends=[]), "backends: at least one backend is required"),
    (
        "stdio backend with an http transport",
        lambda d: d["backends"][1].update(transport="sse"),
        "backends[1].transport: a command backend speaks stdio, got 'sse'",
    ),
    (
        "args on a url backend",
        lambda d: d["backends"][0].update(args=["x"]),
        "backends[0].args: only used with command (a stdio server)",
    ),
    (
        "unknown transport",
        lambda d: d["backends"][0].update(transport="websocket"),
        "backends[0].transport: must be streamable-http or sse, got 'websocket'",
    ),
    (
        "tokenExchange without tokenUrl",
        strategy("github", {"type": "tokenExchange", "tokenExchange": {"clientId": "x", "audience": "y"}}),
        "outgoingAuth.backends.github.tokenExchange.tokenUrl: required",
    ),
    (
        "tokenExchange with a misspelt tokenUrl",
        strategy("github", {"type": "tokenExchange", "tokenExchange": {"tokenURL": "https://sts.example.com"}}),
        "outgoingAuth.backends.github.tokenExchange.tokenURL: unknown field (did you mean 'tokenUrl'?)",
    ),
    (
        "tokenExchange over plain http",
        strategy("github", {"type": "tokenExchange", "tokenExchange": {"tokenUrl": "http://sts.example.com/token"}}),
        "outgoingAuth.backends.github.tokenExchange.tokenUrl: must be https (http only on loopback), "
        "got 'http://sts.example.com/token'",
    ),
    (
        "unknown strategy type",
        strategy("github", {"type": "oauth_magic"}),
        "outgoingAuth.backends.github.type: unknown strategy type 'oauth_magic' "
        "(use unauthenticated, headerInjection, tokenExchange or upstreamInject)",
    ),
    (
        "a strategy ToolHive has and hivegate not yet",
        strategy("github", {"type": "awsSts"}),
        "outgoingAuth.backends.github.type: strategy 'awsSts' is not supported yet",
    ),
    (
        "headerInjection with two values",
        strategy(
            "github",
            {
                "type": "headerInjection",
                "headerInjection": {"headerName": "X", "headerValue": "a", "headerValueEnv": "B"},
            },
        ),
        "outgoingAuth.backends.github.headerInjection.headerValueEnv: give one of headerValue, headerValueEnv or "
        "valueSecretRef",
    ),
    (
        "headerInjection section under another type",
        strategy("github", {"type": "unauthenticated", "headerInjection": {"headerName": "X"}}),
        "outgoingAuth.backends.github.headerInjection: not used with type unauthenticated",
    ),
    (
        "upstreamInject without an authorization server",
        strategy("github", {"type": "upstreamInject", "upstreamInject": {"providerName": "okta"}}),
        "outgoingAuth.backends.github.upstreamInject.providerName: names upstream provider 'okta', but there is no "
        "embedded authorization server",
    ),
    (
        "upstreamInject naming an unknown provider",
        lambda d: d.update(
            authServerConfig=AUTH_SERVER,
            incomingAuth=OIDC,
            outgoingAuth={"default": {"type": "upstreamInject", "upstreamInject": {"providerName": "github"}}},
        ),
        "outgoingAuth.default.upstreamInject.providerName: no upstream provider named 'github' (known: okta)",
    ),
    (
        "tokenExchange subject provider unknown",
        lambda d: d.update(
            authServerConfig=AUTH_SERVER,
            incomingAuth=OIDC,
            outgoingAuth={
                "backends": {
                    "github": {
                        "type": "tokenExchange",
                        "tokenExchange": {"tokenUrl": "https://sts.example.com", "subjectProviderName": "entra"},
                    }
                }
            },
        ),
        "outgoingAuth.backends.github.tokenExchange.subjectProviderName: no upstream provider named 'entra' "
        "(known: okta)",
    ),
    (
        "outgoing auth for a backend that does not exist",
        strategy("gitlab", {"type": "unauthenticated"}),
        "outgoingAuth.backends.gitlab: no backend named 'gitlab' (known: github, kubernetes)",
    ),
    (
        "discovered outgoing auth without manifests",
        lambda d: d.update(outgoingAuth={"source": "discovered"}),
        "outgoingAuth.source: discovered reads each MCPServer's externalAuthConfigRef, which only Kubernetes "
        "manifests have (load them with -f); use inline here",
    ),
    (
        "aggregation.tools naming an unknown workload",
        lambda d: d.update(aggregation={"tools": [{"workload": "gitlab", "filter": ["search"]}]}),
        "aggregation.tools[0].workload: no backend named 'gitlab' (known: github, kubernetes)",
    ),
    (
        "aggregation.tools naming a workload twice",
        lambda d: d.update(aggregation={"tools": [{"workload": "github"}, {"workload": "github"}]}),
        "aggregation.tools[1].workload: 'github' is configured twice",
    ),
    (
        "an override that changes nothing",
        lambda d: d.update(aggregation={"tools": [{"workload": "github", "overrides": {"search": {}}}]}),
        "aggregation.tools[0].overrides.search: give name or description",
    ),
    (
        "priority mode without priorityOrder",
        lambda d: d.update(aggregation={"conflictResolution": "priority"}),
        "aggregation.conflictResolutionConfig.priorityOrder: required when conflictResolution is priority",
    ),
    (
        "priorityOrder naming an unknown backend",
        lambda d: d.update(
            aggregation={"conflictResolution": "priority", "conflictResolutionConfig": {"priorityOrder": ["gh"]}}
        ),
        "aggregation.conflictResolutionConfig.priorityOrder[0]: no backend named 'gh'",
    ),
    (
        "unknown conflict resolution",
        lambda d: d.update(aggregation={"conflictResolution": "first"}),
        "aggregation.conflictResolution: must be one of prefix, priority, manual, got 'first'",
    ),
    (
        "a prefix format without the workload",
        lambda d: d.update(aggregation={"conflictResolutionConfig": {"prefixFormat": "tool_"}}),
        "aggregation.conflictResolutionConfig.prefixFormat: must contain {workload}, got 'tool_'",
    ),
    (
        "bad duration",
        lambda d: d.update(operational={"timeouts": {"default": "thirty seconds"}}),
        "operational.timeouts.default: invalid duration 'thirty seconds' (use e.g. 90s, 30m, 2h)",
    ),
    (
        "zero duration",
        lambda d: d.update(operational={"failureHandling": {"healthCheckInterval": "0s"}}),
        "operational.failureHandling.healthCheckInterval: must be positive",
    ),
    (
        "health check timeout not below its interval",
        lambda d: d.update(
            operational={"failureHandling": {"healthCheckInterval": "10s", "healthCheckTimeout": "10s"}}
        ),
        "operational.failureHandling.healthCheckTimeout: must be less than healthCheckInterval",
    ),
    (
        "circuit breaker timeout that would thrash",
        lambda d: d.update(operational={"failureHandling": {"circuitBreaker": {"timeout": "500ms"}}}),
        "operational.failureHandling.circuitBreaker.timeout: must be at least 1s",
    ),
    (
        "unknown partial failure mode",
        lambda d: d.update(operational={"failureHandling": {"partialFailureMode": "ignore"}}),
        "operational.failureHandling.partialFailureMode: must be fail or bestEffort, got 'ignore'",
    ),
    (
        "per-workload timeout for an unknown backend",
        lambda d: d.update(operational={"timeouts": {"perWorkload": {"gitlab": "5s"}}}),
        "operational.timeouts.perWorkload.gitlab: no backend named 'gitlab'",
    ),
    (
        "composite tools",
        lambda d: d.update(compositeTools=[{"name": "deploy", "steps": []}]),
        "compositeTools: not supported yet",
    ),
    ("incoming auth missing", lambda d: d.pop("incomingAuth"), "incomingAuth: required"),
    (
        "unknown incoming auth type",
        lambda d: d.update(incomingAuth={"type": "basic"}),
        "incomingAuth.type: must be one of anonymous, local, oidc, got 'basic'",
    ),
    (
        "oidc without an audience",
        lambda d: d.update(incomingAuth={"type": "oidc", "oidc": {"issuer": "https://idp.example.com"}}),
        "incomingAuth.oidc.audience: required",
    ),
    (
        "oidc over plain http",
        lambda d: d.update(
            incomingAuth={"type": "oidc", "oidc": {"issuer": "http://idp.example.com", "audience": "a"}}
        ),
        "incomingAuth.oidc: issuer must be an https URL (use insecureAllowHTTP for http)",
    ),
    (
        "cedar without policies",
        lambda d: d.update(incomingAuth={"type": "anonymous", "authz": {"type": "cedar"}}),
        "incomingAuth.authz.policies: at least one policy is required when type is cedar",
    ),
    (
        "an authorization server behind anonymous access",
        lambda d: d.update(authServerConfig=AUTH_SERVER),
        "incomingAuth.type: must be oidc with authServerConfig (clients bring the tokens it issues)",
    ),
    (
        "an authorization server with another issuer than incoming auth",
        lambda d: d.update(
            authServerConfig=AUTH_SERVER,
            incomingAuth={"type": "oidc", "oidc": {"issuer": "https://other.example.com", "audience": "tools"}},
        ),
        "incomingAuth: the OIDC issuer 'https://other.example.com' must be the authorization server's issuer "
        "'https://tools.example.com'",
    ),
    (
        "primary upstream provider without an authorization server",
        lambda d: d.update(
            incomingAuth={"type": "anonymous", "authz": {"type": "none", "primaryUpstreamProvider": "okta"}}
        ),
        "incomingAuth.authz.primaryUpstreamProvider: names upstream provider 'okta', but there is no embedded "
        "authorization server",
    ),
    (
        "redis without an address",
        lambda d: d.update(sessionStorage={"provider": "redis"}),
        "sessionStorage: redis needs address (host:port) or url (redis://…), one of them",
    ),
    (
        "a number where a string map wants strings",
        lambda d: d["backends"][1].update(env={"PORT": 8080}),
        "backends[1].env.PORT: must be a string (quote numbers and booleans)",
    ),
    (
        "telemetry endpoint with nothing to send",
        lambda d: d.update(telemetry={"endpoint": "otel:4318"}),
        "telemetry.endpoint: set, but tracingEnabled and metricsEnabled are both false",
    ),
    (
        "stdio sharing on a remote backend",
        lambda d: d["backends"][0].update(stdioSharing="shared"),
        "backends[0].stdioSharing: only used with command (a stdio server)",
    ),
    (
        "a bad stdio sharing",
        lambda d: d["backends"][1].update(stdioSharing="pool=0"),
        "backends[1].stdioSharing: expected per-session, shared or pool=N (N from 1 to 64), got 'pool=0'",
    ),
    (
        "a stdio idle timeout without a unit",
        lambda d: d.update(operational={"stdioIdleTimeout": 30}),
        "operational.stdioIdleTimeout: invalid duration '30': give a unit (e.g. 30s, 30m)",
    ),
    (
        "a port out of range",
        lambda d: d.update(server={"port": 70000}),
        "server.port: must be between 1 and 65535, got 70000",
    ),
]


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_config_names_the_field(tmp_path: Path, change: Callable[[dict[str, Any]], object], message: str) -> None:
    environ = {"HIVEGATE_SECRET_AS_HMAC_KEY": "k" * 32}
    with pytest.raises(ConfigError) as err:
        parse_vmcp_config(edit(change), resolver=SecretResolver(base_dir=tmp_path, environ=environ))
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_the_base_config_itself_is_valid(tmp_path: Path) -> None:
    cfg = parse_vmcp_config(copy.deepcopy(BASE), resolver=SecretResolver(base_dir=tmp_path, environ={}))
    assert [b.name for b in cfg.backends] == ["github", "kubernetes"]


def test_empty_composite_tools_are_accepted(tmp_path: Path) -> None:
    data = edit(lambda d: d.update(compositeTools=[], compositeToolRefs=[]))
    assert parse_vmcp_config(data, resolver=SecretResolver(base_dir=tmp_path, environ={})).name == "tools"


def test_stdio_settings_per_backend_override_the_operational_defaults(tmp_path: Path) -> None:
    data = edit(lambda d: d["backends"].append({"name": "files", "command": "files-mcp", "stdioSharing": "pool=3",
                                                "stdioIdleTimeout": "0"}))  # fmt: skip
    data["operational"] = {"stdioIdleTimeout": "90s", "stdioSharing": "shared"}
    cfg = parse_vmcp_config(data, resolver=SecretResolver(base_dir=tmp_path, environ={}))
    assert cfg.operational.stdio_for(cfg.backend("kubernetes")) == (90.0, 1)
    assert cfg.operational.stdio_for(cfg.backend("files")) == (0.0, 3)
    plain = parse_vmcp_config(copy.deepcopy(BASE), resolver=SecretResolver(base_dir=tmp_path, environ={}))
    assert plain.operational.stdio_for(plain.backend("kubernetes")) == (300.0, 0)  # 5 minutes, one per session
