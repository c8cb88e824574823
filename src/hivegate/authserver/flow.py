"""The browser-facing part of the authorization server: `LoginFlow` answers `/oauth/authorize`, the consent form
(`/oauth/consent`) and the upstreams' callbacks (`/oauth/callback`), sends the browser to each upstream in turn, and
finishes the login with an authorization code for the client (store namespaces `login`, `session` and `code`).

A login (`/oauth/authorize`) is checked in the order that decides where errors may go: the client and its redirect
URI first (failures are shown as a page, never redirected: they would be open redirects), then everything else
(failures are redirected to the client with `error`, `state` and `iss`). The login is bound to the browser that
started it by a cookie, checked at the consent form and at every upstream callback, so a login link cannot be
completed in someone else's browser. Several upstreams are visited in order; every leg after the first must be the
same person: the same email (case-insensitively) from both providers, neither marked `email_verified: false`. A leg
that cannot be compared is refused, unless its upstream says `identityCheck: none`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

from hivegate.authserver.clients import Client, ClientStore
from hivegate.authserver.context import CODE_PREFIX, ServerContext
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.identity import not_same_person, token_claims
from hivegate.authserver.messages import MAX_PARAM, Consent, ErrorPage, Params, Redirect
from hivegate.authserver.pkce import challenge_of, new_verifier, random_id, valid_challenge
from hivegate.authserver.upstream.base import UpstreamError, UpstreamProvider
from hivegate.storage.base import Record

__all__ = ["LOGIN_TTL", "LoginFlow"]

logger = logging.getLogger("hivegate.authserver")

LOGIN_TTL = 600.0  # a login must finish within ten minutes
_EXPIRED = "This sign-in has expired (it must be finished within ten minutes) or was already used."


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class LoginFlow:
    def __init__(
        self,
        ctx: ServerContext,
        *,
        clients: ClientStore,
        upstreams: Sequence[UpstreamProvider],
        audiences: tuple[str, ...],
        server_name: str = "",
    ) -> None:
        """`server_name` names this MCP server on the consent page (the resource's host when empty)."""
        self._ctx = ctx
        self._server_name = server_name
        self._clients = clients
        self._upstreams = list(upstreams)
        self._audiences = audiences
        self._csrf_key = ctx.hmac.derive(b"hivegate consent csrf")

    # -- /oauth/authorize ------------------------------------------------------------------------------------------

    async def authorize(self, params: Params, browser: str) -> Redirect | ErrorPage | Consent:
        """Start a login for the browser identified by `browser` (the caller sets that cookie)."""
        try:
            client_id, redirect_uri = params.one("client_id"), params.one("redirect_uri")
        except OAuthError as exc:
            return ErrorPage(400, "Invalid request", exc.description, "report-app")
        if not client_id:
            return ErrorPage(400, "Invalid request", "The request has no client_id.", "report-app")
        client = await self._clients.get(client_id)
        if client is None:
            message = "This application is not registered with this server (or its registration has expired)."
            return ErrorPage(400, "Unknown application", message, "unknown-app", client_id)
        redirect_given = bool(redirect_uri)
        if not redirect_uri and len(client.redirect_uris) == 1:
            redirect_uri = client.redirect_uris[0]
        if redirect_uri not in client.redirect_uris:
            message = "The redirect URI does not exactly match one registered for this client."
            return ErrorPage(400, "Invalid redirect URI", message, "report-app", client_id)
        states = params.many("state")
        state = states[0] if len(states) == 1 and len(states[0]) <= MAX_PARAM else ""

        def fail(error: str, description: str) -> Redirect:
            return self._client_redirect(redirect_uri, {"error": error, "error_description": description}, state)

        try:
            if params.one("response_type") != "code":
                raise OAuthError("unsupported_response_type", "only response_type=code is supported")
            params.one("state")  # optional (OAuth 2.1: PKCE protects the code), but not repeated nor oversized
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
        await self._ctx.store.put("login", login_id, record, LOGIN_TTL)
        if self._ctx.cfg.require_consent and client.source != "static":
            name = self._server_name or urlsplit(resource).hostname or resource
            csrf = self._csrf(login_id, browser)
            return Consent(login_id, csrf, client, redirect_uri, self._upstreams[0].name, name, resource, tuple(scope))
        return await self._to_upstream(login_id, record)

    async def consent(self, form: Params, browser: str | None) -> Redirect | ErrorPage:
        """The consent form's answer; only the browser that was shown the page can give it."""
        try:
            login_id, csrf, decision = form.one("login"), form.one("csrf"), form.one("decision")
        except OAuthError as exc:
            return ErrorPage(400, "Invalid request", exc.description)
        record = await self._ctx.store.get("login", login_id) if login_id else None
        if record is None:
            return ErrorPage(400, "Sign-in expired", _EXPIRED)
        if (
            browser is None
            or not hmac.compare_digest(record["browser"], _hash(browser))
            or not hmac.compare_digest(csrf, self._csrf(login_id, browser))
        ):
            message = "This consent form was not shown in this browser."
            return ErrorPage(403, "Request refused", message, "same-browser", record["client_id"])
        if decision != "allow":
            await self._ctx.store.delete("login", login_id)
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
        record = await self._ctx.store.take("login", login_id) if login_id else None  # one callback per leg
        if record is None:
            return ErrorPage(400, "Sign-in expired", _EXPIRED)
        if browser is None or not hmac.compare_digest(record["browser"], _hash(browser)):
            await self._ctx.store.put("login", login_id, record, LOGIN_TTL)  # still the rightful browser's to finish
            message = "This sign-in was started in another browser."
            return ErrorPage(403, "Request refused", message, "same-browser", record["client_id"])
        leg = record["leg"]
        if leg_text != str(leg):
            message = "This sign-in step was already completed."
            return ErrorPage(400, "Sign-in expired", message, "restart", record["client_id"])
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
                redirect_uri=self._ctx.cfg.redirect_uri(self._ctx.cfg.upstreams[leg]),
            )
        except UpstreamError as exc:
            logger.warning("upstream %r login failed: %s", upstream.name, exc.error)
            error = "temporarily_unavailable" if exc.error == "temporarily_unavailable" else "server_error"
            return self._client_redirect(
                redirect_uri, {"error": error, "error_description": f"{upstream.name}: {exc.description}"}, state
            )
        identities: list[dict[str, Any]] = record["identities"]
        if identities and self._ctx.cfg.upstreams[leg].identity_check == "email":
            problem = not_same_person(identities[0], identity, self._upstreams[0].name)
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
                redirect_uri=self._ctx.cfg.redirect_uri(self._ctx.cfg.upstreams[leg]),
            )
        except UpstreamError as exc:  # e.g. its discovery document cannot be had
            logger.warning("upstream %r unavailable: %s", upstream.name, exc.error)
            await self._ctx.store.delete("login", login_id)
            error = "temporarily_unavailable" if exc.error == "temporarily_unavailable" else "server_error"
            outcome = {"error": error, "error_description": f"{upstream.name}: {exc.description}"}
            return self._client_redirect(record["redirect_uri"], outcome, record["state"])
        await self._ctx.store.put("login", login_id, record, LOGIN_TTL)
        return Redirect(url)

    async def _finish(self, record: Record) -> Redirect:
        first = record["identities"][0]
        now = self._ctx.clock()
        session_id = random_id(18)
        claims = token_claims(first)
        session = {
            "subject": first["subject"],
            "claims": claims,
            "client_id": record["client_id"],
            "identity_upstream": self._upstreams[0].name,  # whose refreshed ID tokens update `claims`
            "upstream_tokens": record["upstream_tokens"],
            "created_at": now,
        }
        await self._ctx.store.put("session", session_id, session, self._ctx.cfg.lifespans.refresh)
        code = self._ctx.hmac.mint(CODE_PREFIX)
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
            "expires_at": now + self._ctx.cfg.lifespans.auth_code,
        }
        await self._ctx.store.put("code", code.lookup, grant, self._ctx.cfg.lifespans.auth_code)
        return self._client_redirect(record["redirect_uri"], {"code": code.token}, record["state"])

    def _client_redirect(self, redirect_uri: str, values: dict[str, str], state: str) -> Redirect:
        query = dict(values)
        if state:
            query["state"] = state
        query["iss"] = self._ctx.issuer  # RFC 9207
        separator = "&" if urlsplit(redirect_uri).query else "?"
        return Redirect(f"{redirect_uri}{separator}{urlencode(query)}")

    def _csrf(self, login_id: str, browser: str) -> str:
        return hmac.new(self._csrf_key, f"{login_id}.{browser}".encode(), hashlib.sha256).hexdigest()

    def _scopes(self, requested: str | None, client: Client) -> list[str]:
        """The login's scopes: those requested, each one supported; without `scope`, the client's registered ones.
        A registered `scope` is the default, not a limit: clients register themselves with whatever scope they like,
        so a limit would protect nothing, and would stop a client asking for more later (MCP step-up, where the
        client keeps its registration and asks for the scopes of an `insufficient_scope` challenge)."""
        allowed = set(self._ctx.cfg.scopes_supported)
        if not requested:
            return sorted(set(client.scope.split()) & allowed) if client.scope else []
        scopes = list(dict.fromkeys(requested.split()))
        unknown = [s for s in scopes if s not in allowed]
        if unknown:
            raise OAuthError("invalid_scope", f"scope {unknown[0][:60]!r} is not supported")
        return scopes

    def _resource(self, resources: Sequence[str]) -> str:
        """The audience (RFC 8707): the one `resource` given, or the only allowed audience when none is."""
        if len(resources) > 1:
            raise OAuthError("invalid_target", "only one resource may be requested")
        resource = resources[0] if resources else ""
        if not resource:
            if len(self._audiences) == 1:
                return self._audiences[0]
            raise OAuthError("invalid_target", "resource is required: this server protects several resources")
        parts = urlsplit(resource)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
            raise OAuthError("invalid_target", "resource must be an absolute URI without a fragment")
        if resource not in self._audiences:
            raise OAuthError("invalid_target", "resource is not served by this authorization server")
        return resource
