"""RFC 6750 bearer tokens: reading `Authorization: Bearer …` (section 2.1) and the challenge (section 3).

Pure functions: no IO, no clock. The challenge's `resource_metadata` parameter comes from RFC 9728 section 5.1.
"""

from __future__ import annotations

import re

from hivegate.errors import AuthenticationError

__all__ = ["check_b64token", "extract_bearer", "www_authenticate"]

# RFC 6750 section 2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def extract_bearer(authorization: str | None, *, check_syntax: bool = True) -> str:
    """Return the token of an `Authorization: Bearer <token>` header (RFC 6750 section 2.1).

    The scheme is matched case-insensitively. A missing or empty header, another scheme, or (unless `check_syntax`
    is false) a token that is not a `b64token` raises `AuthenticationError("invalid_request", …)`. Skipping the
    syntax check is for callers that look the token up among ones already checked, and call `check_b64token` on a miss.
    """
    value = authorization.strip() if authorization is not None else ""
    if not value:
        raise AuthenticationError("invalid_request", "Missing Authorization header")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        raise AuthenticationError("invalid_request", "Authorization header must use the Bearer scheme")
    token = token.strip()
    if not token:
        raise AuthenticationError("invalid_request", "Bearer token is empty")
    if check_syntax:
        check_b64token(token)
    return token


def check_b64token(token: str) -> None:
    """Raise `AuthenticationError("invalid_request", …)` unless `token` is an RFC 6750 section 2.1 `b64token`."""
    if _B64TOKEN.fullmatch(token) is None:
        raise AuthenticationError("invalid_request", "Bearer token is malformed")


def _quote(value: str) -> str:
    """An RFC 9110 quoted-string: backslash and double quote escaped, control characters (CR, LF…) dropped."""
    value = _CONTROL.sub(" ", value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def www_authenticate(
    *,
    realm: str | None = None,
    resource_metadata: str | None = None,
    scope: str | None = None,
    error: str | None = None,
    error_description: str | None = None,
) -> str:
    """Build a `WWW-Authenticate: Bearer …` challenge value (RFC 6750 section 3, RFC 9728 section 5.1).

    Each parameter appears only when it is not None, in the order realm, resource_metadata, scope, error,
    error_description. RFC 6750 section 3.1 suggests leaving out `error` when the request had no credentials at all;
    hivegate, like ToolHive, does not: `extract_bearer` refuses a missing header with `invalid_request`, and the
    gateway sends that as `error="invalid_request"` with its `error_description`.
    """
    params = (
        ("realm", realm),
        ("resource_metadata", resource_metadata),
        ("scope", scope),
        ("error", error),
        ("error_description", error_description),
    )
    parts = [f"{name}={_quote(value)}" for name, value in params if value is not None]
    return "Bearer " + ", ".join(parts) if parts else "Bearer"
