"""The authorization server's logic: authorization code flow with PKCE, upstream logins, tokens, refresh, revocation,
introspection.

Transport-free: the ASGI layer (`hivegate.asgi.authserver`) turns HTTP into calls here and outcomes into responses.

`AuthorizationServer` is the one object callers hold; it composes the parts, which share a `context.ServerContext`
(config, keys, store, clock): the browser-facing login (`flow`: authorize, consent, the upstreams' callbacks), the
grants of the token endpoint (`grants.authorization_code`, `grants.refresh`, `grants.token_exchange`, minting in
`grants.issue`), client authentication (`grants.client_auth`), revocation (`grants.revoke`, kept by
`revocation`) and introspection (`introspection`). What stays here: the server's metadata, dispatching token
requests by grant type, and the upstream tokens of a session for the backends (kept by `upstream_links`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hivegate.authserver.clients import ClientStore
from hivegate.authserver.context import ServerContext
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.flow import LOGIN_TTL, LoginFlow
from hivegate.authserver.grants.authorization_code import AuthorizationCodeGrant
from hivegate.authserver.grants.client_auth import authenticate_client
from hivegate.authserver.grants.issue import TokenIssuer
from hivegate.authserver.grants.refresh import REFRESH_GRACE, RefreshGrant
from hivegate.authserver.grants.revoke import TokenRevocation
from hivegate.authserver.grants.token_exchange import TOKEN_EXCHANGE_GRANT, TokenExchangeGrant, TrustedIssuer
from hivegate.authserver.identity import GROUP_CLAIMS
from hivegate.authserver.introspection import TokenIntrospection
from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.messages import Consent, ErrorPage, Params, Redirect
from hivegate.authserver.revocation import Revocations
from hivegate.authserver.sealing import SealedStore, Sealer
from hivegate.authserver.settings import AuthServerConfig
from hivegate.authserver.upstream.base import UpstreamProvider, UpstreamTokens
from hivegate.authserver.upstream_links import UPSTREAM_TRANSIENT, UpstreamLinks
from hivegate.storage.base import KeyValueStore

__all__ = [
    "REFRESH_GRACE",
    "UPSTREAM_TRANSIENT",
    "AuthorizationServer",
    "Consent",
    "ErrorPage",
    "Params",
    "Redirect",
]


class AuthorizationServer:
    def __init__(
        self,
        cfg: AuthServerConfig,
        *,
        keys: SigningKeys,
        hmac_keys: HMACKeys,
        store: KeyValueStore,
        clients: ClientStore,
        upstreams: Sequence[UpstreamProvider],
        audiences: Sequence[str],
        clock: Callable[[], float] = time.time,
        clock_skew: float = 60.0,
        name: str = "",
    ) -> None:
        """`clock_skew`: seconds of leeway for the `exp`, `nbf` and `iat` of the tokens it checks (token exchange's
        subject tokens; `--oidc-clock-skew`). `name`: this MCP server's name, shown on the consent page (the
        resource's host when empty)."""
        if not audiences:
            raise ValueError("at least one allowed audience is needed")
        self.cfg = cfg
        self.keys = keys
        self.clients = clients
        self._upstreams = list(upstreams)
        self.audiences = tuple(audiences)
        self.issuer = cfg.issuer
        lifespans = cfg.lifespans
        sealer = Sealer.from_hmac_keys(hmac_keys)
        sealed = SealedStore(store, sealer, {"session": lifespans.refresh, "login": LOGIN_TTL})
        self._ctx = ServerContext(cfg=cfg, keys=keys, hmac=hmac_keys, store=sealed, sealer=sealer, clock=clock)
        revocations = Revocations(store, ttl=max(lifespans.refresh, lifespans.access), remember=lifespans.access)
        self._revocations = revocations
        self._exchange = TokenExchangeGrant(
            issuer=cfg.issuer,
            keys=keys,
            audiences=self.audiences,
            scopes_supported=cfg.scopes_supported,
            access_lifespan=cfg.lifespans.access,
            upstreams=[u for u in upstreams if isinstance(u, TrustedIssuer)],
            clock=clock,
            revoked=revocations.claims_revoked,
            clock_skew=clock_skew,
        )
        self._flow = LoginFlow(
            self._ctx, clients=clients, upstreams=self._upstreams, audiences=self.audiences, server_name=name
        )
        issuer = TokenIssuer(self._ctx)
        self._code = AuthorizationCodeGrant(self._ctx, issuer=issuer, revocations=revocations)
        self._links = UpstreamLinks(self._ctx, self._upstreams)
        self._refresh = RefreshGrant(self._ctx, issuer=issuer, revocations=revocations, links=self._links)
        self._revocation = TokenRevocation(self._ctx, revocations=revocations, exchange=self._exchange)
        self._introspection = TokenIntrospection(self._ctx, revocations=revocations, exchange=self._exchange)

    @property
    def _clock(self) -> Callable[[], float]:
        """The clock of the login flow and the grants (replaced by tests to move time)."""
        return self._ctx.clock

    @_clock.setter
    def _clock(self, clock: Callable[[], float]) -> None:
        self._ctx.clock = clock

    @property
    def upstream_names(self) -> tuple[str, ...]:
        """The configured upstream providers' names, in login order."""
        return tuple(u.name for u in self._upstreams)

    # -- metadata --------------------------------------------------------------------------------------------------

    def metadata(self, *, openid: bool = False) -> dict[str, Any]:
        """RFC 8414 metadata (and the OpenID Connect discovery fields with `openid`)."""
        issuer = self.issuer
        doc: dict[str, Any] = {
            "issuer": issuer,
            "authorization_endpoint": f"{self.cfg.authorization_base}/oauth/authorize",
            "token_endpoint": f"{issuer}/oauth/token",
            "registration_endpoint": f"{issuer}/oauth/register",
            "revocation_endpoint": f"{issuer}/oauth/revoke",
            "jwks_uri": f"{issuer}/.well-known/jwks.json",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", TOKEN_EXCHANGE_GRANT],
            "token_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "revocation_endpoint_auth_methods_supported": ["none", "client_secret_basic", "client_secret_post"],
            "introspection_endpoint": f"{issuer}/oauth/introspect",
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(self.cfg.scopes_supported),
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": True,
        }
        if openid:
            doc["subject_types_supported"] = ["public"]
            doc["id_token_signing_alg_values_supported"] = self.keys.algorithms
            doc["claims_supported"] = ["sub", "iss", "aud", "exp", "iat", "name", "email", *GROUP_CLAIMS]
        return doc

    # -- browser-facing: /oauth/authorize, /oauth/consent, /oauth/callback (see `flow`) -----------------------------

    async def authorize(self, params: Params, browser: str) -> Redirect | ErrorPage | Consent:
        """Start a login for the browser identified by `browser` (the caller sets that cookie)."""
        return await self._flow.authorize(params, browser)

    async def consent(self, form: Params, browser: str | None) -> Redirect | ErrorPage:
        """The consent form's answer; only the browser that was shown the page can give it."""
        return await self._flow.consent(form, browser)

    async def callback(self, params: Params, browser: str | None) -> Redirect | ErrorPage:
        """An upstream sends the browser back: redeem its code, then the next upstream or back to the client."""
        return await self._flow.callback(params, browser)

    # -- /oauth/token ----------------------------------------------------------------------------------------------

    async def token(self, form: Params, basic: tuple[str, str] | None) -> dict[str, Any]:
        """A token response; `OAuthError` otherwise. `basic` is the (client_id, secret) of HTTP Basic auth."""
        client = await authenticate_client(self.clients, form, basic)
        grant_type = form.one("grant_type")
        if grant_type == "authorization_code":
            return await self._code.redeem(client, form)
        if grant_type == "refresh_token":
            return await self._refresh.refresh(client, form)
        if grant_type == TOKEN_EXCHANGE_GRANT:
            names = ("subject_token", "subject_token_type", "actor_token", "actor_token_type", "requested_token_type",
                     "scope")  # fmt: skip
            single = {name: form.one(name) for name in names}
            return await self._exchange.exchange(client, single, [*form.many("audience"), *form.many("resource")])
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type[:64]!r} is not supported")

    async def token_revoked(self, claims: Mapping[str, Any]) -> bool:
        """Whether an access token this server issued (its verified `claims`) has been revoked since."""
        return await self._revocations.claims_revoked(claims)

    # -- /oauth/revoke (RFC 7009) ----------------------------------------------------------------------------------

    async def revoke(self, form: Params, basic: tuple[str, str] | None) -> None:
        """Revoke a refresh or access token: its whole family (every token issued from the same login), except an
        exchanged access token, which is revoked alone. Only the client a token was issued to may revoke it; unknown
        tokens and tokens of other clients are ignored (the answer is the same), as RFC 7009 asks."""
        client = await authenticate_client(self.clients, form, basic)
        token = form.one("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        await self._revocation.revoke(client, token)

    # -- /oauth/introspect (RFC 7662) ------------------------------------------------------------------------------

    async def introspect(self, form: Params, basic: tuple[str, str] | None) -> dict[str, Any]:
        """Whether a token of this server is active, and its claims; `{"active": false}` for anything else. Only
        confidential clients may ask, and a client registered at run time only about its own tokens (see
        `introspection`)."""
        client = await authenticate_client(self.clients, form, basic)
        token = form.one("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        return await self._introspection.introspect(client, token, form.one("token_type_hint"))

    # -- upstream tokens for backends ------------------------------------------------------------------------------

    async def upstream_tokens(self, session_id: str, provider: str) -> UpstreamTokens | None:
        """The session's tokens from `provider`, refreshed first when expired (and the session's claims with them);
        None when there are none, or when they cannot be refreshed (no refresh token, or the upstream refused it,
        e.g. `invalid_grant`: the link ends, the user must log in again). When the upstream cannot be reached (a
        network failure, a timeout, an HTTP 5xx, `temporarily_unavailable`: see `UPSTREAM_TRANSIENT`) the
        `UpstreamError` is raised instead: the login is still good, only this attempt failed. See `upstream_links`."""
        return await self._links.tokens(session_id, provider)

    async def ready(self) -> None:
        """Raise `StorageError` when the store cannot be used."""
        await self._ctx.store.ping()
