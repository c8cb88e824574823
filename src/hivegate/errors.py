"""The hivegate error tree: every exception hivegate raises on purpose derives from `HivegateError`, and each is
listed here (`tests/unit/core/test_error_tree.py` keeps this list complete). Private control-flow exceptions (a
leading underscore) never leave their module.

- `HivegateError`: base of everything raised on purpose; the CLI prints one line for any it meets at start-up.
  - `ConfigError`: bad flags or config; the CLI prints the one-line message and exits 2.
    - `vmcp.catalog.ConflictError`: two backends advertise one name under the configured conflict resolution.
    - `cli.goflags.GoFlagError`: a command-line argument that cannot mean what it says (a Go-style boolean value
      that is not one, a flag quoted together with its value).
  - `AuthenticationError` (HTTP 401, RFC 6750 section 3.1): `error` is `invalid_request` (no or malformed
    credentials) or `invalid_token` (expired, wrong issuer/audience, bad signature, inactive); `invalid_token()`
    builds the latter.
    - `outgoing.credentials.LoginRequired`: the backend needs an upstream login this caller has not done.
  - `InsufficientScope` (HTTP 403, RFC 6750 section 3.1 `insufficient_scope`): the token lacks scopes a call needs
    (`requiredScopes`); `scope` is what to ask for, `answer` the JSON-RPC body (MCP authorization, step-up).
  - `BackendError`: the backend could not answer (dead, unreachable, timed out); becomes a JSON-RPC error.
    - `CredentialRefused`: the backend refused the credential sent with a request (HTTP 401/403): that
      credential's problem (often one caller's), not the backend's health.
    - `SessionGone`: the backend no longer knows the session; the message was not processed.
    - `outgoing.credentials.OutgoingAuthError`: the backend's own credential could not be had (STS refused or down).
  - `FetchError`: a fetch made to authenticate callers (OIDC discovery, JWKS, introspection) failed: network error,
    timeout, unexpected HTTP status, oversized or unparseable answer. Never sent to a caller as is: authentication
    logs it and answers `invalid_token`.
    - `IssuerMismatchError`: the OIDC discovery document names another issuer (OpenID Connect Discovery 1.0
      section 4.3); a configuration error, never retried.
  - `UnsafeURLError`: a URL fetched because of configuration or input points somewhere it must not (SSRF guard).
  - `InvalidMessage` (HTTP 400, JSON-RPC -32700 or -32600): a client's body or message the pipeline refuses before
    anything reads it (not JSON, nested too deep, a key twice, not JSON-RPC, a batch reusing an id, a request
    without an id); `answer()` is the JSON-RPC error the client gets.
  - `httpclient.pool.HTTPClientError`: the reverse proxy's backend connection failed or broke.
    - `httpclient.pool.HTTPTimeout`: the backend sent no response headers (or stream data) in time.
  - `authserver.errors.OAuthError`: an OAuth error response of the embedded authorization server (RFC 6749 5.2).
  - `authserver.upstream.base.UpstreamError`: the upstream identity provider refused or failed.
  - `storage.base.StorageError`: the key-value store cannot be reached or answered nonsense.
  - `authz.entities.EntityError` (also a `ValueError`): tool arguments that cannot become Cedar attributes.
  - `authz.replay.BadLine` (also a `ValueError`): an audit line `authz replay` cannot read (counted, never raised).
  - `backends.registry.SessionLimitError`: no room for another backend session (HTTP 503).
  - `backends.shared_sessions.SessionStoreUnavailable`: the shared session store cannot say whether a session
    exists (it may: HTTP 503 with `Retry-After`, never 404).
  - `asgi.http.BodyTooLarge` (HTTP 413) and `asgi.http.ClientGone` (the client disconnected): reading a body.
  - `asgi.sinks.RequestEnded`: the client cancelled a request; no answer will come.
  - `workloads.record.WorkloadError`: a workload record problem, with `NameTaken` and `CorruptRecord`;
    `workloads.launch.StartFailed`: a background workload did not start.
  - `operator.kube.ApiError`: the Kubernetes API server refused a request of the operator (or could not be reached).
"""

from __future__ import annotations

from typing import Any, Literal

__all__ = [
    "AuthenticationError",
    "BackendError",
    "ConfigError",
    "CredentialRefused",
    "FetchError",
    "HivegateError",
    "InsufficientScope",
    "InvalidMessage",
    "IssuerMismatchError",
    "UnsafeURLError",
    "invalid_token",
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


def invalid_token(description: str) -> AuthenticationError:
    """`AuthenticationError("invalid_token", description)`: a token was sent but is not valid (RFC 6750 section 3.1)."""
    return AuthenticationError("invalid_token", description)


class InsufficientScope(HivegateError):
    """The token lacks scopes a call needs (HTTP 403, `WWW-Authenticate: Bearer error="insufficient_scope"`).

    `scope` is the space-separated scopes to ask for (those the refused calls need, then those the token holds);
    `answer` is the JSON-RPC error (or, for a batch, the list of errors) the client gets as the body."""

    status_code = 403

    def __init__(self, scope: str, answer: Any) -> None:
        super().__init__(f"insufficient scope: {scope}")
        self.scope = scope
        self.answer = answer


class BackendError(HivegateError):
    """The backend MCP server did not answer; maps to a JSON-RPC internal error."""


class CredentialRefused(BackendError):
    """The backend refused the credential sent with the request (HTTP 401/403). With a credential of the caller's
    (token exchange, an upstream token) it is that caller's problem: it says nothing of the backend's health."""


class SessionGone(BackendError):
    """The backend no longer knows the session (HTTP 404 to its session id, e.g. after a restart): the message was
    not processed, so it may be sent again on a new session."""


class FetchError(HivegateError):
    """A guarded fetch failed: network error, timeout, oversized or unparseable body. Never carries a token."""


class IssuerMismatchError(FetchError):
    """The discovery document names another issuer (OpenID Connect Discovery 1.0 section 4.3): never retried."""


class UnsafeURLError(HivegateError):
    """A URL was refused by the SSRF guard (private, loopback or link-local address, or a bad scheme)."""


class InvalidMessage(HivegateError):
    """A client message refused before anything reads it: HTTP `status` (400) with a JSON-RPC error `code` (-32700
    parse error, -32600 invalid request) naming `request_id` when it is known."""

    def __init__(self, code: int, message: str, request_id: str | int | None = None, *, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id
        self.status = status

    def answer(self) -> dict[str, Any]:
        """The JSON-RPC error object the client gets."""
        return {"jsonrpc": "2.0", "id": self.request_id, "error": {"code": self.code, "message": self.message}}
