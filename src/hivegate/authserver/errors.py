"""OAuth error responses (RFC 6749 5.2, RFC 7591 3.2.2, RFC 8707 2): an error code and a one-line description."""

from __future__ import annotations

from hivegate.errors import HivegateError

__all__ = ["OAuthError"]


class OAuthError(HivegateError):
    """`error` is an RFC error code (`invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    `unsupported_grant_type`, `invalid_scope`, `invalid_target`, `invalid_redirect_uri`, `invalid_client_metadata`,
    `access_denied`, `invalid_token` (RFC 6750 3.1: a bad initial access token at registration), `server_error`,
    `temporarily_unavailable`, `slow_down`); `status` the HTTP status to answer with; `retry_after` seconds for
    429/503. The description never contains a secret or token."""

    def __init__(self, error: str, description: str, *, status: int = 400, retry_after: int | None = None) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status
        self.retry_after = retry_after

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}
