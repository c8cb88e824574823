"""Kubernetes service-account tokens as OIDC JWTs (the API server's issuer discovery, KEP-1393).

In a pod, the issuer `https://kubernetes.default.svc` serves its keys at `/openid/v1/jwks`, signed by the cluster CA
and readable with the pod's own service-account token. That host resolves to a private service IP, so it alone is
exempt from the SSRF guard's private-address rule.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import replace

from hivegate.authn.oidc_config import OIDCConfig

__all__ = [
    "KUBERNETES_API_HOST",
    "KUBERNETES_ISSUER",
    "KUBERNETES_JWKS_URL",
    "SERVICE_ACCOUNT_CA",
    "SERVICE_ACCOUNT_TOKEN",
    "apply_kubernetes_defaults",
    "is_kubernetes_issuer",
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
