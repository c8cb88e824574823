"""RFC 8693 section 2.1: what an upstream subject token is, and whether it is meant for this server.

**An ID token is recognised by what it is**, never by the `subject_token_type` the caller labels it with. The verified
token decides, and the first rule that applies wins:

1. the JOSE header `typ` is `at+jwt` (RFC 9068 section 2.1, explicit typing, as oidc-provider and Auth0's RFC 9068
   profile write it): an access token; `typ` `id_token+jwt`: an ID token;
2. a claim says what it is: Keycloak's `typ` (`ID`, `Bearer`) and Amazon Cognito's `token_use` (`id`, `access`);
3. a claim only an ID token carries, `nonce`, `at_hash`, `c_hash` or `s_hash` (OpenID Connect Core 1.0 sections 2,
   3.3.2.11; FAPI 1.0): an ID token (Keycloak before 24 put `nonce` in access tokens too; rule 2 catches those);
4. a claim only an access token carries, `scope` or `scp` (Okta, Entra ID), `client_id` (RFC 9068, oidc-provider,
   Cognito), `cid` (Okta) or `appid` (Entra ID v1): an access token;
5. none of these: an ID token when it has `azp`, or when its `aud` names only client ids (no URL: an ID token's
   audience is the client it was issued to, an API is usually named by URL); an access token otherwise.

`azp` alone decides nothing before rule 5: Keycloak, Auth0 and Entra ID v2 access tokens carry it (the client that
asked for the token), and rules 2 and 4 already recognise their access tokens. What rule 5 cannot tell apart, an ID
token without any marker issued to a client whose id is a URL, is still refused unless that URL is an accepted
audience (below).

**Meant for this server** (`AudienceRule`): an ID token only when issued to this server's client at the upstream
(`aud` names `clientId`, and `azp`, when present, is `clientId`; checked by `upstream.idtoken`), since an ID token
tells its client who logged in and is no credential for anything else. An access token when its `aud` names
`clientId` or one of `tokenExchange.acceptedAudiences`, or when this server's client obtained it (`azp`, `client_id`,
`cid` or `appid` is `clientId`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["AudienceRule", "is_id_token"]

_ACCESS_TYPES = frozenset({"at+jwt", "application/at+jwt"})
_ID_TYPES = frozenset({"id_token+jwt", "application/id_token+jwt"})
_KIND_CLAIMS = {"typ": {"id": True, "bearer": False}, "token_use": {"id": True, "access": False}}
_ID_ONLY = ("nonce", "at_hash", "c_hash", "s_hash")
_ACCESS_ONLY = ("scope", "scp", "client_id", "cid", "appid")
_CLIENT_CLAIMS = ("azp", "client_id", "cid", "appid")


def is_id_token(header: Mapping[str, Any], claims: Mapping[str, Any]) -> bool:
    """Whether a verified JWT (its JOSE `header` and `claims`) is an ID token, by the rules of this module."""
    typ = header.get("typ")
    if isinstance(typ, str) and typ.lower() in _ACCESS_TYPES:
        return False
    if isinstance(typ, str) and typ.lower() in _ID_TYPES:
        return True
    for name, kinds in _KIND_CLAIMS.items():
        value = claims.get(name)
        if isinstance(value, str) and value.lower() in kinds:
            return kinds[value.lower()]
    if any(name in claims for name in _ID_ONLY):
        return True
    if any(name in claims for name in _ACCESS_ONLY):
        return False
    if "azp" in claims:
        return True
    audiences = _audiences(claims)
    return bool(audiences) and not any(_is_url(a) for a in audiences)


@dataclass(frozen=True, slots=True)
class AudienceRule:
    """Whom an upstream's access tokens must be meant for: this server's `client_id` there, or `accepted`."""

    client_id: str
    accepted: Sequence[str] = ()

    def refusal(self, claims: Mapping[str, Any]) -> str | None:
        """None when an access token's verified `claims` are meant for this server, else why not (one line)."""
        wanted = {self.client_id, *self.accepted}
        audiences = _audiences(claims)
        if any(a in wanted for a in audiences):
            return None
        if any(claims.get(name) == self.client_id for name in _CLIENT_CLAIMS):
            return None
        shown = ", ".join(repr(a[:60]) for a in audiences[:3]) or "none"
        more = ", …" if len(audiences) > 3 else ""
        return (
            f"the subject token is not meant for this server (aud {shown}{more}; expected our client "
            f"{self.client_id!r} at the upstream or one of its tokenExchange.acceptedAudiences)"
        )


def _audiences(claims: Mapping[str, Any]) -> list[str]:
    aud = claims.get("aud")
    items = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return [a for a in items if isinstance(a, str) and a]


def _is_url(value: str) -> bool:
    """An absolute URI with an authority (`https://api.example`, `api://default`) or a URN, not a bare client id."""
    parts = urlsplit(value)
    return bool(parts.scheme) and (bool(parts.netloc) or parts.scheme.lower() == "urn")
