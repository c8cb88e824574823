"""What a login says about its user, from the identities its upstream legs returned: whether a chained leg is the same
person as the first (`not_same_person`: the same verified email, case-insensitively), and the user claims an access
token carries (`token_claims`: name, email and the group/role claims `GROUP_CLAIMS`, also listed in the server's
OpenID metadata).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hivegate.authserver.upstream.base import UpstreamIdentity

__all__ = ["GROUP_CLAIMS", "not_same_person", "token_claims"]

GROUP_CLAIMS = ("groups", "roles", "cognito:groups")


def not_same_person(first: Mapping[str, Any], identity: UpstreamIdentity, first_name: str) -> str | None:
    """Why a chained leg cannot be linked to the first leg's user (None: same verified email, case-insensitively).
    A leg that cannot be compared is refused: no email, or one its upstream marks `email_verified: false`."""
    a = _trusted_email(first.get("email"), first.get("claims") or {})
    b = _trusted_email(identity.email, identity.claims)
    if b is None:
        return f"gave no verified email to check this is the user signed in at {first_name}"
    if a is None:
        return f"cannot be checked: {first_name} gave no verified email"
    return None if a == b else "signed in as a different user"


def _trusted_email(email: object, claims: Mapping[str, Any]) -> str | None:
    verified = claims.get("email_verified")
    if verified is False or (isinstance(verified, str) and verified.strip().lower() == "false"):
        return None  # some providers send the string "false"
    if not isinstance(email, str) or not email.strip():
        return None
    return email.strip().casefold()


def token_claims(identity: Mapping[str, Any]) -> dict[str, Any]:
    """What the access token carries about the user: name, email and group/role claims (from the ID token or
    userinfo, whichever had them: ToolHive drops groups found only in the ID token, its bug #6049)."""
    claims: dict[str, Any] = {}
    if identity.get("name"):
        claims["name"] = identity["name"]
    if identity.get("email"):
        claims["email"] = identity["email"]
    upstream = identity.get("claims") or {}
    for name in GROUP_CLAIMS:
        value = upstream.get(name)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            claims[name] = value
    return claims
