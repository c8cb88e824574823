"""Kubernetes service-account tokens as OIDC JWTs (the API server's issuer discovery, KEP-1393).

In a pod, the issuer `https://kubernetes.default.svc` serves its keys at `/openid/v1/jwks`, signed by the cluster CA
and readable with the pod's own service-account token. That host resolves to a private service IP, so it alone is
exempt from the SSRF guard's private-address rule.

`service_account_check("NS/NAME")` limits callers to one service account (`NS/*`: any in namespace NS, `*/NAME`:
that name in any namespace), as ToolHive's `oidcConfig.kubernetes.{namespace, serviceAccount}` does: the token's
`sub` must be `system:serviceaccount:NS:NAME`, and its `kubernetes.io` claim, when present, must say the same.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from hivegate.authn.oidc_config import OIDCConfig, parse_service_account
from hivegate.core.principal import Principal
from hivegate.errors import AuthenticationError

__all__ = [
    "KUBERNETES_API_HOST",
    "KUBERNETES_ISSUER",
    "KUBERNETES_JWKS_URL",
    "SERVICE_ACCOUNT_CA",
    "SERVICE_ACCOUNT_TOKEN",
    "apply_kubernetes_defaults",
    "is_kubernetes_issuer",
    "service_account_check",
    "trusted_private_hosts",
]

KUBERNETES_API_HOST = "kubernetes.default.svc"
KUBERNETES_ISSUER = f"https://{KUBERNETES_API_HOST}"
KUBERNETES_JWKS_URL = f"{KUBERNETES_ISSUER}/openid/v1/jwks"
SERVICE_ACCOUNT_CA = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
SERVICE_ACCOUNT_TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"  # noqa: S105 - a path, not a secret


def is_kubernetes_issuer(issuer: str | None) -> bool:
    """True when `issuer` is the in-cluster API server."""
    return issuer is not None and issuer.rstrip("/") == KUBERNETES_ISSUER


def apply_kubernetes_defaults(cfg: OIDCConfig, *, exists: Callable[[str], bool] = os.path.isfile) -> OIDCConfig:
    """Fill in the JWKS URL, CA bundle and JWKS bearer-token file for the in-cluster issuer; explicit values win.

    The CA and token defaults apply only when those files exist (that is, when running in a pod).
    """
    if cfg.mode != "oidc" or not is_kubernetes_issuer(cfg.issuer):
        return cfg
    return replace(
        cfg,
        jwks_url=cfg.jwks_url or KUBERNETES_JWKS_URL,
        ca_bundle=cfg.ca_bundle or (SERVICE_ACCOUNT_CA if exists(SERVICE_ACCOUNT_CA) else None),
        jwks_auth_token_file=cfg.jwks_auth_token_file
        or (SERVICE_ACCOUNT_TOKEN if exists(SERVICE_ACCOUNT_TOKEN) else None),
    )


def trusted_private_hosts(cfg: OIDCConfig) -> frozenset[str]:
    """Hosts the SSRF guard may reach on private addresses for this config (the API server, in cluster)."""
    return frozenset({KUBERNETES_API_HOST}) if is_kubernetes_issuer(cfg.issuer) else frozenset()


_SUBJECT_PREFIX = "system:serviceaccount:"


def service_account_check(spec: str) -> Callable[[Principal], None]:
    """A check that refuses (`invalid_token`) every principal that is not the service account `spec` names."""
    namespace, name = parse_service_account(spec, "service account")
    wanted = f"{namespace}/{name}"

    def check(principal: Principal) -> None:
        subject = principal.claims.get("sub")
        parts = subject[len(_SUBJECT_PREFIX) :].split(":") if isinstance(subject, str) else []
        if not (isinstance(subject, str) and subject.startswith(_SUBJECT_PREFIX) and len(parts) == 2):
            raise AuthenticationError("invalid_token", f"Token is not a Kubernetes service account's; {wanted} only")
        if (namespace not in ("*", parts[0])) or (name not in ("*", parts[1])) or not _claim_agrees(principal, *parts):
            raise AuthenticationError(
                "invalid_token", f"Token is for service account {parts[0]}/{parts[1]}; only {wanted} may call"
            )

    return check


def _claim_agrees(principal: Principal, namespace: str, name: str) -> bool:
    """The `kubernetes.io` claim (projected tokens carry it) names the same account as `sub`, or is absent."""
    claim = principal.claims.get("kubernetes.io")
    if claim is None:
        return True
    if not isinstance(claim, dict):
        return False
    account = claim.get("serviceaccount")
    return claim.get("namespace") == namespace and isinstance(account, dict) and account.get("name") == name
