"""Client metadata fields (RFC 7591 section 2), checked alike for a dynamic registration (`registration`) and a Client
ID Metadata Document (`client_metadata`): redirect URIs (RFC 6749 section 3.1.2, RFC 8252 sections 7.1 and 7.3: https,
http on a loopback host, or a reverse-domain private-use scheme), the token endpoint authentication method, grant and
response types, and the free-text, URL and contact fields. Every refusal is an `OAuthError` with the RFC 7591 section
3.2.2 code and a one-line description naming the field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from hivegate.authserver.clients import AuthMethod
from hivegate.authserver.errors import OAuthError
from hivegate.httpclient.loopback import is_loopback_host

__all__ = [
    "AUTH_METHODS",
    "GRANT_TYPES",
    "MAX_FIELD_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_URI_LENGTH",
    "UNSAFE_CHARS",
    "auth_method",
    "contacts",
    "grant_types",
    "https_url",
    "redirect_uris",
    "response_types",
    "text",
    "validate_redirect_uri",
]

MAX_REDIRECT_URIS = 10
MAX_URI_LENGTH = 2000
MAX_NAME_LENGTH = 256
MAX_FIELD_LENGTH = 2000
MAX_CONTACTS = 10
GRANT_TYPES = ("authorization_code", "refresh_token")
AUTH_METHODS: tuple[AuthMethod, ...] = ("none", "client_secret_basic", "client_secret_post")
_FORBIDDEN_SCHEMES = frozenset({"javascript", "data", "file", "vbscript", "blob", "about"})
UNSAFE_CHARS = re.compile(r"[\x00-\x20\x7f\\]")


def validate_redirect_uri(uri: Any, where: str) -> str:
    """One redirect URI (RFC 6749 section 3.1.2, RFC 8252 section 7): `OAuthError("invalid_redirect_uri")` naming
    `where` unless it is https, http on 127.0.0.1 / [::1] / localhost, or a reverse-domain private-use scheme."""

    def refuse(reason: str) -> OAuthError:
        return OAuthError("invalid_redirect_uri", f"{where}: {reason}")

    if not isinstance(uri, str) or not uri:
        raise refuse("must be a non-empty string")
    if len(uri) > MAX_URI_LENGTH:
        raise refuse(f"longer than {MAX_URI_LENGTH} characters")
    if UNSAFE_CHARS.search(uri) or not uri.isascii():
        raise refuse("must not contain spaces, control characters, backslashes or non-ASCII characters")
    if "#" in uri:
        raise refuse("must not contain a fragment")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise refuse("not a valid URI") from None
    scheme = parts.scheme
    if not scheme:
        raise refuse("must be an absolute URI")
    if scheme in _FORBIDDEN_SCHEMES:
        raise refuse(f"the {scheme} scheme is not allowed")
    if scheme in ("https", "http"):
        if not parts.hostname:
            raise refuse("must name a host")
        if parts.username is not None or parts.password is not None:
            raise refuse("must not contain user information")
        if scheme == "http" and not is_loopback_host(parts.hostname):
            raise refuse("http is only allowed on loopback (127.0.0.1, [::1], localhost); use https")
        return uri
    if "." not in scheme:
        raise refuse("a private-use scheme must be a reverse domain name such as com.example.app")
    if not (parts.netloc or parts.path):
        raise refuse("must have a path after the scheme")
    return uri


# -- metadata fields (RFC 7591 section 2) ------------------------------------------------------------------------------


def redirect_uris(value: Any) -> tuple[str, ...]:
    if value is None:
        raise OAuthError("invalid_redirect_uri", "redirect_uris: required")
    if not isinstance(value, list) or not value:
        raise OAuthError("invalid_redirect_uri", "redirect_uris: must be a non-empty array of URIs")
    if len(value) > MAX_REDIRECT_URIS:
        raise OAuthError("invalid_redirect_uri", f"redirect_uris: at most {MAX_REDIRECT_URIS} entries")
    return tuple(validate_redirect_uri(uri, f"redirect_uris[{i}]") for i, uri in enumerate(value))


def auth_method(value: Any) -> AuthMethod:
    if value is None:
        return "none"
    for method in AUTH_METHODS:
        if value == method:
            return method
    shown = repr(value[:40]) if isinstance(value, str) else "a non-string"
    raise OAuthError(
        "invalid_client_metadata",
        f"token_endpoint_auth_method: {shown} is not supported (use {', '.join(AUTH_METHODS)})",
    )


def _strings(value: Any, field: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise OAuthError("invalid_client_metadata", f"{field}: must be an array of strings")
    return value


def grant_types(value: Any, *, strict: bool) -> tuple[str, ...]:
    """`strict` (registration) refuses grant types other than ours; a metadata document may list more."""
    if value is None:
        return GRANT_TYPES
    listed = _strings(value, "grant_types")
    unknown = [g for g in listed if g not in GRANT_TYPES]
    if strict and unknown:
        raise OAuthError("invalid_client_metadata", f"grant_types: {unknown[0][:60]!r} is not supported")
    if "authorization_code" not in listed:
        raise OAuthError("invalid_client_metadata", "grant_types: must include authorization_code")
    return tuple(g for g in GRANT_TYPES if g in listed)


def response_types(value: Any, *, strict: bool = True) -> tuple[str, ...]:
    if value is None:
        return ("code",)
    listed = _strings(value, "response_types")
    unknown = [r for r in listed if r != "code"]
    if (strict and unknown) or "code" not in listed:
        raise OAuthError("invalid_client_metadata", "response_types: only code is supported")
    return ("code",)


def text(metadata: Mapping[str, Any], field: str, limit: int) -> str | None:
    value = metadata.get(field)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise OAuthError("invalid_client_metadata", f"{field}: must be a string")
    if len(value) > limit:
        raise OAuthError("invalid_client_metadata", f"{field}: longer than {limit} characters")
    return value


def https_url(metadata: Mapping[str, Any], field: str) -> str | None:
    value = text(metadata, field, MAX_FIELD_LENGTH)
    if value is None:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme != "https"
        or not parts.hostname
        or parts.username is not None
        or UNSAFE_CHARS.search(value)
    ):
        raise OAuthError("invalid_client_metadata", f"{field}: must be an https URL")
    return value


def contacts(value: Any) -> list[str] | None:
    if value is None:
        return None
    listed = _strings(value, "contacts")
    if len(listed) > MAX_CONTACTS:
        raise OAuthError("invalid_client_metadata", f"contacts: at most {MAX_CONTACTS} entries")
    for i, contact in enumerate(listed):
        if not contact or len(contact) > MAX_FIELD_LENGTH:
            raise OAuthError("invalid_client_metadata", f"contacts[{i}]: must be 1 to {MAX_FIELD_LENGTH} characters")
    return listed or None
