"""Manifests checked against the CRDs as the API server would (`hivegate.crds.validate`): the seeds' are admitted,
broken ones are refused with the message `kubectl apply` would print, naming the field.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from hivegate.crds import KINDS
from hivegate.crds.__main__ import main
from hivegate.crds.validate import apply_defaults, validate
from hivegate.errors import ConfigError
from hivegate.vmcp.manifests import load_manifests

HERE = Path(__file__).parent
SEEDS = sorted((HERE.parent / "vmcp_config" / "data").glob("seed_*.yaml"))
MANIFESTS = [*SEEDS, *sorted((HERE / "data").glob("*.yaml"))]
KIND_NAMES = {k.kind for k in KINDS}


def resources(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict) and d.get("kind") in KIND_NAMES]


def test_every_seed_manifest_is_admitted() -> None:
    seen: Counter[str] = Counter()
    for path in SEEDS:
        for body in resources(path):
            assert validate(body) == [], path.name
            seen[body["kind"]] += 1
    assert seen == {"VirtualMCPServer": 6, "MCPServer": 8, "MCPGroup": 2, "MCPExternalAuthConfig": 4,
                    "MCPOIDCConfig": 1}  # fmt: skip


def test_every_manifest_the_readers_load_fully_is_admitted() -> None:
    """The drift test's manifests take every path of the readers; the API server must take each of them too."""
    kinds: set[str] = set()
    for path in (HERE / "data").glob("drift_*.yaml"):
        for body in resources(path):
            assert validate(body) == [], f"{path.name}: {body['kind']}/{body['metadata']['name']}"
            kinds.add(body["kind"])
    assert kinds == KIND_NAMES


def test_validate_on_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *map(str, SEEDS)]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text(SERVER + "  proxyPort: '8080'\n")
    assert main(["validate", str(bad)]) == 1
    assert (
        capsys.readouterr().out.splitlines()[-1]
        == "bad.yaml:doc1 MCPServer/s: spec.proxyPort: '8080' is not of type 'integer'"
    )
    bad.write_text("kind: [")
    assert main(["validate", str(bad)]) == 1
    assert capsys.readouterr().out.startswith(f"{bad}:1:8: not valid YAML: expected the node content")


SERVER = "apiVersion: toolhive.stacklok.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: s}\nspec:\n  image: example/s\n"
EXTERNAL = "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPExternalAuthConfig\nmetadata: {name: e}\nspec:\n"
VMCP = """apiVersion: toolhive.stacklok.dev/v1beta1
kind: VirtualMCPServer
metadata: {name: v}
spec:
  groupRef: {name: g}
"""
PROXY = "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPRemoteProxy\nmetadata: {name: r}\nspec:\n"
OIDC = "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPOIDCConfig\nmetadata: {name: o}\nspec:\n"

INVALID = [
    ("two strategy blocks", EXTERNAL + "  type: headerInjection\n"
     "  headerInjection: {headerName: X, valueSecretRef: {name: s, key: k}}\n"
     "  bearerToken: {tokenSecretRef: {name: s, key: k}}\n",
     ["MCPExternalAuthConfig/e: spec: bearerToken must be set when type is 'bearerToken', and only then"]),
    ("the block of another type", EXTERNAL + "  type: tokenExchange\n  upstreamInject: {providerName: okta}\n",
     ["MCPExternalAuthConfig/e: spec: tokenExchange must be set when type is 'tokenExchange', and only then",
      "MCPExternalAuthConfig/e: spec: upstreamInject must be set when type is 'upstreamInject', and only then"]),
    ("a type hivegate does not support", EXTERNAL + "  type: awsSts\n  awsSts: {region: eu-west-1}\n",
     ["MCPExternalAuthConfig/e: spec.awsSts: unknown field",
      "MCPExternalAuthConfig/e: spec.type: 'awsSts' is not one of ['tokenExchange', 'headerInjection', "
      "'bearerToken', 'upstreamInject', 'embeddedAuthServer', 'unauthenticated']"]),
    ("a secret's value as text",
     EXTERNAL + "  type: headerInjection\n  headerInjection: {headerName: X, headerValue: v}\n",
     ["MCPExternalAuthConfig/e: spec.headerInjection: 'valueSecretRef' is a required property",
      "MCPExternalAuthConfig/e: spec.headerInjection.headerValue: unknown field"]),
    ("both OIDC forms", SERVER + "  oidcConfigRef: {name: o, audience: a}\n"
     "  oidcConfig: {type: inline, inline: {issuer: 'https://idp.example.com'}}\n",
     ["MCPServer/s: spec: oidcConfig and oidcConfigRef are mutually exclusive"]),
    ("both authorization forms", SERVER + "  authzConfigRef: {name: a}\n"
     "  authzConfig: {type: inline, inline: {policies: ['permit(principal, action, resource);']}}\n",
     ["MCPServer/s: spec: authzConfig and authzConfigRef are mutually exclusive"]),
    ("port and proxyPort differ", SERVER + "  port: 8080\n  proxyPort: 9090\n",
     ["MCPServer/s: spec: port is the older name of proxyPort: keep one"]),
    ("the authorization type's default, configMap, without its block",
     SERVER + "  authzConfig: {inline: {policies: ['permit(principal, action, resource);']}}\n",
     ["MCPServer/s: spec.authzConfig: configMap must be set when type is 'configMap', and only then",
      "MCPServer/s: spec.authzConfig: inline must be set when type is 'inline', and only then"]),
    ("a number as a string", SERVER + "  proxyPort: '8080'\n",
     ["MCPServer/s: spec.proxyPort: '8080' is not of type 'integer'"]),
    ("a port out of range", SERVER + "  mcpPort: 70000\n",
     ["MCPServer/s: spec.mcpPort: 70000 is greater than the maximum of 65535"]),
    ("a transport not in the enum", SERVER + "  transport: websocket\n",
     ["MCPServer/s: spec.transport: 'websocket' is not one of ['stdio', 'streamable-http', 'sse']"]),
    ("an unknown field", SERVER + "  imagePullPolicy: Always\n", ["MCPServer/s: spec.imagePullPolicy: unknown field"]),
    ("an unknown field deep down", SERVER + "  oidcConfig: {type: inline, inline: {issuer: i, issuerUrl: i}}\n",
     ["MCPServer/s: spec.oidcConfig.inline.issuerUrl: unknown field"]),
    ("a list where an object goes", SERVER + "  env: {A: b}\n",
     ["MCPServer/s: spec.env: {'A': 'b'} is not of type 'array'"]),
    ("remoteUrl and remoteURL", PROXY + "  remoteUrl: https://a.example.com\n  remoteURL: https://a.example.com\n",
     ["MCPRemoteProxy/r: spec: remoteUrl is required (remoteURL, its older spelling, not both)"]),
    ("no remote URL", PROXY + "  proxyPort: 8080\n",
     ["MCPRemoteProxy/r: spec: remoteUrl is required (remoteURL, its older spelling, not both)"]),
    ("a remote URL that is not http", PROXY + "  remoteUrl: ftp://a.example.com\n",
     ["MCPRemoteProxy/r: spec.remoteUrl: 'ftp://a.example.com' does not match '^https?://'"]),
    ("no incomingAuth", VMCP, ["VirtualMCPServer/v: spec: 'incomingAuth' is a required property"]),
    ("an OIDC reference with anonymous",
     VMCP + "  incomingAuth: {type: anonymous, oidcConfigRef: {name: o, audience: a}}\n",
     ["VirtualMCPServer/v: spec.incomingAuth: oidcConfigRef and oidcConfig are only used when type is oidc"]),
    ("groupRef twice, differently", VMCP + "  incomingAuth: {type: anonymous}\n  config: {groupRef: h}\n",
     ["VirtualMCPServer/v: spec: config.groupRef differs from groupRef"]),
    ("an outgoing reference without its block", VMCP + "  incomingAuth: {type: anonymous}\n"
     "  outgoingAuth: {backends: {a: {type: externalAuthConfigRef}}}\n",
     ["VirtualMCPServer/v: spec.outgoingAuth.backends.a: externalAuthConfigRef must be set when type is "
      "'externalAuthConfigRef', and only then"]),
    ("redis sessions without an address",
     VMCP + "  incomingAuth: {type: anonymous}\n  sessionStorage: {provider: redis}\n",
     ["VirtualMCPServer/v: spec.sessionStorage: address is required when provider is redis"]),
    ("an upstream with both configs", EXTERNAL + """  type: embeddedAuthServer
  embeddedAuthServer:
    issuer: https://as.example.com
    upstreamProviders:
      - name: okta
        type: oidc
        oidcConfig: {issuerUrl: 'https://okta.example.com', clientId: c}
        oauth2Config: {authorizationEndpoint: a, tokenEndpoint: t, clientId: c, userInfo: {endpointUrl: u}}
""", ["MCPExternalAuthConfig/e: spec.embeddedAuthServer.upstreamProviders[0]: oidcConfig must be set when type is "
      "'oidc', oauth2Config when type is 'oauth2', and not the other"]),
    ("no upstream", EXTERNAL + "  type: embeddedAuthServer\n  embeddedAuthServer: {issuer: 'https://as.example.com', "
     "upstreamProviders: []}\n",
     ["MCPExternalAuthConfig/e: spec.embeddedAuthServer.upstreamProviders: [] should be non-empty"]),
    ("an MCPOIDCConfig without its block", OIDC + "  type: kubernetesServiceAccount\n",
     ["MCPOIDCConfig/o: spec: kubernetesServiceAccount must be set when type is 'kubernetesServiceAccount', "
      "and only then"]),
    ("an override of the Service's spec", SERVER + "  resourceOverrides: {proxyService: {type: LoadBalancer}}\n",
     ["MCPServer/s: spec.resourceOverrides.proxyService.type: unknown field"]),
    ("a proxy variable without a name", SERVER + "  resourceOverrides: {proxyDeployment: {env: [{value: v}]}}\n",
     ["MCPServer/s: spec.resourceOverrides.proxyDeployment.env[0]: 'name' is a required property"]),
    ("a version that is not served", SERVER.replace("v1alpha1", "v1"),
     ["MCPServer/s: apiVersion: toolhive.stacklok.dev/v1 is not served (use toolhive.stacklok.dev/v1beta1)"]),
]  # fmt: skip


@pytest.mark.parametrize(("manifest", "problems"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID])
def test_an_invalid_manifest_is_refused_naming_the_field(manifest: str, problems: list[str]) -> None:
    assert validate(yaml.safe_load(manifest)) == problems


def test_kept_fields_are_not_checked_and_quantities_may_be_numbers() -> None:
    manifest = SERVER + "  podTemplateSpec: {spec: {containers: [{name: mcp, anything: [1, 2]}]}}\n"
    manifest += "  resources: {limits: {cpu: 1, memory: 128Mi}}\n  groupRef: tools\n"
    assert validate(yaml.safe_load(manifest)) == []
    assert validate(yaml.safe_load(SERVER + "  resources: {limits: {cpu: [1]}}\n")) == [
        "MCPServer/s: spec.resources.limits.cpu: [1] is not valid under any of the given schemas"
    ]


def test_defaults_are_filled_in_as_the_api_server_does() -> None:
    body = yaml.safe_load(SERVER + "  authzConfig: {configMap: {name: p}}\n")
    schema = next(k for k in KINDS if k.kind == "MCPServer").schema()
    filled = apply_defaults(schema, body)
    assert filled["spec"]["authzConfig"] == {"type": "configMap", "configMap": {"name": "p", "key": "authz.json"}}
    assert filled["spec"]["proxyPort"] == 8080
    assert "oidcConfig" not in filled["spec"]


def load_with_group(tmp_path: Path, vmcp: str) -> None:
    """`hivegate vmcp serve`'s reading of the VirtualMCPServer `vmcp`, with its group g and one server in it."""
    path = tmp_path / "m.yaml"
    group = "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPGroup\nmetadata: {name: g}\n"
    server = "apiVersion: toolhive.stacklok.dev/v1beta1\nkind: MCPServer\nmetadata: {name: a}\n"
    path.write_text(f"{vmcp}---\n{group}---\n{server}spec: {{groupRef: g, url: 'https://a.example.com/mcp'}}\n")
    load_manifests([path])


REFUSED_BY_BOTH = [
    ("both OIDC forms", VMCP + "  incomingAuth: {type: oidc, oidcConfigRef: {name: o, audience: a}, "
     "oidcConfig: {type: inline, inline: {issuer: 'https://idp.example.com', audience: a}}}\n",
     "spec.incomingAuth.oidcConfig: give oidcConfigRef or oidcConfig, not both"),
    ("an unknown field", VMCP + "  incomingAuth: {type: anonymous}\n  imagePullPolicy: Always\n",
     "spec.imagePullPolicy: unknown field"),
    ("groupRef twice, differently", VMCP + "  incomingAuth: {type: anonymous}\n  config: {groupRef: h}\n",
     "spec.config.groupRef: 'h' differs from spec.groupRef 'g'"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("manifest", "reader_error"), [c[1:] for c in REFUSED_BY_BOTH], ids=[c[0] for c in REFUSED_BY_BOTH]
)
def test_what_the_api_server_refuses_the_readers_refuse_too(tmp_path: Path, manifest: str, reader_error: str) -> None:
    assert validate(yaml.safe_load(manifest)) != []
    with pytest.raises(ConfigError) as err:
        load_with_group(tmp_path, manifest)
    assert str(err.value) == f"m.yaml:doc1 VirtualMCPServer/v: {reader_error}"


def test_a_toolhive_field_hivegate_cannot_honour_is_admitted_and_the_reader_names_it(tmp_path: Path) -> None:
    """The API server takes ToolHive's manifest unchanged; the operator reports what hivegate does not support."""
    manifest = VMCP + "  incomingAuth: {type: anonymous}\n  config: {compositeToolRefs: [{name: deploy}]}\n"
    assert validate(yaml.safe_load(manifest)) == []
    with pytest.raises(ConfigError) as err:
        load_with_group(tmp_path, manifest)
    assert str(err.value) == "m.yaml:doc1 VirtualMCPServer/v: spec.config.compositeToolRefs: not supported yet"
