"""Configuration of the embedded authorization server, in the shape of ToolHive's `embeddedAuthServer` spec.

`load_auth_server_config(path)` reads YAML (or JSON) holding either the spec itself, or a whole
`MCPExternalAuthConfig` manifest (`spec.embeddedAuthServer`), optionally with `Secret` manifests in the same file
(separated by `---`). Every error names its field path. Secret references resolve as described in `secrets`.

hivegate's additions to ToolHive's fields: `allowedAudiences`, `scopesSupported`, `clients` (static clients),
`requireConsent` (default true), `storage.type: sqlite` (the default, with `storage.sqlite.path`),
`storage.redis.url` / `storage.redis.keyPrefix` for a plain Redis URL, `upstreamProviders[].identityCheck`
(`email`, the default, or `none`): how a chained upstream's user is checked against the first upstream's, and
`upstreamProviders[].oidcConfig.tokenExchange.acceptedAudiences`: the audiences (besides this server's own `clientId`
at that upstream) an upstream access token may name to be exchanged here (RFC 8693; see
`grants.subject_token`). ID tokens are never accepted by audience: only those issued to `clientId`;
`registration`: protected dynamic client registration (RFC 7591 section 3, "initial access token"). With
`registration.initialAccessTokenSecretRefs` (secret references, each at least 32 bytes; several while rotating) and/or
`registration.allowRegistrationScope: true` (an access token of this server carrying the scope `client:register`,
which must then be in `scopesSupported`), `POST /oauth/register` needs `Authorization: Bearer <one of them>`. Static
clients and client ID metadata documents need no registration and work as before.

Every HMAC key must have at least 32 bytes. Signing keys are imported when the server is built (`build`), so manifests
with placeholder keys still load; their errors name the config's `where` (file and path) all the same.

Over 400 lines on purpose: one parser per section of ToolHive's `embeddedAuthServer` spec, in the spec's order, so
one file format is read in one place.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml

from hivegate.authserver.secrets import SecretResolver, parse_secret_ref, secret_manifest_data
from hivegate.config.durations import parse_duration
from hivegate.config.reader import Reader
from hivegate.config.syntax import syntax_error
from hivegate.errors import ConfigError
from hivegate.httpclient.loopback import is_loopback_host

__all__ = [
    "AuthServerConfig",
    "FieldMapping",
    "Lifespans",
    "RegistrationConfig",
    "StaticClient",
    "StorageConfig",
    "UpstreamConfig",
    "UserInfoConfig",
    "load_auth_server_config",
    "parse_auth_server_config",
]

UpstreamType = Literal["oidc", "oauth2"]
IdentityCheck = Literal["email", "none"]
StorageType = Literal["sqlite", "memory", "redis"]

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_RESERVED_PARAMS = frozenset(
    {"response_type", "client_id", "redirect_uri", "scope", "state", "code_challenge", "code_challenge_method", "nonce"}
)
DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access")
REGISTRATION_SCOPE = "client:register"
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")  # RFC 6750 section 2.1: what a Bearer header can carry
# (default, minimum, maximum) seconds, as ToolHive bounds them
_LIFESPANS = {
    "accessTokenLifespan": (3600.0, 60.0, 86400.0),
    "refreshTokenLifespan": (604800.0, 3600.0, 2592000.0),
    "authCodeLifespan": (600.0, 30.0, 600.0),
}


@dataclass(frozen=True, slots=True)
class Lifespans:
    access: float = 3600.0
    refresh: float = 604800.0
    auth_code: float = 600.0


@dataclass(frozen=True, slots=True)
class FieldMapping:
    subject_fields: tuple[str, ...] = ("sub",)
    name_fields: tuple[str, ...] = ("name",)
    email_fields: tuple[str, ...] = ("email",)


@dataclass(frozen=True, slots=True)
class UserInfoConfig:
    endpoint_url: str
    http_method: Literal["GET", "POST"] = "GET"
    additional_headers: Mapping[str, str] = field(default_factory=dict)
    field_mapping: FieldMapping = field(default_factory=FieldMapping)


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """One upstream identity provider. `oidc` needs `issuer_url`; `oauth2` needs the endpoints and `user_info`."""

    name: str
    type: UpstreamType
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    redirect_uri: str | None = None  # default: `{issuer}/oauth/callback`
    scopes: tuple[str, ...] = ()
    additional_authorization_params: Mapping[str, str] = field(default_factory=dict)
    issuer_url: str | None = None
    authorization_endpoint: str | None = None
    token_endpoint: str | None = None
    user_info: UserInfoConfig | None = None
    # a chained upstream (not the first): `email` = its verified email must equal the first upstream's, and a leg
    # without one is refused; `none` = linked without a check (the operator vouches for it)
    identity_check: IdentityCheck = "email"
    # `oidcConfig.tokenExchange.acceptedAudiences`: an upstream access token naming one of these in `aud` may be
    # exchanged (besides those meant for `client_id`)
    accepted_audiences: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StaticClient:
    client_id: str
    redirect_uris: tuple[str, ...]
    client_secret: str | None = field(default=None, repr=False)
    client_name: str = ""
    grant_types: tuple[str, ...] = ("authorization_code", "refresh_token")


@dataclass(frozen=True, slots=True)
class StorageConfig:
    type: StorageType = "sqlite"
    path: str | None = None  # sqlite file; default: auth-server.db in the state directory
    redis_url: str | None = field(default=None, repr=False)
    key_prefix: str = "hivegate:authserver:"


@dataclass(frozen=True, slots=True)
class RegistrationConfig:
    """Who may register clients at `/oauth/register`: anyone (the default), or a caller presenting one of
    `initial_access_tokens` or, with `allow_registration_scope`, a token of this server carrying `client:register`."""

    initial_access_tokens: tuple[str, ...] = field(default=(), repr=False)
    allow_registration_scope: bool = False

    @property
    def protected(self) -> bool:
        return bool(self.initial_access_tokens) or self.allow_registration_scope


@dataclass(frozen=True, slots=True)
class AuthServerConfig:
    issuer: str
    upstreams: tuple[UpstreamConfig, ...]
    authorization_endpoint_base_url: str | None = None
    signing_keys: tuple[bytes, ...] = field(default=(), repr=False)  # PEM; the first signs
    hmac_keys: tuple[bytes, ...] = field(default=(), repr=False)  # the first is current
    lifespans: Lifespans = field(default_factory=Lifespans)
    allowed_audiences: tuple[str, ...] = ()  # empty: the protected resource's URL
    scopes_supported: tuple[str, ...] = DEFAULT_SCOPES
    clients: tuple[StaticClient, ...] = ()
    require_consent: bool = True
    storage: StorageConfig = field(default_factory=StorageConfig)
    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    where: str = field(default="embeddedAuthServer", compare=False)  # file and path, for errors found later (keys)

    @property
    def authorization_base(self) -> str:
        return self.authorization_endpoint_base_url or self.issuer

    def redirect_uri(self, upstream: UpstreamConfig) -> str:
        return upstream.redirect_uri or f"{self.issuer}/oauth/callback"


def load_auth_server_config(path: str | Path, *, resolver: SecretResolver | None = None) -> AuthServerConfig:
    """Read a config file: the spec, or an `MCPExternalAuthConfig` (plus any `Secret`s) as YAML documents."""
    p = Path(path)
    try:
        docs = [d for d in yaml.safe_load_all(p.read_text(encoding="utf-8")) if d is not None]
    except OSError as exc:
        raise ConfigError(f"auth server config {p}: cannot read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise syntax_error(f"auth server config {p}", exc) from None
    secrets: dict[str, dict[str, bytes]] = {}
    specs: list[tuple[str, Any]] = []
    for i, doc in enumerate(docs):
        where = f"{p.name}[{i}]" if len(docs) > 1 else p.name
        if not isinstance(doc, Mapping):
            raise ConfigError(f"{where}: must be a mapping")
        kind = doc.get("kind")
        if kind == "Secret":
            name = (doc.get("metadata") or {}).get("name")
            if not isinstance(name, str) or not name:
                raise ConfigError(f"{where}.metadata.name: required for a Secret")
            secrets[name] = secret_manifest_data(doc, where)
        elif kind == "MCPExternalAuthConfig":
            spec = doc.get("spec")
            if not isinstance(spec, Mapping) or spec.get("type") != "embeddedAuthServer":
                raise ConfigError(f"{where}.spec.type: must be embeddedAuthServer")
            specs.append((f"{where}.spec.embeddedAuthServer", spec.get("embeddedAuthServer")))
        elif kind is None:
            inner = doc.get("embeddedAuthServer", doc)
            specs.append((f"{where}.embeddedAuthServer" if "embeddedAuthServer" in doc else where, inner))
        else:
            raise ConfigError(f"{where}.kind: {kind!r} is not an MCPExternalAuthConfig or a Secret")
    if len(specs) != 1:
        raise ConfigError(f"auth server config {p}: expected one embeddedAuthServer spec, found {len(specs)}")
    if resolver is None:
        resolver = SecretResolver(base_dir=p.parent, manifests=secrets)
    where, spec = specs[0]
    return parse_auth_server_config(spec, resolver=resolver, where=where)


def parse_auth_server_config(
    data: Any, *, resolver: SecretResolver, where: str = "embeddedAuthServer"
) -> AuthServerConfig:
    r = Reader(data, where, sort_unknown=True)
    issuer = _issuer_url(r.text("issuer", required=True), f"{where}.issuer")
    base = r.text("authorizationEndpointBaseUrl")
    if base:
        base = _issuer_url(base, f"{where}.authorizationEndpointBaseUrl")
    signing = tuple(
        resolver.resolve(
            parse_secret_ref(ref, f"{where}.signingKeySecretRefs[{i}]"), f"{where}.signingKeySecretRefs[{i}]"
        )
        for i, ref in enumerate(r.items("signingKeySecretRefs", max_items=5))
    )
    hmac_keys = []
    for i, ref in enumerate(r.items("hmacSecretRefs")):
        at = f"{where}.hmacSecretRefs[{i}]"
        key = _secret(resolver, ref, at).strip()
        if len(key) < 32:  # old keys too: they still verify codes and refresh tokens
            raise ConfigError(f"{at}: HMAC keys must be at least 32 bytes (got {len(key)})")
        hmac_keys.append(key)
    upstreams = tuple(
        _upstream(u, f"{where}.upstreamProviders[{i}]", resolver)
        for i, u in enumerate(r.items("upstreamProviders", required=True))
    )
    names = [u.name for u in upstreams]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.upstreamProviders: names must be unique")
    if upstreams[0].identity_check != "email":
        raise ConfigError(
            f"{where}.upstreamProviders[0].identityCheck: the first upstream is what the later ones are checked "
            "against; set identityCheck: none on a later one"
        )
    audiences = tuple(
        _audience(a, f"{where}.allowedAudiences[{i}]") for i, a in enumerate(r.strings("allowedAudiences"))
    )
    scopes = tuple(r.strings("scopesSupported")) or DEFAULT_SCOPES
    clients = tuple(_client(c, f"{where}.clients[{i}]", resolver) for i, c in enumerate(r.items("clients")))
    consent = r.flag("requireConsent", default=True)
    cfg = AuthServerConfig(
        issuer=issuer,
        upstreams=upstreams,
        authorization_endpoint_base_url=base or None,
        signing_keys=signing,
        hmac_keys=tuple(hmac_keys),
        lifespans=_lifespans(r.section("tokenLifespans"), f"{where}.tokenLifespans"),
        allowed_audiences=audiences,
        scopes_supported=scopes,
        clients=clients,
        require_consent=consent,
        storage=_storage(r.section("storage"), f"{where}.storage", resolver),
        registration=_registration(r.section("registration"), f"{where}.registration", resolver, scopes)
        if r.has("registration")
        else RegistrationConfig(),
        where=where,
    )
    r.done()
    return cfg


# -- sections ----------------------------------------------------------------------------------------------------------


def _upstream(data: Any, where: str, resolver: SecretResolver) -> UpstreamConfig:
    r = Reader(data, where, sort_unknown=True)
    name = r.text("name", required=True)
    if len(name) > 63 or not _NAME.fullmatch(name):
        raise ConfigError(f"{where}.name: must be lowercase letters, digits and hyphens (at most 63), got {name!r}")
    kind = r.text("type", required=True)
    if kind not in ("oidc", "oauth2"):
        raise ConfigError(f"{where}.type: must be oidc or oauth2, got {kind!r}")
    check = r.choice("identityCheck", ("email", "none")) or "email"
    other = "oauth2Config" if kind == "oidc" else "oidcConfig"
    if r.has(other):
        raise ConfigError(f"{where}.{other}: not allowed for type {kind}")
    key = "oidcConfig" if kind == "oidc" else "oauth2Config"
    section = r.section(key, required=True)
    at = f"{where}.{key}"
    s = Reader(section, at, sort_unknown=True)
    secret_ref = s.get("clientSecretRef")
    secret = (
        resolver.resolve_text(parse_secret_ref(secret_ref, f"{at}.clientSecretRef"), f"{at}.clientSecretRef")
        if secret_ref is not None
        else None
    )
    params = {str(k): str(v) for k, v in s.section("additionalAuthorizationParams").items()}
    reserved = sorted(set(params) & _RESERVED_PARAMS)
    if reserved:
        raise ConfigError(f"{at}.additionalAuthorizationParams.{reserved[0]}: set by hivegate, cannot be overridden")
    common: dict[str, Any] = {
        "name": name,
        "type": kind,
        "client_id": s.text("clientId", required=True),
        "client_secret": secret,
        "redirect_uri": _url(s.text("redirectUri"), f"{at}.redirectUri") if s.has("redirectUri") else None,
        "additional_authorization_params": params,
        "identity_check": check,
    }
    if kind == "oidc":
        upstream = UpstreamConfig(
            **common,
            accepted_audiences=_token_exchange(s.section("tokenExchange"), f"{at}.tokenExchange"),
            issuer_url=_url(s.text("issuerUrl", required=True), f"{at}.issuerUrl"),
            scopes=tuple(s.strings("scopes")) or ("openid", "offline_access"),
            user_info=_user_info(s.section("userInfoOverride"), f"{at}.userInfoOverride")
            if s.has("userInfoOverride")
            else None,
        )
    else:
        upstream = UpstreamConfig(
            **common,
            authorization_endpoint=_url(s.text("authorizationEndpoint", required=True), f"{at}.authorizationEndpoint"),
            token_endpoint=_url(s.text("tokenEndpoint", required=True), f"{at}.tokenEndpoint"),
            user_info=_user_info(s.section("userInfo", required=True), f"{at}.userInfo"),
            scopes=tuple(s.strings("scopes")),
        )
    s.done()
    r.done()
    return upstream


def _token_exchange(data: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """`acceptedAudiences`: any strings (an API's URL, or a client id as Entra ID and Keycloak write `aud`)."""
    r = Reader(data, where, sort_unknown=True)
    audiences = tuple(dict.fromkeys(r.strings("acceptedAudiences")))
    r.done()
    return audiences


def _user_info(data: Mapping[str, Any], where: str) -> UserInfoConfig:
    r = Reader(data, where, sort_unknown=True)
    method = r.text("httpMethod") or "GET"
    if method not in ("GET", "POST"):
        raise ConfigError(f"{where}.httpMethod: must be GET or POST")
    fm = Reader(r.section("fieldMapping"), f"{where}.fieldMapping", sort_unknown=True)
    mapping = FieldMapping(
        subject_fields=tuple(fm.strings("subjectFields")) or ("sub",),
        name_fields=tuple(fm.strings("nameFields")) or ("name",),
        email_fields=tuple(fm.strings("emailFields")) or ("email",),
    )
    fm.done()
    headers = {str(k): str(v) for k, v in r.section("additionalHeaders").items()}
    info = UserInfoConfig(
        endpoint_url=_url(r.text("endpointUrl", required=True), f"{where}.endpointUrl"),
        http_method="POST" if method == "POST" else "GET",
        additional_headers=headers,
        field_mapping=mapping,
    )
    r.done()
    return info


TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
_GRANT_ALIASES = {
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
    "token_exchange": TOKEN_EXCHANGE_GRANT,
    TOKEN_EXCHANGE_GRANT: TOKEN_EXCHANGE_GRANT,
}


def _client(data: Any, where: str, resolver: SecretResolver) -> StaticClient:
    r = Reader(data, where, sort_unknown=True)
    ref = r.get("clientSecretRef")
    grants = tuple(_GRANT_ALIASES.get(g, g) for g in r.strings("grantTypes")) or ("authorization_code", "refresh_token")
    for i, grant in enumerate(grants):
        if grant not in _GRANT_ALIASES.values():
            raise ConfigError(f"{where}.grantTypes[{i}]: {grant!r} is not one of {', '.join(_GRANT_ALIASES)}")
    redirect_needed = "authorization_code" in grants
    client = StaticClient(
        client_id=r.text("clientId", required=True),
        redirect_uris=tuple(r.strings("redirectUris", required=redirect_needed)),
        grant_types=grants,
        client_secret=resolver.resolve_text(
            parse_secret_ref(ref, f"{where}.clientSecretRef"), f"{where}.clientSecretRef"
        )
        if ref is not None
        else None,
        client_name=r.text("clientName"),
    )
    r.done()
    if TOKEN_EXCHANGE_GRANT in grants and client.client_secret is None:
        raise ConfigError(f"{where}.grantTypes: token_exchange needs a confidential client (clientSecretRef)")
    return client


def _lifespans(data: Mapping[str, Any], where: str) -> Lifespans:
    r = Reader(data, where, sort_unknown=True)
    values = {}
    for key, (default, low, high) in _LIFESPANS.items():
        text = r.text(key)
        if not text:
            values[key] = default
            continue
        try:
            seconds = parse_duration(text)
        except ValueError as exc:
            raise ConfigError(f"{where}.{key}: {exc}") from None
        if not low <= seconds <= high:
            raise ConfigError(f"{where}.{key}: must be between {_human(low)} and {_human(high)}, got {text}")
        values[key] = seconds
    r.done()
    return Lifespans(values["accessTokenLifespan"], values["refreshTokenLifespan"], values["authCodeLifespan"])


def _storage(data: Mapping[str, Any], where: str, resolver: SecretResolver) -> StorageConfig:
    r = Reader(data, where, sort_unknown=True)
    kind = r.text("type") or "sqlite"
    if kind not in ("sqlite", "memory", "redis"):
        raise ConfigError(f"{where}.type: must be sqlite, memory or redis, got {kind!r}")
    sqlite = Reader(r.section("sqlite"), f"{where}.sqlite", sort_unknown=True)
    path = sqlite.text("path") or None
    sqlite.done()
    redis = Reader(r.section("redis"), f"{where}.redis", sort_unknown=True)
    url = redis.text("url") or None
    url_ref = redis.get("urlSecretRef")
    if url_ref is not None:
        url = resolver.resolve_text(
            parse_secret_ref(url_ref, f"{where}.redis.urlSecretRef"), f"{where}.redis.urlSecretRef"
        )
    prefix = redis.text("keyPrefix") or "hivegate:authserver:"
    for unsupported in ("sentinelConfig", "aclUserConfig", "tls", "sentinelTls"):
        if redis.has(unsupported):
            raise ConfigError(
                f"{where}.redis.{unsupported}: not supported yet; give storage.redis.url (redis:// or rediss://)"
            )
    for ignored in ("dialTimeout", "readTimeout", "writeTimeout"):
        redis.get(ignored)
    redis.done()
    if kind == "redis" and not url:
        raise ConfigError(f"{where}.redis.url: required when storage.type is redis")
    r.done()
    return StorageConfig(type=kind, path=path, redis_url=url, key_prefix=prefix)  # type: ignore[arg-type]


def _registration(
    data: Mapping[str, Any], where: str, resolver: SecretResolver, scopes: tuple[str, ...]
) -> RegistrationConfig:
    r = Reader(data, where, sort_unknown=True)
    tokens = []
    for i, ref in enumerate(r.items("initialAccessTokenSecretRefs", max_items=5)):
        at = f"{where}.initialAccessTokenSecretRefs[{i}]"
        token = _secret_text(resolver, ref, at).strip()
        if len(token.encode()) < 32:
            raise ConfigError(f"{at}: an initial access token must be at least 32 bytes (got {len(token.encode())})")
        if not _B64TOKEN.fullmatch(token):
            raise ConfigError(f"{at}: must be sendable as a Bearer token (letters, digits and -._~+/ then = padding)")
        tokens.append(token)
    allow_scope = r.flag("allowRegistrationScope", default=False)
    r.done()
    if allow_scope and REGISTRATION_SCOPE not in scopes:
        raise ConfigError(f"{where}.allowRegistrationScope: add {REGISTRATION_SCOPE} to scopesSupported")
    if not tokens and not allow_scope:
        raise ConfigError(f"{where}: give initialAccessTokenSecretRefs or allowRegistrationScope: true")
    return RegistrationConfig(tuple(tokens), allow_scope)


def _secret(resolver: SecretResolver, ref: Any, where: str) -> bytes:
    return resolver.resolve(parse_secret_ref(ref, where), where)


def _secret_text(resolver: SecretResolver, ref: Any, where: str) -> str:
    return resolver.resolve_text(parse_secret_ref(ref, where), where)


# -- values ------------------------------------------------------------------------------------------------------------


def _issuer_url(value: str, where: str) -> str:
    parts = urlsplit(_url(value, where, shown="https"))
    if parts.query or parts.fragment or value.endswith("/"):
        raise ConfigError(f"{where}: must have no query, fragment or trailing slash, got {value!r}")
    return value


def _url(value: str, where: str, *, shown: str = "http(s)") -> str:
    """`value` if it is an absolute http(s) URL, and https unless its host is loopback (`shown` names what is
    asked for in the message)."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"{where}: must be an absolute {shown} URL, got {value!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(f"{where}: http is only allowed on loopback (use https), got {value!r}")
    return value


def _audience(value: str, where: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname or parts.fragment:
        raise ConfigError(f"{where}: must be an absolute http(s) URL without fragment, got {value!r}")
    return value


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
