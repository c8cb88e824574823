"""The hivegate error tree. Each error knows its wire form.

- `HivegateError`: base of everything raised on purpose.
  - `ConfigError`: bad flags or config; the CLI prints the one-line message and exits 2.
  - `AuthenticationError` (HTTP 401, RFC 6750 section 3.1): `error` is `invalid_request` (no or malformed
    credentials) or `invalid_token` (expired, wrong issuer/audience, bad signature, inactive).
  - `BackendError`: the backend could not answer (dead, unreachable, timed out); becomes a JSON-RPC error.
  - `UnsafeURLError`: a URL fetched because of configuration or input points somewhere it must not (SSRF guard).
"""

from __future__ import annotations

from typing import Literal

__all__ = [
    "AuthenticationError",
    "BackendError",
    "ConfigError",
    "HivegateError",
    "UnsafeURLError",
]


class HivegateError(Exception):
    """Base class of every error hivegate raises on purpose."""


class ConfigError(HivegateError):
    """Invalid configuration; the message is one line naming the flag or field."""


class AuthenticationError(HivegateError):
    """The caller is not authenticated (HTTP 401, `WWW-Authenticate: Bearer`)."""

    status_code = 401

    def __init__(self, error: Literal["invalid_request", "invalid_token"], description: str) -> None:
        super().__init__(description)
        self.error: Literal["invalid_request", "invalid_token"] = error
        self.description = description


class BackendError(HivegateError):
    """The backend MCP server did not answer; maps to a JSON-RPC internal error."""


class UnsafeURLError(HivegateError):
    """A URL was refused by the SSRF guard (private, loopback or link-local address, or a bad scheme)."""
