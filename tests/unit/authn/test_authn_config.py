from __future__ import annotations

from pathlib import Path

import pytest

from hivegate.authn.kubernetes import (
    KUBERNETES_ISSUER,
    KUBERNETES_JWKS_URL,
    SERVICE_ACCOUNT_CA,
    SERVICE_ACCOUNT_TOKEN,
    apply_kubernetes_defaults,
    trusted_private_hosts,
)
from hivegate.authn.oidc_config import GOOGLE_TOKENINFO_URL, OIDCConfig, introspection_kind
from hivegate.errors import ConfigError

GOOD = OIDCConfig(issuer="https://idp.example", audience="https://gw.example/mcp")


def test_a_complete_oidc_config_validates() -> None:
    GOOD.validate()
    OIDCConfig(mode="local").validate()
    OIDCConfig(mode="anonymous").validate()


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (OIDCConfig(audience="a"), "--oidc-issuer is required for OIDC authentication"),
        (
            OIDCConfig(issuer="http://idp.example", audience="a"),
            "--oidc-issuer must be an https URL (use --oidc-insecure-allow-http for http)",
        ),
        (OIDCConfig(issuer="ftp://idp.example", audience="a"), "--oidc-issuer must be an absolute https URL"),
        (OIDCConfig(issuer="https://idp.example?x=1", audience="a"), "--oidc-issuer must not have a query"),
        (
            OIDCConfig(issuer="https://idp.example", audience="a", jwks_url="http://idp.example/jwks"),
            "--oidc-jwks-url must be an https URL",
        ),
        (
            OIDCConfig(issuer="https://idp.example", audience="a", introspection_url="http://idp.example/i"),
            "--oidc-introspection-url must be an https URL",
        ),
        (OIDCConfig(issuer="https://idp.example"), "--oidc-audience is required"),
        (
            OIDCConfig(issuer="https://idp.example", audience="a", client_secret="x"),
            "--oidc-client-secret needs --oidc-client-id",
        ),
        (
            OIDCConfig(issuer="https://github.com", introspection_url="https://api.github.com/applications/x/token"),
            "--oidc-client-id and --oidc-client-secret are required for GitHub token validation",
        ),
        (OIDCConfig(issuer="https://idp.example", audience="a", scopes=("ok", "not ok")), "--oidc-scopes: 'not ok'"),
        (OIDCConfig(issuer="https://idp.example", audience="a", resource_url="https://gw/mcp#f"), "--resource-url"),
        (
            OIDCConfig(issuer="https://idp.example", audience="a", jwks_auth_token_file="/nonexistent/token"),
            "--jwks-auth-token-file: no such file: /nonexistent/token",
        ),
        (OIDCConfig(issuer="https://idp.example", audience="a", ca_bundle="/nonexistent/ca"), "--ca-bundle"),
        (OIDCConfig(issuer="https://idp.example", audience="a", clock_skew=-1), "--oidc-clock-skew"),
        (OIDCConfig(mode="ldap"), "authentication mode must be one of oidc, local, anonymous"),  # type: ignore[arg-type]
    ],
)
def test_validate_names_the_flag_in_one_line(cfg: OIDCConfig, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        cfg.validate()
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_insecure_flag_allows_http_urls() -> None:
    OIDCConfig(
        issuer="http://idp.local", audience="a", jwks_url="http://idp.local/jwks", insecure_allow_http=True
    ).validate()


def test_github_introspection_needs_no_audience_but_credentials() -> None:
    OIDCConfig(
        issuer="https://github.com",
        introspection_url="https://api.github.com/applications/x/token",
        client_id="x",
        client_secret="y",
    ).validate()


def test_client_secret_is_hidden_from_repr() -> None:
    cfg = OIDCConfig(issuer="https://idp.example", client_id="c", client_secret="hunter2")
    assert "hunter2" not in repr(cfg)


def test_client_secret_from_environment_unless_given_by_flag() -> None:
    env = {"HIVEGATE_OIDC_CLIENT_SECRET": "from-env"}
    assert OIDCConfig(client_id="c").with_env_secret(env).client_secret == "from-env"
    assert OIDCConfig(client_id="c", client_secret="flag").with_env_secret(env).client_secret == "flag"
    assert OIDCConfig(client_id="c").with_env_secret({}).client_secret is None


def test_introspection_dialect_is_picked_from_the_url() -> None:
    assert introspection_kind(GOOGLE_TOKENINFO_URL) == "google"
    assert introspection_kind("https://api.github.com/applications/abc/token") == "github"
    assert introspection_kind("https://idp.example/oauth2/introspect") == "rfc7662"


def test_kubernetes_issuer_gets_in_cluster_defaults_when_files_exist() -> None:
    cfg = apply_kubernetes_defaults(OIDCConfig(issuer=KUBERNETES_ISSUER, audience="a"), exists=lambda _p: True)
    assert cfg.jwks_url == KUBERNETES_JWKS_URL == "https://kubernetes.default.svc/openid/v1/jwks"
    assert cfg.ca_bundle == SERVICE_ACCOUNT_CA
    assert cfg.jwks_auth_token_file == SERVICE_ACCOUNT_TOKEN
    assert trusted_private_hosts(cfg) == frozenset({"kubernetes.default.svc"})


def test_kubernetes_defaults_skip_missing_files_and_keep_explicit_values(tmp_path: Path) -> None:
    cfg = apply_kubernetes_defaults(OIDCConfig(issuer=KUBERNETES_ISSUER, audience="a"), exists=lambda _p: False)
    assert (cfg.jwks_url, cfg.ca_bundle, cfg.jwks_auth_token_file) == (KUBERNETES_JWKS_URL, None, None)
    explicit = OIDCConfig(issuer=KUBERNETES_ISSUER, audience="a", jwks_url="https://k/jwks", ca_bundle="/my/ca")
    cfg = apply_kubernetes_defaults(explicit, exists=lambda _p: True)
    assert (cfg.jwks_url, cfg.ca_bundle) == ("https://k/jwks", "/my/ca")


def test_other_issuers_are_left_alone() -> None:
    assert apply_kubernetes_defaults(GOOD, exists=lambda _p: True) is GOOD
    assert trusted_private_hosts(GOOD) == frozenset()
