"""A vMCP `tokenExchange` without an embedded authorization server exchanges the caller's incoming token: with
`incomingAuth.type: anonymous` or `local` there is none, so every call would fail. Such a config is refused at load,
naming the strategy's path."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from hivegate.authserver.secrets import SecretResolver
from hivegate.errors import ConfigError
from hivegate.vmcp import TokenExchange, load_vmcp_config, parse_vmcp_config
from hivegate.vmcp.manifests import load_manifests

EXCHANGE = {"type": "tokenExchange", "tokenExchange": {"tokenUrl": "https://sts.example.com/token", "audience": "b"}}
OKTA = {"name": "okta", "type": "oidc", "oidcConfig": {"issuerUrl": "https://okta.example.com", "clientId": "c"}}
BASE: dict[str, Any] = {
    "name": "tools",
    "backends": [{"name": "github", "url": "https://github-mcp.example.com/mcp"}],
    "incomingAuth": {"type": "anonymous"},
}
OIDC = {"type": "oidc", "oidc": {"issuer": "https://tools.example.com", "audience": "tools"}}


def config(incoming: dict[str, Any], outgoing: dict[str, Any], **extra: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(incomingAuth=incoming, outgoingAuth=outgoing, **extra)
    return data


def parse_error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_vmcp_config(data, resolver=SecretResolver())
    return str(caught.value)


@pytest.mark.parametrize("kind", ["anonymous", "local"])
@pytest.mark.parametrize(
    ("outgoing", "path"),
    [
        ({"default": EXCHANGE}, "outgoingAuth.default.tokenExchange"),
        ({"backends": {"github": EXCHANGE}}, "outgoingAuth.backends.github.tokenExchange"),
    ],
)
def test_a_token_exchange_without_an_incoming_token_is_refused(kind: str, outgoing: dict[str, Any], path: str) -> None:
    assert parse_error(config({"type": kind}, outgoing)) == (
        f"{path}: the subject is the caller's incoming token, and incomingAuth.type {kind} has none; use "
        "incomingAuth.type oidc, or authServerConfig (with subjectProviderName) to exchange the caller's upstream "
        "token"
    )


def test_with_oidc_or_an_embedded_authorization_server_there_is_a_subject() -> None:
    cfg = parse_vmcp_config(config(OIDC, {"default": EXCHANGE}), resolver=SecretResolver())
    assert isinstance(cfg.outgoing_auth.default, TokenExchange)
    with_upstream = copy.deepcopy(EXCHANGE)
    with_upstream["tokenExchange"]["subjectProviderName"] = "okta"
    data = config(OIDC, {"backends": {"github": with_upstream}},
                  authServerConfig={"issuer": "https://tools.example.com", "upstreamProviders": [OKTA]})  # fmt: skip
    assert parse_vmcp_config(data, resolver=SecretResolver()).outgoing_auth.backends["github"] == TokenExchange(
        "https://sts.example.com/token", audience="b", subject_provider_name="okta"
    )


def test_load_names_the_file_and_the_path(tmp_path: Path) -> None:
    path = tmp_path / "vmcp.yaml"
    path.write_text(yaml.safe_dump(config({"type": "local"}, {"backends": {"github": EXCHANGE}})))
    with pytest.raises(ConfigError, match=r"^vmcp.yaml: outgoingAuth.backends.github.tokenExchange: the subject is "):
        load_vmcp_config(path)


def test_manifests_are_held_to_the_same_rule(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        """apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPGroup
metadata: {name: g}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: VirtualMCPServer
metadata: {name: v}
spec:
  groupRef: {name: g}
  incomingAuth: {type: anonymous}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPServer
metadata: {name: a}
spec: {groupRef: g, url: 'https://a.example.com/mcp', externalAuthConfigRef: {name: ext}}
---
apiVersion: toolhive.stacklok.dev/v1beta1
kind: MCPExternalAuthConfig
metadata: {name: ext}
spec: {type: tokenExchange, tokenExchange: {tokenUrl: 'https://sts.example.com/token'}}
"""
    )
    with pytest.raises(ConfigError) as caught:
        load_manifests([path])
    assert "outgoingAuth.backends.a.tokenExchange: the subject is the caller's incoming token" in str(caught.value)
