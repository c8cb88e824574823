"""Client authentication at the token and revocation endpoints (RFC 6749 section 2.3): `authenticate_client` finds the
client of a request and checks its credentials: none for a public client, the secret for a confidential one, by HTTP
Basic (`client_secret_basic`) or in the form (`client_secret_post`), whichever the client registered (a static
client may use either). Every refusal is an `OAuthError` (`invalid_client`, HTTP 401, or `invalid_request`).
"""

from __future__ import annotations

from hivegate.authserver.clients import Client, ClientStore
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.messages import Params

__all__ = ["authenticate_client"]


async def authenticate_client(clients: ClientStore, form: Params, basic: tuple[str, str] | None) -> Client:
    if basic is not None and "client_secret" in form:
        raise OAuthError("invalid_request", "use one client authentication method")
    if basic is not None:
        client_id, secret = basic
        if form.one("client_id") not in ("", client_id):
            raise OAuthError("invalid_request", "client_id does not match the Authorization header")
    else:
        client_id, secret = form.one("client_id"), form.one("client_secret")
    if not client_id:
        raise OAuthError("invalid_client", "client authentication is required", status=401)
    client = await clients.get(client_id)
    if client is None:
        raise OAuthError("invalid_client", "unknown client", status=401)
    if client.public:
        if secret:
            raise OAuthError("invalid_client", "this is a public client: it has no secret", status=401)
        return client
    if not secret or not client.secret_matches(secret):
        raise OAuthError("invalid_client", "client authentication failed", status=401)
    method = "client_secret_basic" if basic is not None else "client_secret_post"
    if client.token_endpoint_auth_method != method and client.source != "static":
        raise OAuthError("invalid_client", f"this client must use {client.token_endpoint_auth_method}", status=401)
    return client
