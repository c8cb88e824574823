"""Incoming-authentication settings, shaped like ToolHive's `thv run` OIDC flags.

Sources and precedence: the CLI (or a manifest) builds an `OIDCConfig`; the client secret may instead come from the
environment variable `HIVEGATE_OIDC_CLIENT_SECRET`, read only by `OIDCConfig.with_env_secret()` (called once by
`hivegate.authn.authenticators.build_authenticator`). An explicit `--oidc-client-secret` wins over the environment.
`validate()` raises `ConfigError` with a one-line message naming the flag at fault.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal, get_args
from urllib.parse import urlsplit

from hivegate.errors import ConfigError

__all__ = [
    "CLIENT_SECRET_ENV",
    "GITHUB_INTROSPECTION_PREFIX",
    "GOOGLE_TOKENINFO_URL",
    "AuthMode",
    "IntrospectionKind",
    "OIDCConfig",
    "introspection_kind",
    "parse_service_account",
]

AuthMode = Literal["oidc", "local", "anonymous"]
IntrospectionKind = Literal["rfc7662", "google", "github"]

CLIENT_SECRET_ENV = "HIVEGATE_OIDC_CLIENT_SECRET"  # noqa: S105 - the variable's name, not a secret
GOOGLE_TOKENINFO_URL = "https://oauth2.googleapis.com/tokeninfo"
GITHUB_INTROSPECTION_PREFIX = "https://api.github.com/applications"

# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def introspection_kind(url: str) -> IntrospectionKind:
    """Which token-validation dialect an introspection URL speaks: Google tokeninfo, GitHub, or RFC 7662."""
    if url.split("?", 1)[0].rstrip("/") == GOOGLE_TOKENINFO_URL:
        return "google"
    if url.startswith(GITHUB_INTROSPECTION_PREFIX):
        return "github"
    return "rfc7662"


@dataclass(frozen=True, slots=True)
class OIDCConfig:
    """How callers authenticate to hivegate. `mode="oidc"` verifies bearer tokens; local/anonymous need none."""

    issuer: str | None = None
    audience: str | None = None
    jwks_url: str | None = None
    introspection_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    scopes: tuple[str, ...] = ("openid",)
    resource_url: str | None = None
    insecure_allow_http: bool = False
    jwks_allow_private_ip: bool = False
    jwks_auth_token_file: str | None = None
    ca_bundle: str | None = None
    clock_skew: float = 60.0
    cache_size: int = 10_000
    mode: AuthMode = "oidc"
    service_account: str | None = None  # NS/NAME (or NS/*, */NAME): only that Kubernetes service account may call

    def with_env_secret(self, environ: Mapping[str, str] | None = None) -> OIDCConfig:
        """This config with `client_secret` taken from `HIVEGATE_OIDC_CLIENT_SECRET` when the flag left it unset."""
        env = os.environ if environ is None else environ
        secret = env.get(CLIENT_SECRET_ENV)
        if self.client_secret is None and secret:
            return replace(self, client_secret=secret)
        return self

    def validate(self) -> None:
        """Raise `ConfigError` (one line, naming the flag) when these settings cannot work or would be unsafe."""
        if self.mode not in get_args(AuthMode):
            raise ConfigError(f"authentication mode must be one of oidc, local, anonymous (got {self.mode!r})")
        if self.mode != "oidc":
            return
        if not self.issuer:
            raise ConfigError("--oidc-issuer is required for OIDC authentication")
        self._check_url(self.issuer, "--oidc-issuer")
        if urlsplit(self.issuer).query or "#" in self.issuer:
            raise ConfigError("--oidc-issuer must not have a query or fragment")
        if self.jwks_url:
            self._check_url(self.jwks_url, "--oidc-jwks-url")
        kind = introspection_kind(self.introspection_url) if self.introspection_url else None
        if self.introspection_url:
            self._check_url(self.introspection_url, "--oidc-introspection-url")
        if not self.audience and kind != "github":
            raise ConfigError("--oidc-audience is required: tokens must be checked to be issued for this server")
        if self.client_secret and not self.client_id:
            raise ConfigError("--oidc-client-secret needs --oidc-client-id")
        if kind == "github" and not (self.client_id and self.client_secret):
            raise ConfigError("--oidc-client-id and --oidc-client-secret are required for GitHub token validation")
        for scope in self.scopes:
            if _SCOPE_TOKEN.fullmatch(scope) is None:
                raise ConfigError(f"--oidc-scopes: {scope!r} is not a valid scope (RFC 6749 section 3.3)")
        if self.resource_url:
            parts = urlsplit(self.resource_url)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
                raise ConfigError("--resource-url must be an absolute http(s) URL without a fragment")
        for path, flag in ((self.jwks_auth_token_file, "--jwks-auth-token-file"), (self.ca_bundle, "--ca-bundle")):
            if path and not os.path.isfile(path):
                raise ConfigError(f"{flag}: no such file: {path}")
        self.check_clock_skew()
        if self.service_account is not None:
            parse_service_account(self.service_account, "--oidc-k8s-service-account")
        if self.cache_size < 0:
            raise ConfigError(f"cache_size must not be negative (got {self.cache_size})")

    def check_clock_skew(self) -> None:
        """`ConfigError` unless the skew is 0 to 600 seconds (checked with the embedded authorization server too,
        whose tokens it applies to)."""
        if not 0 <= self.clock_skew <= 600:
            raise ConfigError(f"--oidc-clock-skew must be between 0 and 600 seconds (got {self.clock_skew})")

    def _check_url(self, url: str, flag: str) -> None:
        parts = urlsplit(url)
        if parts.scheme == "http" and not self.insecure_allow_http:
            raise ConfigError(f"{flag} must be an https URL (use --oidc-insecure-allow-http for http)")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{flag} must be an absolute https URL (got {url!r})")


_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # RFC 1123 label: a namespace
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")  # RFC 1123 subdomain: a service account


def parse_service_account(spec: str, where: str) -> tuple[str, str]:
    """`NS/NAME`, `NS/*` or `*/NAME` as (namespace, name), `*` meaning any; `ConfigError` naming `where`."""
    namespace, slash, name = spec.partition("/")
    if not slash or (namespace, name) == ("*", "*"):
        raise ConfigError(f"{where}: expected NAMESPACE/NAME (or NAMESPACE/* or */NAME), got {spec!r}")
    if namespace != "*" and not _LABEL.fullmatch(namespace):
        raise ConfigError(f"{where}: {namespace!r} is not a Kubernetes namespace name")
    if name != "*" and not _SUBDOMAIN.fullmatch(name):
        raise ConfigError(f"{where}: {name!r} is not a Kubernetes service account name")
    return namespace, name
