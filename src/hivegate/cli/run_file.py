"""`hivegate run -f FILE_OR_DIR`: the `MCPServer` and `MCPRemoteProxy` resources of manifests, each a gateway.

In the foreground there must be one resource (or `--resource NAME` picks one). In the background each resource
becomes a workload of its own: `hivegate run --foreground -f ABS_PATH… --resource NAME` with the other flags as
given. The workload is named after `metadata.name` (`--name` renames it, with one resource only).

A flag may add to what the manifest says but not contradict it: a flag for a setting the manifest also makes is an
error naming both (`_CONFLICTS`). One exception: `--port` (`--proxy-port`) wins over `spec.proxyPort`/`spec.port`,
since the port a pod listens on is often taken on a workstation (with one resource only). `--transport` and the
outgoing-credential flags are refused with `-f` (the manifest says how the server is reached, and its credential
with `externalAuthConfigRef` or `headerForward`). The fields of the manifest itself are read by
`hivegate.vmcp.manifests.standalone`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from hivegate.config.run import RunConfig
from hivegate.errors import ConfigError
from hivegate.vmcp.manifests.standalone import Manifests, ManifestServer, build_server, read_servers

__all__ = ["config_from_manifest", "file_configs", "given_flags", "run_file_command"]

_AUTH = ("oidcConfig", "oidcConfigRef", "authServerRef", "embeddedAuthServer")
# flag, its dest, the manifest fields that set the same thing
_CONFLICTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("--proxy-mode", "proxy_mode", ("proxyMode",)),
    ("--group", "group", ("groupRef",)),
    ("--tools", "tools", ("tools",)),
    ("--authz-config", "authz_config", ("authzConfig",)),
    ("--enable-audit", "enable_audit", ("audit",)),
    ("--audit-config", "audit_config", ("audit",)),
    ("--anonymous", "anonymous", _AUTH),
    ("--auth-server-config", "auth_server_config", _AUTH),
    ("--resource-url", "resource_url", _AUTH),
    ("--oidc-scopes", "oidc_scopes", _AUTH),
    ("--oidc-k8s-service-account", "oidc_k8s_service_account", _AUTH),
    ("--jwks-auth-token-file", "jwks_auth_token_file", _AUTH),
    ("--jwks-allow-private-ip", "jwks_allow_private_ip", _AUTH),
    ("--oidc-insecure-allow-http", "oidc_insecure_allow_http", _AUTH),
    *((f"--oidc-{f.replace('_', '-')}", f"oidc_{f}", _AUTH)
      for f in ("issuer", "audience", "jwks_url", "introspection_url", "client_id", "client_secret")),
    *((f"--otel-{f.replace('_', '-')}", f"otel_{f}", ("telemetry",))
      for f in ("endpoint", "service_name", "sampling_rate", "headers")),
)  # fmt: skip
_OUTGOING = ("remote_forward_headers", "remote_forward_headers_secret", "upstream_inject", "token_exchange_url",
             "token_exchange_client_id", "token_exchange_client_secret", "token_exchange_client_secret_file",
             "token_exchange_audience", "token_exchange_scopes", "token_exchange_subject_provider",
             "token_exchange_header_name")  # fmt: skip


def _run_parser() -> argparse.ArgumentParser:
    from hivegate.cli.run_args import add_run_parser

    return add_run_parser(argparse.ArgumentParser().add_subparsers())


def given_flags(argv: Sequence[str]) -> frozenset[str]:
    """The dests of the flags written in `argv` (the words after `run`), whatever their values."""
    options = _run_parser()._option_string_actions
    dests = set()
    for arg in argv:
        if arg == "--":
            break
        action = options.get(arg.partition("=")[0]) if arg.startswith("-") else None
        if action is not None:
            dests.add(action.dest)
    return frozenset(dests)


def _check_flags(args: argparse.Namespace, server: ManifestServer, given: frozenset[str]) -> None:
    if "transport" in given:
        raise ConfigError(f"--transport: with -f the manifest says how the server is reached ({server.origin})")
    for dest in _OUTGOING:
        if dest in given:
            flag = "--" + dest.replace("_", "-")
            raise ConfigError(
                f"{flag}: with -f the backend's credential is the manifest's (spec.externalAuthConfigRef or "
                "spec.headerForward)"
            )
    for flag, dest, keys in _CONFLICTS:
        hit = [k for k in keys if k in server.fields]
        if hit and dest in given:
            field = "embeddedAuthServer (externalAuthConfigRef)" if hit[0] == "embeddedAuthServer" else hit[0]
            raise ConfigError(f"{flag} and {server.origin}: spec.{field} both set it; keep one")


def config_from_manifest(args: argparse.Namespace, server: ManifestServer, given: frozenset[str]) -> RunConfig:
    """The `RunConfig` of `server` with the flags in `args`, `given` those written (`ConfigError` when they
    contradict the manifest)."""
    from hivegate.cli.run import config_from_args

    _check_flags(args, server, given)
    ns = argparse.Namespace(**vars(args))
    ns.target = list(server.command) if server.command else [server.url or ""]
    if server.attach is not None:
        ns.target = [sys.executable]  # a stand-in command for the flags' checks; the backend is the pod (below)
    ns.transport = server.transport
    ns.name = args.name or server.name
    if server.port is not None and "port" not in given:
        ns.port = server.port
    if server.proxy_mode is not None:
        ns.proxy_mode = server.proxy_mode
    if server.auth is not None:
        ns.host = "127.0.0.1"  # the flags' check of an unauthenticated --host; the manifest's auth replaces it below
    base = config_from_args(ns)
    env = dict(server.env)
    for key in base.env:
        if key in env:
            raise ConfigError(f"-e/--env/--secret {key} and {server.origin}: spec.env/secrets both set it; keep one")
    env.update(base.env)
    cfg = replace(base, host=args.host, env=env)
    if server.auth is not None:
        auth = replace(server.auth, ca_bundle=base.auth.ca_bundle, clock_skew=base.auth.clock_skew)
        cfg = replace(cfg, auth=auth, auth_server=server.auth_server)
    if server.authz is not None:
        cfg = replace(cfg, authz=server.authz, authz_source=server.authz_source)
    if server.audit is not None:
        cfg = replace(cfg, enable_audit=server.audit)
    telemetry = server.telemetry
    if telemetry is not None:
        if telemetry.prometheus and cfg.diagnostics_port is None:
            raise ConfigError(
                f"{server.origin}: spec.telemetry.prometheus.enabled: give --diagnostics-port PORT, where /metrics "
                "is served"
            )
        cfg = replace(cfg, otel_endpoint=telemetry.endpoint, otel_service_name=telemetry.service_name,
                      otel_sampling_rate=telemetry.sampling_rate, otel_headers=telemetry.headers)  # fmt: skip
    return replace(
        cfg,
        command=() if server.attach else cfg.command,
        attach=server.attach,
        tools=server.tools or cfg.tools,
        group=server.group or cfg.group,
        token_exchange=server.token_exchange,
        forward_headers=server.forward_headers,
        upstream_inject=server.upstream_inject,
        session_storage=server.session_storage,
    )


def _select(
    manifests: Manifests, args: argparse.Namespace, given: frozenset[str], *, one: bool
) -> list[ManifestServer]:
    docs = list(manifests.servers)
    found = ", ".join(f"{d.kind}/{d.name}" for d in docs)
    where = ", ".join(args.file)
    if not docs:
        raise ConfigError(f"-f/--file: no MCPServer or MCPRemoteProxy in {where}")
    if args.resource is not None:
        docs = [d for d in docs if d.name == args.resource]
        if not docs:
            raise ConfigError(f"--resource: no MCPServer or MCPRemoteProxy named {args.resource!r} (found: {found})")
        if len(docs) > 1:
            raise ConfigError(f"--resource: {args.resource!r} names several resources ({found}); one per name")
    if one and len(docs) > 1:
        raise ConfigError(
            f"-f/--file: {len(docs)} resources ({found}): in the foreground, run one with --resource NAME, "
            "or leave out --foreground to start one workload each"
        )
    for dest in ("name", "port"):
        if len(docs) > 1 and dest in given:
            raise ConfigError(f"--{dest}: {len(docs)} resources ({found}) have one each; pick one with --resource")
    return [build_server(manifests, doc) for doc in docs]


def _child_argv(argv: Sequence[str], files: Sequence[str], resource: str) -> list[str]:
    """`argv` with its `-f` paths made absolute (the workload runs from anywhere) and `--resource NAME`."""
    out: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ("-f", "--file", "--resource"):
            skip = True
        elif not arg.startswith(("--file=", "--resource=")) and not (arg.startswith("-f") and arg != "-f"):
            out.append(arg)
    for path in files:
        out += ["--file", str(Path(path).absolute())]
    return [*out, "--resource", resource]


def file_configs(
    args: argparse.Namespace, argv: Sequence[str] | None, *, foreground: bool
) -> tuple[list[ManifestServer], list[RunConfig]]:
    """The resources `args.file` (and `--resource`) select and their `RunConfig`s, checked as a start would check
    them (`ConfigError`); `argv` the words after `run` (None: in process)."""
    from hivegate.cli.run_target import check_command

    if not args.file:
        raise ConfigError("--resource needs -f/--file")
    if args.target:
        raise ConfigError("-f/--file: the manifest names the server; drop the command or URL after the flags")
    for path in args.file:
        if not Path(path).exists():
            raise ConfigError(f"-f/--file: no such file {path} (ToolHive's -f is --foreground here)")
    if argv is not None:
        given = given_flags(argv)
    else:  # called in process: what differs from the defaults
        defaults = vars(_run_parser().parse_args([]))
        given = frozenset(k for k, v in vars(args).items() if k in defaults and v != defaults[k])
    servers = _select(read_servers(args.file), args, given, one=foreground)
    configs = []
    for server in servers:
        cfg = config_from_manifest(args, server, given)
        if cfg.command:
            check_command(cfg.command, cfg.env)
        configs.append(cfg)
    return servers, configs


def run_file_command(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """`hivegate run -f …`: serve the one resource in the foreground, or start each in the background."""
    from hivegate.cli.run import serve_config

    foreground = args.foreground or argv is None
    try:
        servers, configs = file_configs(args, argv, foreground=foreground)
    except ConfigError as exc:
        print(f"hivegate run: error: {exc}", file=sys.stderr)
        return 2
    for warning in (w for server in servers for w in server.warnings):
        print(f"hivegate run: warning: {warning}", file=sys.stderr)
    if foreground:
        if args.workload_server_log:
            from hivegate.workloads.logs import route_server_stderr

            route_server_stderr(args.workload_server_log)
            configs[0] = replace(configs[0], background=True)
        return serve_config(configs[0])
    from hivegate.cli.workloads import start_in_background
    from hivegate.config.durations import parse_duration

    try:
        ready_timeout = parse_duration(args.ready_timeout)
    except ValueError as exc:
        print(f"hivegate run: error: --ready-timeout: {exc}", file=sys.stderr)
        return 2
    assert argv is not None
    codes = [
        start_in_background(cfg, _child_argv(argv, args.file, server.name), ready_timeout=ready_timeout)
        for server, cfg in zip(servers, configs, strict=True)
    ]
    return max(codes)
