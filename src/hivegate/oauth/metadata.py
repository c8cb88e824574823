"""RFC 9728 OAuth 2.0 Protected Resource Metadata: the document (section 2) and where it lives (section 3.1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

__all__ = ["WELL_KNOWN_PRM", "protected_resource_metadata", "resource_metadata_url"]

WELL_KNOWN_PRM = "/.well-known/oauth-protected-resource"


def protected_resource_metadata(
    resource: str,
    authorization_servers: Sequence[str],
    scopes_supported: Sequence[str] = (),
) -> dict[str, Any]:
    """The RFC 9728 section 2 metadata document for `resource`.

    Tokens are accepted in the `Authorization` header only (`bearer_methods_supported: ["header"]`);
    `scopes_supported` is included only when non-empty.
    """
    doc: dict[str, Any] = {
        "resource": resource,
        "authorization_servers": list(authorization_servers),
        "bearer_methods_supported": ["header"],
    }
    if scopes_supported:
        doc["scopes_supported"] = list(scopes_supported)
    return doc


def resource_metadata_url(base_url: str, mcp_path: str) -> str:
    """`<scheme>://<host>/.well-known/oauth-protected-resource<path>` (RFC 9728 section 3.1).

    Only the scheme and host (with port) of `base_url` are used; the well-known segment goes between the host and
    `mcp_path`. A root path (`""` or `"/"`) adds no suffix.
    """
    parts = urlsplit(base_url)
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"not an absolute URL: {base_url!r}")
    path = mcp_path if mcp_path.startswith("/") else "/" + mcp_path
    if path == "/":
        path = ""
    return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN_PRM}{path}"
