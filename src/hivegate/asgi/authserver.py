"""HTTP for the embedded authorization server: RFC 8414 metadata, JWKS, authorize, consent, callback, token,
registration (RFC 7591), revocation (RFC 7009) and introspection (RFC 7662). Logic lives in
`hivegate.authserver.service`.

OAuth errors are JSON `{error, error_description}` with `Cache-Control: no-store`; errors a browser sees before the
client is trusted are HTML pages, never redirects. The login cookie that binds a login to its browser is
`HttpOnly`, `SameSite=Lax` and, on an https issuer, `__Host-` prefixed and `Secure`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, unquote_plus, urlsplit

from hivegate.asgi.http import BodyTooLarge, ClientGone, get_header, read_body, send_bytes, send_json
from hivegate.asgi.types import ASGIApp, Receive, Scope, Send
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.pages import PAGE_HEADERS, consent_page, error_page
from hivegate.authserver.registration_access import RegistrationAccess
from hivegate.authserver.service import AuthorizationServer, Consent, ErrorPage, Params, Redirect
from hivegate.core import jsonrpc
from hivegate.oauth.bearer import www_authenticate
from hivegate.storage.base import StorageError

__all__ = ["AuthServerRoutes"]

logger = logging.getLogger("hivegate.authserver")

_MAX_FORM = 64 * 1024
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]
_METADATA_CACHE = [(b"cache-control", b"max-age=3600"), (b"access-control-allow-origin", b"*")]
_FORM = b"application/x-www-form-urlencoded"

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


_GRANT_LABELS = {
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
    "urn:ietf:params:oauth:grant-type:token-exchange": "token_exchange",
}


class AuthServerRoutes:
    """The authorization server's ASGI routes, to mount as public (unauthenticated) routes of the gateway."""

    def __init__(
        self,
        server: AuthorizationServer,
        *,
        on_grant: Callable[[str, str], None] | None = None,
        registration: RegistrationAccess | None = None,
    ) -> None:
        """`on_grant(grant_type, outcome)` is told of every token request (outcome `success` or the OAuth error);
        `registration` decides who may register clients (anyone when None)."""
        self._server = server
        self._on_grant = on_grant
        self._registration = registration
        secure = urlsplit(server.issuer).scheme == "https"
        self._cookie = "__Host-hivegate_login" if secure else "hivegate_login"
        self._cookie_attrs = "; Path=/; HttpOnly; SameSite=Lax; Max-Age=600" + ("; Secure" if secure else "")

    def routes(self) -> dict[str, ASGIApp]:
        """Exact paths."""
        return {
            "/.well-known/oauth-authorization-server": self._guard(self._metadata),
            "/.well-known/openid-configuration": self._guard(self._openid_metadata),
            "/.well-known/jwks.json": self._guard(self._jwks),
            "/oauth/authorize": self._guard(self._authorize),
            "/oauth/consent": self._guard(self._consent),
            "/oauth/callback": self._guard(self._callback),
            "/oauth/token": self._guard(self._token),
            "/oauth/register": self._guard(self._register),
            "/oauth/revoke": self._guard(self._revoke),
            "/oauth/introspect": self._guard(self._introspect),
        }

    def prefixes(self) -> dict[str, ASGIApp]:
        """Path-suffixed metadata (`/.well-known/oauth-authorization-server/<path>`, RFC 8414 3.1)."""
        return {
            "/.well-known/oauth-authorization-server/": self._guard(self._metadata),
            "/.well-known/openid-configuration/": self._guard(self._openid_metadata),
        }

    def _guard(self, handler: Handler) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await handler(scope, receive, send)
            except StorageError as exc:
                logger.error("authserver storage unavailable: %s", exc)
                body = {"error": "temporarily_unavailable", "error_description": "storage is unavailable"}
                await send_json(send, 503, body, [*_NO_STORE, (b"retry-after", b"5")])
            except ClientGone:
                pass

        return app

    # -- metadata --------------------------------------------------------------------------------------------------

    async def _metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await _method(scope, send, "GET"):
            await send_json(send, 200, self._server.metadata(), _METADATA_CACHE)

    async def _openid_metadata(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await _method(scope, send, "GET"):
            await send_json(send, 200, self._server.metadata(openid=True), _METADATA_CACHE)

    async def _jwks(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await _method(scope, send, "GET"):
            headers = [(b"cache-control", b"max-age=300"), (b"access-control-allow-origin", b"*")]
            await send_json(send, 200, self._server.keys.jwks(), headers)

    # -- browser-facing --------------------------------------------------------------------------------------------

    async def _authorize(self, scope: Scope, receive: Receive, send: Send) -> None:
        params: Params | None
        if scope["method"] == "GET":
            params = _query(scope)
        elif scope["method"] == "POST":
            params = await self._form(scope, receive, send, page=True)
            if params is None:
                return
        else:
            await send_bytes(send, 405, b"", [(b"allow", b"GET, POST")])
            return
        browser = self._browser(scope)
        fresh = browser is None
        browser = browser or secrets.token_urlsafe(32)
        outcome = await self._server.authorize(params, browser)
        cookie = [(b"set-cookie", f"{self._cookie}={browser}{self._cookie_attrs}".encode())] if fresh else []
        await self._outcome(send, outcome, cookie)

    async def _consent(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await _method(scope, send, "POST"):
            return
        form = await self._form(scope, receive, send, page=True)
        if form is not None:
            await self._outcome(send, await self._server.consent(form, self._browser(scope)))

    async def _callback(self, scope: Scope, receive: Receive, send: Send) -> None:
        if await _method(scope, send, "GET"):
            await self._outcome(send, await self._server.callback(_query(scope), self._browser(scope)))

    async def _outcome(
        self, send: Send, outcome: Redirect | ErrorPage | Consent, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        extra = list(headers or ())
        if isinstance(outcome, Redirect):
            location = outcome.url.encode("latin-1", "replace")
            await send_bytes(send, 302, b"", [(b"location", location), *_NO_STORE, *extra])
        elif isinstance(outcome, ErrorPage):
            logger.warning("authserver: error page %r (reference %s) for client %r: %s", outcome.title,
                           outcome.reference, outcome.client_id[:200] or None, outcome.message)  # fmt: skip
            await send_bytes(send, outcome.status, error_page(outcome), [*PAGE_HEADERS, *extra])
        else:
            await send_bytes(send, 200, consent_page(outcome, action="/oauth/consent"), [*PAGE_HEADERS, *extra])

    def _browser(self, scope: Scope) -> str | None:
        header = get_header(scope, b"cookie")
        if not header:
            return None
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == self._cookie and 20 <= len(value) <= 100:
                return value
        return None

    # -- client-facing (JSON) --------------------------------------------------------------------------------------

    async def _token(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._json_endpoint(scope, receive, send, self._token_answer)

    async def _revoke(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._json_endpoint(scope, receive, send, self._revoke_answer)

    async def _introspect(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._json_endpoint(scope, receive, send, self._introspect_answer)

    async def _token_answer(self, scope: Scope, form: Params) -> tuple[int, object]:
        outcome = "server_error"
        try:
            answer = await self._server.token(form, _basic(scope))
            outcome = "success"
        except OAuthError as exc:
            outcome = exc.error
            raise
        finally:
            if self._on_grant is not None:
                given = form.many("grant_type")
                self._on_grant(_GRANT_LABELS.get(given[0] if given else "", "other"), outcome)
        return 200, answer

    async def _revoke_answer(self, scope: Scope, form: Params) -> tuple[int, object]:
        await self._server.revoke(form, _basic(scope))
        return 200, {}

    async def _introspect_answer(self, scope: Scope, form: Params) -> tuple[int, object]:
        return 200, await self._server.introspect(form, _basic(scope))

    async def _json_endpoint(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        answer: Callable[[Scope, Params], Awaitable[tuple[int, object]]],
    ) -> None:
        if not await _method(scope, send, "POST"):
            return
        form = await self._form(scope, receive, send, page=False)
        if form is None:
            return
        try:
            status, body = await answer(scope, form)
        except OAuthError as exc:
            await _oauth_error(send, exc, basic=get_header(scope, b"authorization") is not None)
            return
        await send_json(send, status, body, _NO_STORE)

    async def _register(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not await _method(scope, send, "POST"):
            return
        content_type = (get_header(scope, b"content-type") or "").split(";")[0].strip().lower()
        remote = str((scope.get("client") or ("unknown", 0))[0])
        try:
            if self._registration is not None:  # before the body is read: a refused caller costs nothing more
                await self._registration.check(get_header(scope, b"authorization"), remote=remote)
            if content_type != "application/json":
                raise OAuthError("invalid_client_metadata", "the registration request must be application/json")
            try:
                body = await read_body(receive, _MAX_FORM)
            except BodyTooLarge:
                too_large = f"the request body exceeds {_MAX_FORM} bytes"
                raise OAuthError("invalid_client_metadata", too_large, status=413) from None
            try:
                metadata = jsonrpc.decode(body)
            except ValueError:
                raise OAuthError("invalid_client_metadata", "the request body is not valid JSON") from None
            _, response = await self._server.clients.register(metadata, remote=remote)
        except OAuthError as exc:
            await _oauth_error(send, exc)
            return
        await send_json(send, 201, response, _NO_STORE)

    async def _form(self, scope: Scope, receive: Receive, send: Send, *, page: bool) -> Params | None:
        content_type = (get_header(scope, b"content-type") or "").split(";")[0].strip().lower().encode()
        problem = None
        if content_type != _FORM:
            problem = "the request must be application/x-www-form-urlencoded"
        else:
            try:
                body = await read_body(receive, _MAX_FORM)
                return Params(parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64))
            except BodyTooLarge:
                problem = f"the request body exceeds {_MAX_FORM} bytes"
            except (UnicodeDecodeError, ValueError):
                problem = "the request body is not a valid form"
        if page:
            await self._outcome(send, ErrorPage(400, "Invalid request", problem.capitalize() + ".", "report-app"))
        else:
            await _oauth_error(send, OAuthError("invalid_request", problem))
        return None


async def _method(scope: Scope, send: Send, allowed: str) -> bool:
    if scope["method"] == allowed:
        return True
    await send_bytes(send, 405, b"", [(b"allow", allowed.encode())])
    return False


def _query(scope: Scope) -> Params:
    raw = scope.get("query_string", b"").decode("latin-1")
    try:
        return Params(parse_qs(raw, keep_blank_values=True, max_num_fields=64))
    except ValueError:
        return Params({})


def _basic(scope: Scope) -> tuple[str, str] | None:
    """HTTP Basic client credentials (RFC 6749 2.3.1: each part form-urlencoded); `OAuthError` when malformed."""
    header = get_header(scope, b"authorization")
    if header is None:
        return None
    kind, _, value = header.partition(" ")
    if kind.lower() != "basic":
        raise OAuthError("invalid_client", "only HTTP Basic client authentication is accepted here", status=401)
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise OAuthError("invalid_client", "malformed Basic credentials", status=401) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError("invalid_client", "malformed Basic credentials", status=401)
    return unquote_plus(client_id), unquote_plus(secret)


async def _oauth_error(send: Send, exc: OAuthError, *, basic: bool = False) -> None:
    headers = list(_NO_STORE)
    if exc.status == 401 and basic:
        headers.append((b"www-authenticate", b'Basic realm="hivegate"'))
    elif exc.status == 401 and exc.error == "invalid_token":  # RFC 6750 section 3.1, as RFC 7591 section 3 asks
        challenge = www_authenticate(error=exc.error, error_description=exc.description)
        headers.append((b"www-authenticate", challenge.encode("latin-1", "replace")))
    if exc.retry_after is not None:
        headers.append((b"retry-after", str(exc.retry_after).encode()))
    await send_json(send, exc.status, exc.body(), headers)
