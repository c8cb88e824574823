"""`hivegate run`: turn flags into a `RunConfig`, build the gateway, serve it until interrupted.

Over 400 lines on purpose: the translation of ToolHive-compatible flags into one `RunConfig`, flag by flag; the flag
table itself is `run_args`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from hivegate.authn.oidc_config import AuthMode, OIDCConfig
from hivegate.authz.tool_filter import parse_tools
from hivegate.backends.stdio_pool import parse_sharing
from hivegate.cli.run_container import container_run, refuse_container_flags
from hivegate.cli.run_target import check_command, expand_target, is_image
from hivegate.cli.run_thv import env_files, go_bool, refuse_thv_flags
from hivegate.cli.secret_flags import resolve_secret, secret_env
from hivegate.cli.workers import workers_of
from hivegate.config.durations import parse_duration, parse_size
from hivegate.config.run import RunConfig, Transport
from hivegate.errors import ConfigError, HivegateError
from hivegate.httpclient.loopback import is_loopback_host

if TYPE_CHECKING:
    from hivegate.asgi.prefork import Worker
    from hivegate.asgi.types import ASGIApp
    from hivegate.vmcp.spec import TokenExchange

__all__ = ["config_from_args", "run_command", "serve_config"]

_NAME = re.compile(r"[^a-z0-9-]+")


def _derive_name(target: list[str], url: str | None, image: bool = False) -> str:
    if url is not None:
        raw = urlsplit(url).hostname or "remote"
    elif image:  # docker.io/mcp/everything:1.2 is `everything`, as in ToolHive
        raw = target[0].rsplit("/", 1)[-1].split("@")[0].split(":")[0]
    else:
        words = [w for w in target if not w.startswith("-")]
        raw = os.path.basename(words[-1] if len(words) > 1 else words[0])
        raw = raw.rsplit(".", 1)[0] if raw.endswith((".py", ".js", ".mjs", ".ts")) else raw
    return _NAME.sub("-", raw.lower()).strip("-") or "mcp"


def _group(value: str) -> str:
    if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", value):
        raise ConfigError(f"--group: {value[:70]!r} is not a group name (lowercase letters, digits, -; at most 63)")
    return value


def _labels(items: Sequence[str]) -> tuple[tuple[str, str], ...]:
    labels: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?", key) or len(value) > 253:
            raise ConfigError(f"--label {item[:80]!r}: expected KEY=VALUE (a Kubernetes-style label key)")
        labels[key] = value
    return tuple(labels.items())


def _duration(value: str, flag: str) -> float:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{flag}: {exc}") from None


def _port(value: int | None, flag: str) -> int | None:
    if value is not None and not 0 <= value <= 65535:
        raise ConfigError(f"{flag} must be between 0 and 65535 (got {value})")
    return value


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token


def _otel(args: argparse.Namespace) -> tuple[str | None, float, tuple[tuple[str, str], ...]]:
    """`--otel-*`: the collector's base URL, the sampling rate and the export headers (whose values never appear in
    an error: they may be API keys)."""
    endpoint: str | None = args.otel_endpoint
    if not go_bool(args.otel_tracing_enabled, "--otel-tracing-enabled"):
        return None, 1.0, ()  # hivegate exports nothing else over OTLP
    if endpoint is not None and "://" not in endpoint:  # thv's form: a host[:port], https unless --otel-insecure
        endpoint = f"{'http' if args.otel_insecure else 'https'}://{endpoint}"
    elif endpoint is not None and args.otel_insecure and endpoint.startswith("https://"):
        raise ConfigError("--otel-insecure asks for http, and --otel-endpoint says https://: drop one")
    if endpoint is None:
        given = [f for f, v in (("--otel-service-name", args.otel_service_name),
                                ("--otel-insecure", args.otel_insecure),
                                ("--otel-sampling-rate", args.otel_sampling_rate),
                                ("--otel-headers", args.otel_headers)) if v]  # fmt: skip
        if given:
            raise ConfigError(f"{given[0]} needs --otel-endpoint")
        return None, 1.0, ()
    try:
        parts = urlsplit(endpoint)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.port != 0
    except ValueError:  # a malformed host or port
        ok = False
    if not ok or parts.query or parts.fragment:
        raise ConfigError(
            f"--otel-endpoint: expected an http:// or https:// collector URL, or HOST:PORT (got {args.otel_endpoint!r})"
        )
    if parts.username is not None or parts.password is not None:
        raise ConfigError("--otel-endpoint: put credentials in --otel-headers, not in the URL")
    rate = 1.0
    if args.otel_sampling_rate is not None:
        try:
            rate = float(args.otel_sampling_rate)
        except ValueError:
            rate = -1.0
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"--otel-sampling-rate must be a number from 0 to 1 (got {args.otel_sampling_rate!r})")
    if args.otel_service_name is not None and not args.otel_service_name.strip():
        raise ConfigError("--otel-service-name must not be empty")
    headers: list[tuple[str, str]] = []
    for item in args.otel_headers:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError("--otel-headers: expected KEY=VALUE")
        if not _HEADER_NAME.fullmatch(key):
            raise ConfigError(f"--otel-headers: {key[:40]!r} is not a valid header name")
        if any(c in value for c in "\r\n\0"):
            raise ConfigError(f"--otel-headers: the value of {key!r} has a line break or NUL")
        headers.append((key, value.strip()))
    return endpoint.rstrip("/"), rate, tuple(headers)


SECRET_ENV = "HIVEGATE_TOKEN_EXCHANGE_CLIENT_SECRET"  # noqa: S105 - the variable's name
# Headers the gateway or HTTP itself owns (ToolHive's restricted set for --remote-forward-headers, plus MCP's own)
_RESTRICTED_HEADERS = frozenset({
    "host", "connection", "keep-alive", "te", "trailer", "upgrade", "http2-settings", "proxy-authorization",
    "proxy-authenticate", "proxy-connection", "transfer-encoding", "content-length", "forwarded", "x-forwarded-for",
    "x-forwarded-host", "x-forwarded-proto", "x-real-ip", "content-type", "accept", "mcp-session-id",
    "mcp-protocol-version", "last-event-id",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Outgoing:
    """The remote backend's own credential, from the flags of one strategy (all empty: none)."""

    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    upstream_inject: str | None = None
    token_exchange: TokenExchange | None = None


def _outgoing(args: argparse.Namespace, transport: str, mode: AuthMode, embedded: bool) -> Outgoing:
    """`--remote-forward-headers*`, `--upstream-inject`, `--token-exchange-*`: one strategy, for a remote backend."""
    given = [f for f in ("client_id", "client_secret", "client_secret_file", "audience", "subject_provider",
                         "header_name") if getattr(args, f"token_exchange_{f}")]  # fmt: skip
    if args.token_exchange_url is None and (given or args.token_exchange_scopes):
        flag = "--token-exchange-" + (given[0] if given else "scopes").replace("_", "-")
        raise ConfigError(f"{flag} needs --token-exchange-url")
    chosen = [flag for flag, given in (
        ("--remote-forward-headers", args.remote_forward_headers),
        ("--remote-forward-headers-secret", args.remote_forward_headers_secret and not args.remote_forward_headers),
        ("--upstream-inject", args.upstream_inject is not None),
        ("--token-exchange-url", args.token_exchange_url is not None),
    ) if given]  # fmt: skip
    if len(chosen) > 1:
        raise ConfigError(
            f"{chosen[1]} cannot be combined with {chosen[0]}: the remote server gets one outgoing credential"
        )
    if chosen and transport == "stdio":
        raise ConfigError(f"{chosen[0]}: a stdio server has no HTTP requests to authenticate")
    if chosen and transport == "sse":
        raise ConfigError(f"{chosen[0]}: a legacy SSE backend is not supported; use streamable-http")
    if args.remote_forward_headers or args.remote_forward_headers_secret:
        return Outgoing(headers=_forward_headers(args))
    if args.upstream_inject is not None:
        provider = args.upstream_inject.strip()
        if not provider:
            raise ConfigError("--upstream-inject: give the name of an upstream provider of --auth-server-config")
        if not embedded:
            raise ConfigError(
                "--upstream-inject needs --auth-server-config: the embedded authorization server keeps the "
                "callers' upstream tokens"
            )
        return Outgoing(upstream_inject=provider)
    return Outgoing(token_exchange=_token_exchange(args, mode, embedded))


def _forward_headers(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """`--remote-forward-headers NAME=VALUE` and `--remote-forward-headers-secret NAME=SECRET`, checked; the values
    (secrets resolved) never appear in an error."""
    headers: list[tuple[str, str]] = []
    seen: set[str] = set()
    for flag, items in (("--remote-forward-headers", args.remote_forward_headers),
                        ("--remote-forward-headers-secret", args.remote_forward_headers_secret)):  # fmt: skip
        secret = flag.endswith("-secret")
        for item in items:
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep or not name:
                raise ConfigError(f"{flag}: expected NAME={'SECRET' if secret else 'VALUE'}")
            if not _HEADER_NAME.fullmatch(name):
                raise ConfigError(f"{flag}: {name[:40]!r} is not a valid header name")
            if name.lower() in _RESTRICTED_HEADERS:
                raise ConfigError(f"{flag}: the {name} header cannot be set (HTTP or the gateway sets it)")
            if name.lower() in seen:
                raise ConfigError(f"{flag}: the {name} header is given twice")
            seen.add(name.lower())
            if secret:
                value = resolve_secret(value, f"{flag} {name}")
            value = value.strip()
            if any(not (" " <= c <= "~" or c == "\t") for c in value):
                raise ConfigError(f"{flag}: the value of {name} must be printable ASCII on one line")
            headers.append((name, value))
    return tuple(headers)


def _token_exchange(args: argparse.Namespace, mode: AuthMode, embedded: bool) -> TokenExchange | None:
    """`--token-exchange-*`: the remote backend's credential, exchanged per call (RFC 8693)."""
    if args.token_exchange_url is None:
        return None
    from hivegate.vmcp.spec import TOKEN_TYPES, TokenExchange, secure_url

    url = secure_url(args.token_exchange_url, "--token-exchange-url")
    provider = args.token_exchange_subject_provider
    if provider is not None:
        provider = provider.strip()
        if not provider:
            raise ConfigError("--token-exchange-subject-provider: give the name of an upstream provider")
        if not embedded:
            raise ConfigError(
                "--token-exchange-subject-provider needs --auth-server-config: the embedded authorization server "
                "keeps the callers' upstream tokens"
            )
    elif not embedded and mode != "oidc":
        why = "--anonymous accepts callers without one" if mode == "anonymous" else "the local user presents none"
        raise ConfigError(
            f"--token-exchange-url: the caller's token is the subject of the exchange, and {why}; "
            "configure --oidc-issuer or --auth-server-config"
        )
    secret = args.token_exchange_client_secret
    if args.token_exchange_client_secret_file:
        if secret:
            raise ConfigError("--token-exchange-client-secret-file: give the secret once")
        try:
            secret = Path(args.token_exchange_client_secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"--token-exchange-client-secret-file: cannot read: {exc.strerror or exc}") from None
    secret = secret or os.environ.get(SECRET_ENV) or None
    header = args.token_exchange_header_name
    if header is not None and not _HEADER_NAME.fullmatch(header):
        raise ConfigError(f"--token-exchange-header-name: {header[:40]!r} is not a valid header name")
    scopes = tuple(s.strip() for s in args.token_exchange_scopes.split(",") if s.strip())
    return TokenExchange(
        token_url=url,
        client_id=args.token_exchange_client_id,
        client_secret=secret,
        audience=args.token_exchange_audience,
        scopes=scopes,
        subject_token_type=TOKEN_TYPES[args.token_exchange_subject_token_type],
        subject_provider_name=provider,
        external_token_header_name=header,
    )


def config_from_args(args: argparse.Namespace) -> RunConfig:
    refuse_thv_flags(args)
    target = expand_target(args.target)
    if not target:
        raise ConfigError("nothing to run: give `-- COMMAND [ARGS...]` or a server URL")
    url = target[0] if len(target) == 1 and target[0].startswith(("http://", "https://")) else None
    if url is not None and (args.env_file or args.env_file_dir):
        raise ConfigError("--env-file sets the stdio server's environment; a remote server has none here")
    env = env_files(args.env_file, args.env_file_dir)
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env {item!r}: expected KEY=VALUE")
        env[key] = value
    image = target[0] if url is None and is_image(target[0], env) else None
    transport: Transport
    if url is not None:
        transport = args.transport or "streamable-http"
        if transport == "stdio":
            raise ConfigError("--transport stdio needs a command, not a URL")
        parts = urlsplit(url)
        if not parts.hostname:
            raise ConfigError(f"invalid server URL {url!r}")
    else:
        transport = args.transport or "stdio"
        if transport != "stdio" and image is None:
            raise ConfigError(f"--transport {transport} needs a server URL or a container image, not a command")
    if args.secret:
        if url is not None:
            raise ConfigError("--secret sets the stdio server's environment; a remote server has none here")
        env.update(secret_env(args.secret))
    container = None
    if image is not None:
        container = container_run(args, image, tuple(target[1:]), tuple(env), transport)
    else:
        refuse_container_flags(args, url or f"the command {target[0]!r}")
    origins = tuple(o.strip() for group in args.allowed_origins for o in group.split(",") if o.strip())
    oidc_flags = [args.oidc_issuer, args.oidc_audience, args.oidc_jwks_url, args.oidc_introspection_url]
    if args.anonymous and any(oidc_flags):
        raise ConfigError("--anonymous cannot be combined with --oidc-* flags")
    embedded = args.auth_server_config is not None
    if embedded and (args.anonymous or any(oidc_flags)):
        raise ConfigError(
            "--auth-server-config: the embedded authorization server issues and checks the tokens; "
            "drop --anonymous and --oidc-issuer/--oidc-audience/--oidc-jwks-url/--oidc-introspection-url"
        )
    mode: AuthMode = "anonymous" if args.anonymous else ("oidc" if any(oidc_flags) or embedded else "local")
    if args.oidc_k8s_service_account and (embedded or not args.oidc_issuer):
        raise ConfigError(
            "--oidc-k8s-service-account needs --oidc-issuer (the cluster's, e.g. https://kubernetes.default.svc)"
        )
    if mode == "local" and not is_loopback_host(args.host):
        raise ConfigError(
            f"--host {args.host} without --oidc-issuer would let anyone who can reach it act as the local user; "
            "configure OIDC, or pass --anonymous to accept unauthenticated callers explicitly"
        )
    scopes = tuple(s.strip() for s in args.oidc_scopes.split(",") if s.strip())
    auth = OIDCConfig(
        mode=mode,
        issuer=args.oidc_issuer,
        audience=args.oidc_audience,
        jwks_url=args.oidc_jwks_url,
        introspection_url=args.oidc_introspection_url,
        client_id=args.oidc_client_id,
        client_secret=args.oidc_client_secret,
        resource_url=args.resource_url,
        insecure_allow_http=args.oidc_insecure_allow_http,
        jwks_allow_private_ip=args.jwks_allow_private_ip,
        jwks_auth_token_file=args.jwks_auth_token_file,
        ca_bundle=args.ca_bundle,
        clock_skew=_duration(args.oidc_clock_skew, "--oidc-clock-skew"),
        service_account=args.oidc_k8s_service_account,
    ).with_env_secret()
    if scopes:
        auth = replace(auth, scopes=scopes)
    if not embedded:
        auth.validate()
    else:
        auth.check_clock_skew()  # the embedded server's tokens are checked with it
    try:
        max_body = parse_size(args.max_body_size)
    except ValueError as exc:
        raise ConfigError(f"--max-body-size: {exc}") from None
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 0 and 65535 (got {args.port})")
    if args.max_sessions < 1:
        raise ConfigError("--max-sessions must be at least 1")
    for flag, value in (
        ("--max-sessions-per-user", args.max_sessions_per_user),
        ("--max-requests-per-user", args.max_requests_per_user),
        ("--max-streams-per-user", args.max_streams_per_user),
    ):
        if value < 1:
            raise ConfigError(f"{flag} must be at least 1")
    for flag, value in (
        ("--max-connections", args.max_connections),
        ("--max-connections-per-address", args.max_connections_per_address),
    ):
        if value < 0:
            raise ConfigError(f"{flag} must be 0 (no cap) or more")
    stream_idle = _duration(args.stream_idle_timeout, "--stream-idle-timeout")
    read_header = _duration(args.read_header_timeout, "--read-header-timeout")
    read_body = _duration(args.read_body_timeout, "--read-body-timeout")
    for flag, seconds in (
        ("--stream-idle-timeout", stream_idle),
        ("--read-header-timeout", read_header),
        ("--read-body-timeout", read_body),
    ):
        if seconds <= 0:
            raise ConfigError(f"{flag} must be positive")
    stdio_idle = _duration(args.stdio_idle_timeout, "--stdio-idle-timeout")
    try:
        stdio_sharing = parse_sharing(args.stdio_sharing)
    except ValueError as exc:
        raise ConfigError(f"--stdio-sharing: {exc}") from None
    request_timeout = _duration(args.request_timeout, "--request-timeout")
    if request_timeout <= 0:
        raise ConfigError("--request-timeout must be positive")
    otel_endpoint, otel_sampling_rate, otel_headers = _otel(args)
    outgoing = _outgoing(args, transport, mode, embedded)
    workers = workers_of(args)
    if workers > 1 and container is not None:  # its containers are labelled with, and removed by, one process
        raise ConfigError("--workers: a container image is served by one process; give --workers 1")
    return RunConfig(
        name=args.name or _derive_name(target, url, image=container is not None),
        transport=transport,
        command=() if url or container else tuple(target),
        url=url,
        container=container,
        env=env,
        host=args.host,
        port=args.port,
        proxy_mode=args.proxy_mode,
        auth=auth,
        allowed_origins=origins,
        max_body=max_body,
        request_timeout=request_timeout,
        session_ttl=_duration(args.session_ttl, "--session-ttl"),
        max_sessions=args.max_sessions,
        max_sessions_per_user=args.max_sessions_per_user,
        max_requests_per_user=args.max_requests_per_user,
        max_streams_per_user=args.max_streams_per_user,
        stream_idle_timeout=stream_idle,
        stdio_idle_timeout=stdio_idle,
        stdio_sharing=stdio_sharing,
        max_connections=args.max_connections,
        max_connections_per_address=args.max_connections_per_address,
        read_header_timeout=read_header,
        read_body_timeout=read_body,
        log_level=args.log_level,
        authz_config=args.authz_config,
        tools=parse_tools(args.tools),
        group=_group(args.group),
        labels=_labels(args.label),
        auth_server_config=args.auth_server_config,
        audit_config=args.audit_config,
        enable_audit=args.enable_audit or args.audit_config is not None,
        diagnostics_port=_port(args.diagnostics_port, "--diagnostics-port"),
        log_format=args.log_format,
        log_output=args.log_output,
        otel_endpoint=otel_endpoint,
        otel_service_name=args.otel_service_name,
        otel_sampling_rate=otel_sampling_rate,
        otel_headers=otel_headers,
        token_exchange=outgoing.token_exchange,
        forward_headers=outgoing.headers,
        upstream_inject=outgoing.upstream_inject,
        workers=workers,
    )


def run_command(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """`hivegate run`. With `--foreground` (or without `argv`, the words that followed `run`) serve in this process;
    otherwise check the flags here, then start `hivegate run --foreground ARGV` in the background and return."""
    if args.file or args.resource:
        from hivegate.cli.run_file import run_file_command

        return run_file_command(args, argv)
    try:
        cfg = config_from_args(args)
        if cfg.command:
            check_command(cfg.command, cfg.env)
    except ConfigError as exc:
        print(f"hivegate run: error: {exc}", file=sys.stderr)
        return 2
    if args.foreground or argv is None:
        if not args.workload_server_log and (args.label or args.group != "default"):
            flag = "--label" if args.label else "--group"
            print(f"hivegate run: warning: {flag} labels a background workload; in the foreground it is not used",
                  file=sys.stderr)  # fmt: skip
        if args.workload_server_log:
            from hivegate.workloads.logs import route_server_stderr

            route_server_stderr(args.workload_server_log)
            cfg = replace(cfg, background=True)
        return serve_config(cfg)
    from hivegate.cli.workloads import start_in_background

    try:
        ready_timeout = _duration(args.ready_timeout, "--ready-timeout")
    except ConfigError as exc:
        print(f"hivegate run: error: {exc}", file=sys.stderr)
        return 2
    return start_in_background(cfg, argv, ready_timeout=ready_timeout)


def serve_config(
    cfg: RunConfig,
    *,
    sock: socket.socket | None = None,
    public: dict[str, ASGIApp] | None = None,
    banner: str | None = None,
) -> int:
    """Serve `cfg` in the foreground; returns the process exit code."""
    from hivegate.asgi.server import bind
    from hivegate.observe.logs import configure_logging

    configure_logging(cfg.log_level, cfg.log_format, cfg.log_output)
    if sock is None:
        try:
            sock = bind(cfg.host, cfg.port)
        except OSError as exc:
            print(
                f"hivegate run: error: --port: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}", file=sys.stderr
            )
            return 2
    sockets = [sock]
    if cfg.diagnostics_port is not None:
        try:
            diagnostics = bind(cfg.host, cfg.diagnostics_port)
        except OSError as exc:
            sock.close()
            where = f"{cfg.host}:{cfg.diagnostics_port}"
            print(f"hivegate run: error: --diagnostics-port: cannot listen on {where}: {exc.strerror}", file=sys.stderr)
            return 2
        sockets.append(diagnostics)
        cfg = replace(cfg, diagnostics_port=diagnostics.getsockname()[1])
    if cfg.workers > 1:
        from hivegate.asgi.prefork import supervise
        from hivegate.cli.workers import check_auth_server

        try:
            auth_server = cfg.auth_server
            if auth_server is None and cfg.auth_server_config is not None:
                from hivegate.authserver.settings import load_auth_server_config

                auth_server = load_auth_server_config(cfg.auth_server_config)
            check_auth_server(cfg.workers, auth_server)
        except HivegateError as exc:
            for s in sockets:
                s.close()
            print(f"hivegate run: error: {exc}", file=sys.stderr)
            return 2
        return supervise(cfg.workers, lambda worker: _serve(cfg, sockets, public, banner, worker))
    return _serve(cfg, sockets, public, banner, None)


def _serve(
    cfg: RunConfig,
    sockets: list[socket.socket],
    public: dict[str, ASGIApp] | None,
    banner: str | None,
    worker: Worker | None,
) -> int:
    """Build the gateway and serve it on `sockets` (in worker `worker` of several, or alone)."""
    from hivegate.asgi.connections import ConnectionLimits
    from hivegate.asgi.server import run, serve
    from hivegate.compose.run_gateway import build_gateway
    from hivegate.observe.logs import serving_line

    sock = sockets[0]
    if worker is not None:
        from hivegate.cli.workers import become_worker

        become_worker(worker)
    try:
        app = build_gateway(cfg, public=public)
    except HivegateError as exc:
        for s in sockets:
            s.close()
        print(f"hivegate run: error: {exc}", file=sys.stderr)
        return 2
    served: ASGIApp = app
    if worker is not None:
        from hivegate.cli.workers import route_sessions

        served, private = route_sessions(worker, app, sock)
        sockets = [*sockets, private]
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}{cfg.mcp_path}"
    if cfg.auth.mode == "local" and not cfg.loopback and (worker is None or worker.index == 0):
        logging.getLogger("hivegate").warning(
            "no authentication configured and listening on %s: anyone who can reach this port acts as the local user",
            cfg.host,
        )

    def ready() -> None:
        if worker is not None and worker.index != 0:
            return  # the first worker speaks for all
        what = " ".join(cfg.command) if cfg.command else cfg.container.image if cfg.container else cfg.url
        lines = list(app.summary)
        if worker is not None:
            lines.append(f"workers: {worker.count} processes share the port (sessions stay in their worker)")
        if cfg.diagnostics_port is not None:
            lines.append(f"diagnostics: http://{shown}:{cfg.diagnostics_port}/metrics, /health, /readyz")
        message = f"hivegate: serving {cfg.name} ({cfg.transport}: {what}) at {url}"
        if cfg.log_format == "json":
            print(serving_line("json", message, name=cfg.name, url=url, summary=lines), flush=True)
        else:
            print(message, flush=True)
            for line in lines:
                print(f"  {line}", flush=True)
        if banner:
            print(banner.replace("{url}", url), flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        limits = ConnectionLimits(
            header_timeout=cfg.read_header_timeout,
            body_timeout=cfg.read_body_timeout,
            max_connections=cfg.max_connections,
            max_per_address=cfg.max_connections_per_address,
        )
        gateway = serve(served, sockets, log_level=cfg.log_level, on_ready=ready, connections=limits,
                        listening=app.listening)  # fmt: skip
        run(gateway)
    return 0
