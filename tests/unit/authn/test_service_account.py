"""Callers limited to one Kubernetes service account (`--oidc-k8s-service-account`, ToolHive's
`oidcConfig.kubernetes.{namespace, serviceAccount}`): what passes, what is refused and what the caller is told."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hivegate.authn.kubernetes import service_account_check
from hivegate.authn.oidc_config import OIDCConfig
from hivegate.core.principal import Principal
from hivegate.errors import AuthenticationError, ConfigError
from hivegate.vmcp.manifests import load_manifests

FLAG = "--oidc-k8s-service-account"


def account(namespace: str, name: str, **claims: Any) -> Principal:
    base = {
        "sub": f"system:serviceaccount:{namespace}:{name}",
        "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": "u-1"}},
    }
    base.update(claims)
    return Principal(subject=base["sub"], issuer="https://kubernetes.default.svc", kind="jwt", claims=base)


def refusal(spec: str, principal: Principal) -> str:
    with pytest.raises(AuthenticationError) as info:
        service_account_check(spec)(principal)
    assert info.value.error == "invalid_token"
    return info.value.description


def test_only_the_named_account_passes() -> None:
    check = service_account_check("client-apps/mcp-client")
    check(account("client-apps", "mcp-client"))
    assert refusal("client-apps/mcp-client", account("client-apps", "other")) == (
        "Token is for service account client-apps/other; only client-apps/mcp-client may call"
    )
    assert refusal("client-apps/mcp-client", account("default", "mcp-client")).startswith(
        "Token is for service account default/mcp-client;"
    )


def test_wildcards_allow_a_namespace_or_a_name() -> None:
    service_account_check("client-apps/*")(account("client-apps", "anything"))
    service_account_check("*/mcp-client")(account("team-b", "mcp-client"))
    assert "only client-apps/* may call" in refusal("client-apps/*", account("team-b", "anything"))


def test_a_user_token_or_a_disagreeing_kubernetes_claim_is_refused() -> None:
    user = Principal(subject="alice", issuer="https://idp", kind="jwt", claims={"sub": "alice"})
    assert refusal("client-apps/mcp-client", user) == (
        "Token is not a Kubernetes service account's; client-apps/mcp-client only"
    )
    forged = account("client-apps", "mcp-client", **{"kubernetes.io": {"namespace": "other", "serviceaccount": {}}})
    assert "only client-apps/mcp-client may call" in refusal("client-apps/mcp-client", forged)
    # an older (non-projected) token has no kubernetes.io claim: `sub` alone decides
    legacy = account("client-apps", "mcp-client")
    del legacy.claims["kubernetes.io"]
    service_account_check("client-apps/mcp-client")(legacy)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mcp-client", f"{FLAG}: expected NAMESPACE/NAME (or NAMESPACE/* or */NAME), got 'mcp-client'"),
        ("*/*", f"{FLAG}: expected NAMESPACE/NAME (or NAMESPACE/* or */NAME), got '*/*'"),
        ("Client_Apps/x", "--oidc-k8s-service-account: 'Client_Apps' is not a Kubernetes namespace name"),
        ("ns/bad name", "--oidc-k8s-service-account: 'bad name' is not a Kubernetes service account name"),
    ],
)  # fmt: skip
def test_a_bad_service_account_flag_is_one_line(spec: str, message: str) -> None:
    cfg = OIDCConfig(issuer="https://kubernetes.default.svc", audience="toolhive", service_account=spec)
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    assert str(info.value) == message


def test_the_seed_kubernetes_oidc_config_restricts_and_defaults_the_audience(tmp_path: Path) -> None:
    manifest = tmp_path / "vmcp.yaml"
    manifest.write_text("""
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: MCPGroup
metadata: {name: tools, namespace: toolhive-system}
---
apiVersion: toolhive.stacklok.dev/v1alpha1
kind: VirtualMCPServer
metadata: {name: sa, namespace: toolhive-system}
spec:
  groupRef: {name: tools}
  config:
    backends: [{name: fetch, url: 'http://127.0.0.1:9001/mcp'}]
  incomingAuth:
    type: oidc
    oidcConfig:
      type: kubernetes
      kubernetes: {serviceAccount: 'mcp-client', namespace: 'client-apps'}
""")
    oidc = load_manifests([manifest], name="sa").incoming_auth.oidc
    assert (oidc.issuer, oidc.audience, oidc.service_account) == (
        "https://kubernetes.default.svc", "toolhive", "client-apps/mcp-client"
    )  # fmt: skip
