"""RFC 6749 sections 5.1-5.2 (token responses and errors) and 6 (refresh), and OpenID Connect Core 5.3 (userinfo):
the HTTP calls every upstream kind makes, through the one guarded client, mapped to `UpstreamError`.

Errors: the upstream's `{error, error_description}` keeps its code (on any status: GitHub answers errors with HTTP
200); an answer that cannot be read, or an HTTP error without a code, is `server_error` naming the status; a network
failure or timeout is `temporarily_unavailable`. No message ever carries a token or a secret.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import orjson

from hivegate.authn.introspection import basic_auth
from hivegate.authserver.settings import FieldMapping, UpstreamConfig, UserInfoConfig
from hivegate.authserver.upstream.base import UpstreamError, UpstreamTokens
from hivegate.errors import FetchError, UnsafeURLError
from hivegate.httpclient.guard import DOCUMENT_MAX_BYTES, FetchResponse, GuardedHTTPClient
from hivegate.httpclient.loopback import is_secure_transport, uses_http

__all__ = [
    "AuthMethod",
    "ClientAuth",
    "check_target",
    "fetch_userinfo",
    "first_value",
    "identity_fields",
    "request_tokens",
    "upstream_http_client",
    "with_query",
]

logger = logging.getLogger(__name__)

AuthMethod = Literal["client_secret_basic", "client_secret_post", "none"]

_ERROR_CODE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def upstream_http_client(upstreams: Iterable[UpstreamConfig], *, timeout: float = 10.0) -> GuardedHTTPClient:
    """The guarded client for upstream calls: private addresses allowed (the URLs are the administrator's), http only
    when some configured URL uses it (the config accepts http on loopback hosts only)."""
    urls: list[str | None] = []
    for u in upstreams:
        urls += [u.issuer_url, u.authorization_endpoint, u.token_endpoint]
        urls.append(u.user_info.endpoint_url if u.user_info else None)
    return GuardedHTTPClient(allow_http=uses_http(urls), allow_private=True, timeout=timeout)


def check_target(url: str, what: str) -> str:
    """`url` if it is https, or http on a loopback host; `server_error` otherwise (a discovered endpoint may not
    lower the transport the configuration allows)."""
    if is_secure_transport(url):
        return url
    raise UpstreamError("server_error", f"the upstream's {what} is not an https URL")


def with_query(url: str, params: Mapping[str, str]) -> str:
    """`url` with `params` added to any query it already has (some IdPs put a policy or tenant there)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@dataclass(frozen=True, slots=True)
class ClientAuth:
    """How we authenticate to the token endpoint (RFC 6749 section 2.3.1; `none`: a public client, RFC 8252)."""

    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    method: AuthMethod = "client_secret_basic"

    def apply(self, form: dict[str, str], headers: dict[str, str]) -> None:
        if self.method == "client_secret_basic" and self.client_secret is not None:
            headers["Authorization"] = basic_auth(self.client_id, self.client_secret)
        elif self.method == "client_secret_post" and self.client_secret is not None:
            form["client_id"] = self.client_id
            form["client_secret"] = self.client_secret
        else:
            form["client_id"] = self.client_id


async def request_tokens(
    http: GuardedHTTPClient,
    url: str,
    form: dict[str, str],
    auth: ClientAuth,
    *,
    clock: Callable[[], float],
) -> UpstreamTokens:
    """POST a grant to the token endpoint (RFC 6749 section 4.1.3 or 6) and read the answer (JSON or, as GitHub
    sends without `Accept: application/json`, form-encoded)."""
    headers = {"Accept": "application/json"}
    auth.apply(form, headers)
    resp = await _fetch(http, "POST", check_target(url, "token endpoint"), "token endpoint", headers=headers, data=form)
    doc = _token_document(resp.body)
    if doc is not None and isinstance(doc.get("error"), str):
        code, description = _error_of(doc)
        if resp.status >= 500 and code != "temporarily_unavailable":
            raise UpstreamError(
                "server_error", f"the token endpoint answered HTTP {resp.status}: {description or code}"
            )
        raise UpstreamError(code, description or f"the token endpoint answered {code} (HTTP {resp.status})")
    if resp.status != 200 or doc is None:
        raise UpstreamError("server_error", f"the token endpoint answered HTTP {resp.status} without a token response")
    access_token = doc.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise UpstreamError("server_error", "the token endpoint answered without an access_token")
    token_type = doc.get("token_type")
    return UpstreamTokens(
        access_token=access_token,
        token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
        refresh_token=_text(doc.get("refresh_token")),
        id_token=_text(doc.get("id_token")),
        expires_at=_expires_at(doc.get("expires_in"), clock),
        scope=_text(doc.get("scope")),
    )


async def fetch_userinfo(http: GuardedHTTPClient, info: UserInfoConfig, access_token: str) -> dict[str, Any]:
    """The user's claims from the userinfo endpoint (OIDC Core 5.3.1: the access token as a Bearer header), with the
    configured method and extra headers (`Authorization` is always ours)."""
    headers = {"Accept": "application/json"}
    for name, value in info.additional_headers.items():
        if name.lower() == "authorization":
            continue
        if name.lower() == "accept":
            headers.pop("Accept", None)
        headers[name] = value
    headers["Authorization"] = f"Bearer {access_token}"
    url = check_target(info.endpoint_url, "userinfo endpoint")
    resp = await _fetch(http, info.http_method, url, "userinfo endpoint", headers=headers)
    if resp.status in (401, 403):
        raise UpstreamError("server_error", f"the userinfo endpoint refused the access token (HTTP {resp.status})")
    if resp.status != 200:
        raise UpstreamError("server_error", f"the userinfo endpoint answered HTTP {resp.status}")
    try:
        doc = orjson.loads(resp.body)
    except orjson.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict):
        raise UpstreamError("server_error", "the userinfo endpoint did not answer a JSON object")
    return doc


def first_value(claims: Mapping[str, Any], names: Iterable[str]) -> str | None:
    """The first non-empty value among `names` in `claims`, as text (a number such as GitHub's user id included)."""
    for name in names:
        value = claims.get(name)
        if isinstance(value, bool):
            continue
        if isinstance(value, str) and value.strip():
            return value
        if isinstance(value, int):
            return str(value)
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
    return None


def identity_fields(claims: Mapping[str, Any], mapping: FieldMapping) -> tuple[str | None, str | None, str | None]:
    """(subject, name, email) by the field mapping."""
    return (
        first_value(claims, mapping.subject_fields),
        first_value(claims, mapping.name_fields),
        first_value(claims, mapping.email_fields),
    )


async def _fetch(
    http: GuardedHTTPClient,
    method: str,
    url: str,
    what: str,
    *,
    headers: Mapping[str, str],
    data: Mapping[str, str] | None = None,
) -> FetchResponse:
    try:
        return await http.fetch(method, url, headers=headers, data=data, max_bytes=DOCUMENT_MAX_BYTES)
    except UnsafeURLError as exc:
        logger.warning("upstream %s refused by the URL guard: %s", what, exc)
        raise UpstreamError("server_error", f"the {what} URL is not allowed") from exc
    except FetchError as exc:  # messages name the URL without its query; they never hold a token
        logger.warning("upstream %s unreachable: %s", what, exc)
        raise UpstreamError("temporarily_unavailable", f"cannot reach the {what}") from exc


def _token_document(body: bytes) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        doc = None
    if isinstance(doc, dict):
        return doc
    try:
        pairs = parse_qsl(body.decode("utf-8").strip(), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return None
    form = dict(pairs)
    return form if "access_token" in form or "error" in form else None


def _error_of(doc: Mapping[str, Any]) -> tuple[str, str]:
    """The upstream's error code (`server_error` when it is not one) and its description made one short line."""
    code = str(doc["error"])
    if not _ERROR_CODE.fullmatch(code):
        code = "server_error"
    description = doc.get("error_description")
    return code, _CONTROL.sub(" ", description).strip()[:200] if isinstance(description, str) else ""


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _expires_at(value: Any, clock: Callable[[], float]) -> float | None:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return clock() + float(value)
