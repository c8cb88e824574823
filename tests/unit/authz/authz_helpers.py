"""Shared builders for the authorization tests: configs, and tokens shaped like real Okta and Entra ID claims."""

from __future__ import annotations

from typing import Any

from hivegate.authz import AuthzConfig, CedarAuthorizer, parse_authz_config
from hivegate.core.principal import Principal


def config(policies: list[str], **cedar: Any) -> AuthzConfig:
    return parse_authz_config({"version": "1.0", "type": "cedarv1", "cedar": {"policies": policies, **cedar}})


def authorizer(policies: list[str], *, slicing: bool = True, **cedar: Any) -> CedarAuthorizer:
    return CedarAuthorizer.from_config(config(policies, **cedar), "engineering-tools", slicing=slicing)


def okta(sub: str, groups: list[str], **extra: Any) -> Principal:
    """An Okta custom authorization server access token: groups in `groups`."""
    claims = {
        "ver": 1,
        "jti": "AT.x1",
        "iss": "https://example.okta.com/oauth2/aus1",
        "aud": "https://engineering-tools.example.com",
        "iat": 1_763_000_000,
        "exp": 1_763_003_600,
        "cid": "0oa1client",
        "uid": "00u1user",
        "scp": ["openid", "profile", "email"],
        "auth_time": 1_763_000_000,
        "sub": sub,
        "groups": groups,
        **extra,
    }
    return Principal(sub, claims["iss"], "jwt", claims)


def entra(sub: str, roles: list[str], **extra: Any) -> Principal:
    """A Microsoft Entra ID v2 access token: app roles in `roles`."""
    claims = {
        "aud": "api://engineering-tools",
        "iss": "https://login.microsoftonline.com/72f988bf/v2.0",
        "iat": 1_763_000_000,
        "nbf": 1_763_000_000,
        "exp": 1_763_003_600,
        "name": "Dana Dev",
        "oid": "6e0c4b3a-1f9d-4f0c-9a2b-4c2f8e7d1a00",
        "preferred_username": "dana@example.com",
        "roles": roles,
        "scp": "access_as_user",
        "sub": sub,
        "tid": "72f988bf",
        "ver": "2.0",
        **extra,
    }
    return Principal(sub, claims["iss"], "jwt", claims)
