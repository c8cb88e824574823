"""Checks of single values of a vMCP config, shared by the config file and the manifests.

Each helper takes the value and the path it was written at, and returns the value (or its normal form) or raises
`ConfigError("<path>: <problem>")`: `backend_name` (a DNS label), `http_transport` (streamable-http or sse),
`http_url` (an absolute http(s) URL) and `secure_url` (https, or http on loopback, for URLs that carry credentials).
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

from hivegate.errors import ConfigError
from hivegate.httpclient.loopback import is_secure_transport

__all__ = ["backend_name", "http_transport", "http_url", "secure_url"]

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def backend_name(name: str, where: str) -> str:
    if len(name) > 63 or not _LABEL.fullmatch(name):
        raise ConfigError(
            f"{where}: must be a DNS label (lowercase letters, digits and hyphens, at most 63), got {name!r}"
        )
    return name


def http_transport(value: str, where: str) -> Literal["streamable-http", "sse"]:
    if value in ("", "streamable-http"):
        return "streamable-http"
    if value == "sse":
        return "sse"
    raise ConfigError(f"{where}: must be streamable-http or sse, got {value!r}")


def http_url(value: str, where: str) -> str:
    """An absolute http(s) URL with a host, and a port (if any) that is a number."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - a port that is not a number raises ValueError
    except ValueError as exc:
        raise ConfigError(f"{where}: {value!r} is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: must be an absolute http(s) URL, got {value!r}")
    return value


def secure_url(value: str, where: str) -> str:
    """An http(s) URL that carries credentials: https, or http on loopback only."""
    http_url(value, where)
    if not is_secure_transport(value):
        raise ConfigError(f"{where}: must be https (http only on loopback), got {value!r}")
    return value
