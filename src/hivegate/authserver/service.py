"""The authorization server's logic: authorization code flow with PKCE, upstream logins, tokens, refresh, revocation.

Transport-free: the ASGI layer (`hivegate.asgi.authserver`) turns HTTP into calls here and outcomes into responses.

A login (`/oauth/authorize`) is checked in the order that decides where errors may go: the client and its redirect
URI first (failures are shown as a page, never redirected: they would be open redirects), then everything else
(failures are redirected to the client with `error`, `state` and `iss`). The login is bound to the browser that
started it by a cookie, checked at the consent form and at every upstream callback, so a login link cannot be
completed in someone else's browser. Several upstreams are visited in order; every leg after the first must be the
same person: the same email (case-insensitively) from both providers, neither marked `email_verified: false`. A leg
that cannot be compared is refused, unless its upstream says `identityCheck: none`.

Codes and refresh tokens are opaque and HMAC-protected (`keys.HMACKeys`); the store keys them by hash. A code is
redeemed once; a second redemption revokes everything the first one issued. Refresh tokens rotate; presenting a
rotated one again revokes its whole family, except within `REFRESH_GRACE` seconds (concurrent refreshes by one
client both succeed instead of logging the user out).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from hivegate.authserver.clients import Client, ClientStore
from hivegate.authserver.config import AuthServerConfig
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.exchange_grant import TOKEN_EXCHANGE_GRANT, TokenExchangeGrant, TrustedIssuer
from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.pkce import challenge_of, new_verifier, random_id, valid_challenge, verifier_matches
from hivegate.authserver.revocation import FAMILY_CLAIM, Revocations
from hivegate.authserver.upstream.base import UpstreamError, UpstreamIdentity, UpstreamProvider, UpstreamTokens
from hivegate.storage.base import KeyValueStore, Record

__all__ = [
    "REFRESH_GRACE",
    "UPSTREAM_TRANSIENT",
    "AuthorizationServer",
    "Consent",
    "ErrorPage",
    "Params",
    "Redirect",
]

logger = logging.getLogger("hivegate.authserver")

REFRESH_GRACE = 10.0  # seconds a rotated refresh token is still honoured (concurrent refreshes)
# refresh errors that say the upstream could not be reached (network, timeout, HTTP 5xx), not that the grant is bad
UPSTREAM_TRANSIENT = frozenset({"temporarily_unavailable", "server_error"})
LOGIN_TTL = 600.0  # a login must finish within ten minutes
CODE_PREFIX = "hgc"
REFRESH_PREFIX = "hgr"
GROUP_CLAIMS = ("groups", "roles", "cognito:groups")
_MAX_PARAM = 4096


@dataclass(frozen=True, slots=True)
class Redirect:
    url: str


@dataclass(frozen=True, slots=True)
class ErrorPage:
    status: int
    title: str
    message: str


@dataclass(frozen=True, slots=True)
class Consent:
    login: str
    csrf: str
    client: Client
    redirect_uri: str
    upstream: str


class Params:
    """Form or query parameters. RFC 6749 3.1: a parameter may not repeat (`one()` raises `OAuthError`), except
    `resource`, which RFC 8707 allows several times (we accept one: `invalid_target` otherwise)."""

    def __init__(self, values: Mapping[str, Sequence[str]]) -> None:
        self._values = values

    @classmethod
    def of(cls, **single: str) -> Params:
        return cls({k: [v] for k, v in single.items()})

    def one(self, name: str) -> str:
        values = self._values.get(name, ())
        if len(values) > 1:
            raise OAuthError("invalid_request", f"parameter {name} is repeated")
        value = values[0] if values else ""
        if len(value) > _MAX_PARAM:
            raise OAuthError("invalid_request", f"parameter {name} is too long")
        return value

    def many(self, name: str) -> Sequence[str]:
        return self._values.get(name, ())

    def __contains__(self, name: str) -> bool:
        return name in self._values


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


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
    ) -> None:
        if not audiences:
            raise ValueError("at least one allowed audience is needed")
        self.cfg = cfg
        self.keys = keys
        self._hmac = hmac_keys
        self._store = store
        self.clients = clients
        self._upstreams = list(upstreams)
        self._upstream_by_name = {u.name: u for u in upstreams}
        self.audiences = tuple(audiences)
        self._clock = clock
        self.issuer = cfg.issuer
        self._csrf_key = hmac_keys.derive(b"hivegate consent csrf")
        lifespans = cfg.lifespans
        self._revocations = Revocations(store, ttl=max(lifespans.refresh, lifespans.access), remember=lifespans.access)
        self._exchange = TokenExchangeGrant(
            issuer=cfg.issuer,
            keys=keys,
            audiences=self.audiences,
            scopes_supported=cfg.scopes_supported,
            access_lifespan=cfg.lifespans.access,
            upstreams=[u for u in upstreams if isinstance(u, TrustedIssuer)],
            clock=clock,
            revoked=self._revocations.claims_revoked,
        )

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

    # -- /oauth/authorize ------------------------------------------------------------------------------------------

    async def authorize(self, params: Params, browser: str) -> Redirect | ErrorPage | Consent:
        """Start a login for the browser identified by `browser` (the caller sets that cookie)."""
        try:
            client_id, redirect_uri = params.one("client_id"), params.one("redirect_uri")
        except OAuthError as exc:
            return ErrorPage(400, "Invalid request", exc.description)
        if not client_id:
            return ErrorPage(400, "Invalid request", "The request has no client_id.")
        client = await self.clients.get(client_id)
        if client is None:
            return ErrorPage(400, "Unknown application", "This application is not registered with this server.")
        redirect_given = bool(redirect_uri)
        if not redirect_uri and len(client.redirect_uris) == 1:
            redirect_uri = client.redirect_uris[0]
        if redirect_uri not in client.redirect_uris:
            return ErrorPage(
                400, "Invalid redirect URI", "The redirect URI does not exactly match one registered for this client."
            )
        states = params.many("state")
        state = states[0] if len(states) == 1 and len(states[0]) <= _MAX_PARAM else ""

        def fail(error: str, description: str) -> Redirect:
            return self._client_redirect(redirect_uri, {"error": error, "error_description": description}, state)

        try:
            if params.one("response_type") != "code":
                raise OAuthError("unsupported_response_type", "only response_type=code is supported")
            if not params.one("state"):
                raise OAuthError("invalid_request", "state is required")
            challenge = params.one("code_challenge")
            if not challenge:
                raise OAuthError("invalid_request", "PKCE is required: code_challenge is missing")
            if params.one("code_challenge_method") != "S256":
                raise OAuthError("invalid_request", "code_challenge_method must be S256")
            if not valid_challenge(challenge):
                raise OAuthError("invalid_request", "code_challenge must be a base64url SHA-256 digest (43 characters)")
            if "authorization_code" not in client.grant_types:
                raise OAuthError("unauthorized_client", "this client may not use the authorization code grant")
            scope = self._scopes(params.one("scope"), client)
            resource = self._resource(params.many("resource"))
        except OAuthError as exc:
            return fail(exc.error, exc.description)
        login_id = random_id()
        record: Record = {
            "client_id": client.client_id,
            "redirect_uri": redirect_uri,
            "redirect_given": redirect_given,
            "code_challenge": challenge,
            "state": state,
            "scope": scope,
            "resource": resource,
            "browser": _hash(browser),
            "leg": 0,
            "legs": [{"nonce": random_id(16), "verifier": new_verifier()} for _ in self._upstreams],
            "identities": [],
            "upstream_tokens": {},
        }
        await self._store.put("login", login_id, record, LOGIN_TTL)
        if self.cfg.require_consent and client.source != "static":
            return Consent(login_id, self._csrf(login_id, browser), client, redirect_uri, self._upstreams[0].name)
        return await self._to_upstream(login_id, record)

    async def consent(self, form: Params, browser: str | None) -> Redirect | ErrorPage:
        """The consent form's answer; only the browser that was shown the page can give it."""
        try:
            login_id, csrf, decision = form.one("login"), form.one("csrf"), form.one("decision")
        except OAuthError as exc:
            return ErrorPage(400, "Invalid request", exc.description)
        record = await self._store.get("login", login_id) if login_id else None
        if record is None:
            return ErrorPage(400, "Sign-in expired", "This sign-in has expired or was already used. Start again.")
        if (
            browser is None
            or not hmac.compare_digest(record["browser"], _hash(browser))
            or not hmac.compare_digest(csrf, self._csrf(login_id, browser))
        ):
            return ErrorPage(403, "Request refused", "This consent form was not shown in this browser.")
        if decision != "allow":
            await self._store.delete("login", login_id)
            return self._client_redirect(
                record["redirect_uri"],
                {"error": "access_denied", "error_description": "the user denied access"},
                record["state"],
            )
        return await self._to_upstream(login_id, record)

    async def callback(self, params: Params, browser: str | None) -> Redirect | ErrorPage:
        """An upstream sends the browser back: redeem its code, then the next upstream or back to the client."""
        try:
            state_param, code, error = params.one("state"), params.one("code"), params.one("error")
            error_description = params.one("error_description")
        except OAuthError as exc:
            return ErrorPage(400, "Invalid request", exc.description)
        login_id, _, leg_text = state_param.partition(".")
        record = await self._store.take("login", login_id) if login_id else None  # one callback per leg
        if record is None:
            return ErrorPage(400, "Sign-in expired", "This sign-in has expired or was already used. Start again.")
        if browser is None or not hmac.compare_digest(record["browser"], _hash(browser)):
            await self._store.put("login", login_id, record, LOGIN_TTL)  # still the rightful browser's to finish
            return ErrorPage(403, "Request refused", "This sign-in was started in another browser.")
        leg = record["leg"]
        if leg_text != str(leg):
            return ErrorPage(400, "Sign-in expired", "This sign-in step was already completed. Start again.")
        upstream = self._upstreams[leg]
        redirect_uri, state = record["redirect_uri"], record["state"]
        if error or not code:
            error = error or "invalid_request"
            description = f"{upstream.name}: {error_description or error}"[:300]
            denied = error in ("access_denied", "login_required", "consent_required", "interaction_required")
            outcome = {"error": "access_denied" if denied else "server_error", "error_description": description}
            return self._client_redirect(redirect_uri, outcome, state)
        try:
            tokens, identity = await upstream.exchange_code(
                code,
                code_verifier=record["legs"][leg]["verifier"],
                nonce=record["legs"][leg]["nonce"],
                redirect_uri=self.cfg.redirect_uri(self.cfg.upstreams[leg]),
            )
        except UpstreamError as exc:
            logger.warning("upstream %r login failed: %s", upstream.name, exc.error)
            error = "temporarily_unavailable" if exc.error == "temporarily_unavailable" else "server_error"
            return self._client_redirect(
                redirect_uri, {"error": error, "error_description": f"{upstream.name}: {exc.description}"}, state
            )
        identities: list[dict[str, Any]] = record["identities"]
        if identities and self.cfg.upstreams[leg].identity_check == "email":
            problem = _not_same_person(identities[0], identity, self._upstreams[0].name)
            if problem is not None:
                logger.warning("upstream %r login refused: %s (identityCheck: email)", upstream.name, problem)
                return self._client_redirect(
                    redirect_uri, {"error": "access_denied", "error_description": f"{upstream.name}: {problem}"}, state
                )
        identities.append({"subject": identity.subject, "name": identity.name, "email": identity.email,
                           "claims": dict(identity.claims)})  # fmt: skip
        record["upstream_tokens"][upstream.name] = tokens.to_record()
        if leg + 1 < len(self._upstreams):
            record["leg"] = leg + 1
            return await self._to_upstream(login_id, record)
        return await self._finish(record)

    async def _to_upstream(self, login_id: str, record: Record) -> Redirect:
        leg = record["leg"]
        upstream = self._upstreams[leg]
        try:
            url = await upstream.authorization_url(
                state=f"{login_id}.{leg}",
                code_challenge=challenge_of(record["legs"][leg]["verifier"]),
                nonce=record["legs"][leg]["nonce"],
                redirect_uri=self.cfg.redirect_uri(self.cfg.upstreams[leg]),
            )
        except UpstreamError as exc:  # e.g. its discovery document cannot be had
            logger.warning("upstream %r unavailable: %s", upstream.name, exc.error)
            await self._store.delete("login", login_id)
            error = "temporarily_unavailable" if exc.error == "temporarily_unavailable" else "server_error"
            outcome = {"error": error, "error_description": f"{upstream.name}: {exc.description}"}
            return self._client_redirect(record["redirect_uri"], outcome, record["state"])
        await self._store.put("login", login_id, record, LOGIN_TTL)
        return Redirect(url)

    async def _finish(self, record: Record) -> Redirect:
        first = record["identities"][0]
        now = self._clock()
        session_id = random_id(18)
        claims = _token_claims(first)
        session = {
            "subject": first["subject"],
            "claims": claims,
            "client_id": record["client_id"],
            "upstream_tokens": record["upstream_tokens"],
            "created_at": now,
        }
        await self._store.put("session", session_id, session, self.cfg.lifespans.refresh)
        code = self._hmac.mint(CODE_PREFIX)
        grant = {
            "client_id": record["client_id"],
            "redirect_uri": record["redirect_uri"],
            "redirect_given": record["redirect_given"],
            "code_challenge": record["code_challenge"],
            "scope": record["scope"],
            "resource": record["resource"],
            "session_id": session_id,
            "subject": first["subject"],
            "claims": claims,
            "expires_at": now + self.cfg.lifespans.auth_code,
        }
        await self._store.put("code", code.lookup, grant, self.cfg.lifespans.auth_code)
        return self._client_redirect(record["redirect_uri"], {"code": code.token}, record["state"])

    def _client_redirect(self, redirect_uri: str, values: dict[str, str], state: str) -> Redirect:
        query = dict(values)
        if state:
            query["state"] = state
        query["iss"] = self.issuer  # RFC 9207
        separator = "&" if urlsplit(redirect_uri).query else "?"
        return Redirect(f"{redirect_uri}{separator}{urlencode(query)}")

    def _csrf(self, login_id: str, browser: str) -> str:
        return hmac.new(self._csrf_key, f"{login_id}.{browser}".encode(), hashlib.sha256).hexdigest()

    def _scopes(self, requested: str | None, client: Client) -> list[str]:
        allowed = set(self.cfg.scopes_supported)
        if client.scope:
            allowed &= set(client.scope.split())
        if not requested:
            return sorted(set(client.scope.split()) & allowed) if client.scope else []
        scopes = list(dict.fromkeys(requested.split()))
        unknown = [s for s in scopes if s not in allowed]
        if unknown:
            raise OAuthError("invalid_scope", f"scope {unknown[0]!r} is not allowed for this client")
        return scopes

    def _resource(self, resources: Sequence[str]) -> str:
        """The audience (RFC 8707): the one `resource` given, or the only allowed audience when none is."""
        if len(resources) > 1:
            raise OAuthError("invalid_target", "only one resource may be requested")
        resource = resources[0] if resources else ""
        if not resource:
            if len(self.audiences) == 1:
                return self.audiences[0]
            raise OAuthError("invalid_target", "resource is required: this server protects several resources")
        parts = urlsplit(resource)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            raise OAuthError("invalid_target", "resource must be an absolute URI without a fragment")
        if resource not in self.audiences:
            raise OAuthError("invalid_target", "resource is not served by this authorization server")
        return resource

    # -- /oauth/token ----------------------------------------------------------------------------------------------

    async def token(self, form: Params, basic: tuple[str, str] | None) -> dict[str, Any]:
        """A token response; `OAuthError` otherwise. `basic` is the (client_id, secret) of HTTP Basic auth."""
        client = await self._authenticate_client(form, basic)
        grant_type = form.one("grant_type")
        if grant_type == "authorization_code":
            return await self._redeem_code(client, form)
        if grant_type == "refresh_token":
            return await self._refresh(client, form)
        if grant_type == TOKEN_EXCHANGE_GRANT:
            names = ("subject_token", "subject_token_type", "actor_token", "actor_token_type", "requested_token_type",
                     "scope")  # fmt: skip
            single = {name: form.one(name) for name in names}
            return await self._exchange.exchange(client, single, [*form.many("audience"), *form.many("resource")])
        if not grant_type:
            raise OAuthError("invalid_request", "grant_type is required")
        raise OAuthError("unsupported_grant_type", f"grant_type {grant_type[:64]!r} is not supported")

    async def _authenticate_client(self, form: Params, basic: tuple[str, str] | None) -> Client:
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
        client = await self.clients.get(client_id)
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

    async def _redeem_code(self, client: Client, form: Params) -> dict[str, Any]:
        lookup = self._hmac.check(CODE_PREFIX, form.one("code"))
        if lookup is None:
            raise OAuthError("invalid_grant", "the authorization code is invalid")
        grant = await self._store.get("code", lookup)
        if grant is None:
            used = await self._store.get("code-used", lookup)
            if used is not None:
                await self._revoke_family(used, "authorization code replayed")
            raise OAuthError("invalid_grant", "the authorization code is invalid, expired or already used")
        if grant["client_id"] != client.client_id:
            raise OAuthError("invalid_grant", "the authorization code was issued to another client")
        if grant["expires_at"] < self._clock():
            raise OAuthError("invalid_grant", "the authorization code has expired")
        if (grant["redirect_given"] or "redirect_uri" in form) and form.one("redirect_uri") != grant["redirect_uri"]:
            raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
        verifier = form.one("code_verifier")
        if not verifier:
            raise OAuthError("invalid_request", "code_verifier is required (PKCE)")
        if not verifier_matches(verifier, grant["code_challenge"]):
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")
        resources = form.many("resource")
        if len(resources) > 1:
            raise OAuthError("invalid_target", "only one resource may be requested")
        if resources and resources[0] != grant["resource"]:
            raise OAuthError("invalid_target", "resource differs from the one authorized")
        family = random_id(18)
        redeemed = {"family": family, "client_id": client.client_id, "subject": grant["subject"]}
        if not await self._store.add("code-used", lookup, redeemed, self.cfg.lifespans.refresh):
            replayed = await self._store.get("code-used", lookup)
            if replayed is not None:
                await self._revoke_family(replayed, "authorization code replayed")
            raise OAuthError("invalid_grant", "the authorization code is invalid, expired or already used")
        await self._store.delete("code", lookup)
        return await self._issue(client, grant, family)

    async def _refresh(self, client: Client, form: Params) -> dict[str, Any]:
        lookup = self._hmac.check(REFRESH_PREFIX, form.one("refresh_token"))
        if lookup is None:
            raise OAuthError("invalid_grant", "the refresh token is invalid")
        grant = await self._store.get("refresh", lookup)
        if grant is None:
            raise OAuthError("invalid_grant", "the refresh token is invalid, expired or revoked")
        if grant["client_id"] != client.client_id:
            raise OAuthError("invalid_grant", "the refresh token was issued to another client")
        if await self._store.get("family-revoked", grant["family"]) is not None:
            raise OAuthError("invalid_grant", "the refresh token has been revoked")
        scope = grant["scope"]
        if form.one("scope"):
            narrowed = list(dict.fromkeys(form.one("scope").split()))
            if not set(narrowed) <= set(scope):
                raise OAuthError("invalid_scope", "a refresh cannot add scopes")
            scope = narrowed
        resources = form.many("resource")
        if len(resources) > 1:
            raise OAuthError("invalid_target", "only one resource may be requested")
        if resources and resources[0] != grant["resource"]:
            raise OAuthError("invalid_target", "resource differs from the one authorized")
        now = self._clock()
        if not await self._store.add("refresh-used", lookup, {"at": now}, self.cfg.lifespans.refresh):
            used = await self._store.get("refresh-used", lookup)
            if used is None or now - float(used["at"]) > REFRESH_GRACE:
                await self._revoke_family(grant, "refresh token reused")
                raise OAuthError("invalid_grant", "the refresh token was already used; the session is revoked")
        session = await self._store.get("session", grant["session_id"])
        if session is None:
            raise OAuthError("invalid_grant", "the session of this refresh token has ended")
        await self._store.put("session", grant["session_id"], session, self.cfg.lifespans.refresh)
        return await self._issue(client, {**grant, "scope": scope, "claims": session["claims"]}, grant["family"])

    async def _issue(self, client: Client, grant: Mapping[str, Any], family: str) -> dict[str, Any]:
        now = int(self._clock())
        lifespan = int(self.cfg.lifespans.access)
        scope = " ".join(grant["scope"])
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": grant["subject"],
            "aud": grant["resource"],
            "exp": now + lifespan,
            "iat": now,
            "nbf": now,
            "jti": random_id(16),
            "client_id": client.client_id,
            "tsid": grant["session_id"],
            FAMILY_CLAIM: family,
            "scope": scope,
            "scp": list(grant["scope"]),
            **grant["claims"],
        }
        response: dict[str, Any] = {
            "access_token": self.keys.sign(claims),
            "token_type": "Bearer",
            "expires_in": lifespan,
            "scope": scope,
        }
        if "refresh_token" in client.grant_types:
            refresh = self._hmac.mint(REFRESH_PREFIX)
            record = {
                "family": family,
                "client_id": client.client_id,
                "session_id": grant["session_id"],
                "subject": grant["subject"],
                "scope": list(grant["scope"]),
                "resource": grant["resource"],
                "claims": grant["claims"],
                "issued_at": now,
            }
            await self._store.put("refresh", refresh.lookup, record, self.cfg.lifespans.refresh)
            response["refresh_token"] = refresh.token
        return response

    async def _revoke_family(self, record: Mapping[str, Any], why: str) -> None:
        """Revoke the family of a `refresh` or `code-used` record (the latter named no client or subject before)."""
        client_id, subject = record.get("client_id"), record.get("subject")
        await self._revocations.revoke(record["family"], why, client_id=_text(client_id), subject=_text(subject))

    async def token_revoked(self, claims: Mapping[str, Any]) -> bool:
        """Whether an access token this server issued (its verified `claims`) has been revoked since."""
        return await self._revocations.claims_revoked(claims)

    # -- /oauth/revoke (RFC 7009) ----------------------------------------------------------------------------------

    async def revoke(self, form: Params, basic: tuple[str, str] | None) -> None:
        """Revoke a refresh or access token: its whole family (every token issued from the same login), except an
        exchanged access token, which is revoked alone. Only the client a token was issued to may revoke it; unknown
        tokens and tokens of other clients are ignored (the answer is the same), as RFC 7009 asks."""
        client = await self._authenticate_client(form, basic)
        token = form.one("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        lookup = self._hmac.check(REFRESH_PREFIX, token)
        if lookup is not None:
            await self._revoke_refresh(client, lookup)
            return
        claims = await self._exchange.own_claims(token)
        if claims is not None and claims.get("client_id") == client.client_id:
            await self._revoke_access(claims)

    async def _revoke_refresh(self, client: Client, lookup: str) -> None:
        grant = await self._store.get("refresh", lookup)
        if grant is None or grant["client_id"] != client.client_id:
            return
        await self._revoke_family(grant, "refresh token revoked by the client")
        await self._store.delete("refresh", lookup)

    async def _revoke_access(self, claims: Mapping[str, Any]) -> None:
        """Revoke an access token of this server, issued to the requesting client (`claims` verified).

        An exchanged token (`act`, RFC 8693) names the family of its subject's login, which belongs to the client
        that login was for, not to the exchanging client that holds it: revoking it revokes that token alone (its
        `jti`), never the login it was exchanged from (the subject's client revokes that with its own tokens)."""
        client_id, subject = _text(claims.get("client_id")), _text(claims.get("sub"))
        if "act" in claims:
            jti = claims.get("jti")
            if isinstance(jti, str) and jti:
                why = "exchanged access token revoked by the client"
                await self._revocations.revoke_token(jti, why, client_id=client_id, subject=subject)
            return
        family = claims.get(FAMILY_CLAIM)
        if isinstance(family, str):
            why = "access token revoked by the client"
            await self._revocations.revoke(family, why, client_id=client_id, subject=subject)

    # -- upstream tokens for backends ------------------------------------------------------------------------------

    async def upstream_tokens(self, session_id: str, provider: str) -> UpstreamTokens | None:
        """The session's tokens from `provider`, refreshed first when expired; None when there are none, or when
        they cannot be refreshed (no refresh token, or the upstream refused it, e.g. `invalid_grant`): the user must
        log in again. When the upstream cannot be reached (a network failure, a timeout, an HTTP 5xx,
        `temporarily_unavailable`: see `UPSTREAM_TRANSIENT`) the `UpstreamError` is raised instead: the login is
        still good, only this attempt failed."""
        session = await self._store.get("session", session_id)
        if session is None:
            return None
        record = session["upstream_tokens"].get(provider)
        if record is None:
            return None
        tokens = UpstreamTokens.from_record(record)
        if tokens.expires_at is None or tokens.expires_at - 30 > self._clock():
            return tokens
        upstream = self._upstream_by_name.get(provider)
        if upstream is None or not tokens.refresh_token:
            return None
        try:
            fresh = await upstream.refresh(tokens.refresh_token)
        except UpstreamError as exc:
            if exc.error in UPSTREAM_TRANSIENT:
                logger.warning("upstream %r refresh failed, upstream unavailable: %s", provider, exc)
                raise
            logger.info("upstream %r refresh refused: %s", provider, exc.error)
            return None
        session["upstream_tokens"][provider] = fresh.to_record()
        await self._store.put("session", session_id, session, self.cfg.lifespans.refresh)
        return fresh

    async def ready(self) -> None:
        """Raise `StorageError` when the store cannot be used."""
        await self._store.ping()


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _not_same_person(first: Mapping[str, Any], identity: UpstreamIdentity, first_name: str) -> str | None:
    """Why a chained leg cannot be linked to the first leg's user (None: same verified email, case-insensitively).
    A leg that cannot be compared is refused: no email, or one its upstream marks `email_verified: false`."""
    a = _trusted_email(first.get("email"), first.get("claims") or {})
    b = _trusted_email(identity.email, identity.claims)
    if b is None:
        return f"gave no verified email to check this is the user signed in at {first_name}"
    if a is None:
        return f"cannot be checked: {first_name} gave no verified email"
    return None if a == b else "signed in as a different user"


def _trusted_email(email: object, claims: Mapping[str, Any]) -> str | None:
    verified = claims.get("email_verified")
    if verified is False or (isinstance(verified, str) and verified.strip().lower() == "false"):
        return None  # some providers send the string "false"
    if not isinstance(email, str) or not email.strip():
        return None
    return email.strip().casefold()


def _token_claims(identity: Mapping[str, Any]) -> dict[str, Any]:
    """What the access token carries about the user: name, email and group/role claims (from the ID token or
    userinfo, whichever had them: ToolHive drops groups found only in the ID token, its bug #6049)."""
    claims: dict[str, Any] = {}
    if identity.get("name"):
        claims["name"] = identity["name"]
    if identity.get("email"):
        claims["email"] = identity["email"]
    upstream = identity.get("claims") or {}
    for name in GROUP_CLAIMS:
        value = upstream.get(name)
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            claims[name] = value
    return claims
