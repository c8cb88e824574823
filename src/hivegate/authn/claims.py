"""Claim checks shared by JWTs (RFC 7519 section 4.1) and introspection answers (RFC 7662 section 2.2).

Each check raises `AuthenticationError("invalid_token", …)`; times are seconds since the epoch and `skew` is the
allowed clock difference in seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, overload

from hivegate.errors import invalid_token

__all__ = [
    "INVALID_CLAIMS",
    "audience_contains",
    "check_audience",
    "check_expiry",
    "check_issuer",
    "check_not_before",
    "numeric_date",
    "require_subject",
]

INVALID_CLAIMS = "Invalid authentication claims"


def numeric_date(claims: Mapping[str, Any], name: str) -> float | None:
    """The NumericDate claim `name` (RFC 7519 section 2), None when absent; a non-number is an invalid token."""
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid_token(f"Invalid '{name}' claim")
    return float(value)


@overload
def check_expiry(claims: Mapping[str, Any], now: float, skew: float, *, required: Literal[True]) -> float: ...
@overload
def check_expiry(claims: Mapping[str, Any], now: float, skew: float, *, required: bool) -> float | None: ...
def check_expiry(claims: Mapping[str, Any], now: float, skew: float, *, required: bool) -> float | None:
    """`exp` must be in the future (give or take `skew`); returns it. Absent: an error when `required`."""
    exp = numeric_date(claims, "exp")
    if exp is None:
        if required:
            raise invalid_token("Token has no expiry ('exp')")
        return None
    if now > exp + skew:
        raise invalid_token("Token has expired")
    return exp


def check_not_before(claims: Mapping[str, Any], now: float, skew: float) -> None:
    """`nbf` must have passed and `iat` must not be in the future (give or take `skew`), when present."""
    nbf = numeric_date(claims, "nbf")
    if nbf is not None and now + skew < nbf:
        raise invalid_token("Token is not valid yet ('nbf')")
    iat = numeric_date(claims, "iat")
    if iat is not None and now + skew < iat:
        raise invalid_token("Token was issued in the future ('iat')")


def check_issuer(claims: Mapping[str, Any], issuer: str, *, required: bool) -> None:
    """`iss` must equal `issuer` exactly (no normalisation). Absent: an error when `required`."""
    iss = claims.get("iss")
    if iss is None and not required:
        return
    if iss != issuer:
        raise invalid_token("Token issuer is not trusted")


def audience_contains(aud: object, audience: str) -> bool:
    """True when `aud` (a string or a list of strings) names `audience`."""
    if isinstance(aud, str):
        return aud == audience
    if isinstance(aud, list):
        return audience in aud
    return False


def check_audience(claims: Mapping[str, Any], audience: str, *, required: bool) -> None:
    """`aud` must name `audience`. Absent: an error when `required`."""
    aud = claims.get("aud")
    if aud is None and not required:
        return
    if not audience_contains(aud, audience):
        raise invalid_token("Token audience does not include this server")


def require_subject(claims: Mapping[str, Any]) -> str:
    """`sub`, which must be a non-empty string."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise invalid_token(INVALID_CLAIMS)
    return sub
