"""Flags of `hivegate run`, named as in ToolHive's `thv run` so existing command lines keep working."""

from __future__ import annotations

import argparse
from typing import Any

from hivegate.cli.run_thv import add_thv_flags
from hivegate.cli.workers import add_workers_flag

__all__ = ["add_run_parser"]


def add_run_parser(sub: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = sub.add_parser(
        "run",
        help="put an MCP server (a stdio command, a container image or a remote URL) behind an authenticated endpoint",
        usage="hivegate run [OPTIONS] (-- COMMAND [ARGS...] | IMAGE [-- ARGS...] | URL | -f FILE_OR_DIR)",
        description="Run a stdio MCP server as a child process or in a container (Docker or Podman), or front a "
        "remote MCP server, and serve it over MCP Streamable HTTP (or legacy SSE) with authentication; or run "
        "the MCPServer / MCPRemoteProxy manifests given with -f.",
    )
    p.add_argument(
        "target",
        nargs="*",
        metavar="COMMAND|IMAGE|URL",
        help="`-- COMMAND [ARGS...]`, a container image (e.g. docker.io/mcp/everything) or a remote server URL",
    )
    p.add_argument(
        "-f",
        "--file",
        action="append",
        default=[],
        metavar="FILE_OR_DIR",
        help="run the MCPServer / MCPRemoteProxy manifests here (repeatable; a folder: its *.yaml, *.yml, *.json), "
        "with their Secrets and ConfigMaps; one background workload each (ToolHive's `thv run -f` is --foreground)",
    )
    # Internal: the background start of several resources runs one `--foreground` child per resource.
    p.add_argument("--resource", metavar="NAME", help=argparse.SUPPRESS)
    g = p.add_argument_group("serving")
    g.add_argument("--name", help="workload name (default: derived from the command or URL)")
    g.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    g.add_argument(
        "--port",
        "--proxy-port",
        dest="port",
        type=int,
        default=0,
        help="port to listen on (default: a free port; the URL is printed); --proxy-port is thv's name for it",
    )
    g.add_argument(
        "--proxy-mode",
        choices=("streamable-http", "sse"),
        default="streamable-http",
        help="transport served to clients",
    )
    g.add_argument(
        "--transport",
        choices=("stdio", "streamable-http", "sse"),
        help="backend transport (default: stdio for a command, streamable-http for a URL)",
    )
    g.add_argument(
        "--foreground",
        action="store_true",
        help="serve in this process until interrupted (default: start in the background, print the URL and return; "
        "see `hivegate list`, `logs`, `stop`)",
    )
    g.add_argument(
        "--ready-timeout",
        default="15s",
        metavar="DURATION",
        help="in the background: how long to wait for the workload to be ready before saying why it is not "
        "(default 15s)",
    )
    # Internal: set by the background start for the `--foreground` child it runs (the stdio server's stderr file).
    g.add_argument("--workload-server-log", dest="workload_server_log", metavar="FILE", help=argparse.SUPPRESS)
    g.add_argument(
        "-e", "--env", action="append", default=[], metavar="KEY=VALUE", help="environment for the stdio child"
    )
    g.add_argument(
        "--secret",
        action="append",
        default=[],
        metavar="NAME,target=ENV",
        help="put a secret in the stdio server's environment: NAME is env:VARIABLE, file:PATH or a secret name read "
        "from $HIVEGATE_SECRET_<NAME>",
    )
    g.add_argument(
        "--tools",
        action="append",
        default=[],
        metavar="NAME[,NAME...]",
        help="only these tools can be listed and called (a Cedar policy added to --authz-config's)",
    )
    g.add_argument("--group", default="default", help="the workload's group (default `default`; see `list --group`)")
    g.add_argument(
        "-l", "--label", action="append", default=[], metavar="KEY=VALUE", help="a label on the workload (repeatable)"
    )
    g.add_argument(
        "--allowed-origins",
        action="append",
        default=[],
        metavar="ORIGIN[,ORIGIN...]",
        help="browser origins allowed to call (default: loopback and same-host origins)",
    )
    g.add_argument(
        "--max-body-size", default="4MiB", metavar="SIZE", help="largest request body accepted (default 4MiB)"
    )
    g.add_argument(
        "--request-timeout", default="120s", metavar="DURATION", help="backend answer deadline (default 120s)"
    )
    g.add_argument("--session-ttl", default="2h", metavar="DURATION", help="idle session lifetime (default 2h)")
    g.add_argument("--max-sessions", type=int, default=1000, help="concurrent client sessions (default 1000)")
    g.add_argument(
        "--max-sessions-per-user", type=int, default=50, help="concurrent sessions of one identity (default 50)"
    )
    g.add_argument(
        "--max-requests-per-user", type=int, default=64, help="requests in flight for one identity (default 64)"
    )
    g.add_argument(
        "--max-streams-per-user", type=int, default=8, help="event streams open for one identity (default 8)"
    )
    g.add_argument(
        "--max-connections",
        type=int,
        default=0,
        help="client connections open at once (default 0: a quarter of the open files limit)",
    )
    g.add_argument(
        "--max-connections-per-address",
        type=int,
        default=512,
        help="connections from one client address (default 512; 0: no cap, e.g. behind a load balancer)",
    )
    g.add_argument(
        "--read-header-timeout",
        default="10s",
        metavar="DURATION",
        help="a client must send a request's head within this (default 10s); slower is 408 and closed",
    )
    g.add_argument(
        "--read-body-timeout",
        default="30s",
        metavar="DURATION",
        help="longest pause while a client sends a request body (default 30s); longer closes the connection",
    )
    g.add_argument(
        "--stream-idle-timeout",
        default="5m",
        metavar="DURATION",
        help="an event stream that carries nothing for this long is closed; the client reconnects (default 5m)",
    )
    g.add_argument(
        "--stdio-idle-timeout",
        default="5m",
        metavar="DURATION",
        help="a stdio server process idle this long is stopped, and started again (initialize replayed) on the "
        "session's next message (default 5m; 0: never)",
    )
    g.add_argument(
        "--stdio-sharing",
        default="per-session",
        metavar="per-session|shared|pool=N",
        help="stdio server processes: one per client session (default), one shared by all sessions, or N shared "
        "(each session on the least loaded); share only servers that keep no per-client state",
    )
    g.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    add_workers_flag(g)
    c = p.add_argument_group(
        "container images (a stdio server gets a container per client session, with no network unless allowed)"
    )
    c.add_argument("--runtime", choices=("docker", "podman"), help="container runtime (default: docker, else podman)")
    c.add_argument(
        "-v",
        "--volume",
        action="append",
        default=[],
        metavar="HOST:CONTAINER[:ro]",
        help="bind a host path into the container (repeatable)",
    )
    c.add_argument("--network", metavar="NAME", help="the container's network (default: none for stdio servers)")
    c.add_argument(
        "--permission-profile",
        metavar="none|network|FILE",
        help="ToolHive permission profile: none (default for stdio), network, or a JSON file (read/write mounts, "
        "network.outbound.insecure_allow_all)",
    )
    c.add_argument(
        "--target-port",
        type=int,
        metavar="PORT",
        help="the port the image's HTTP server listens on (--transport streamable-http or sse; default 8080)",
    )
    a = p.add_argument_group("authentication (OIDC); without these flags the caller is the local OS user")
    a.add_argument("--anonymous", action="store_true", help="accept every caller as `anonymous` (development only)")
    a.add_argument("--oidc-issuer", help="issuer URL; tokens' iss must equal it")
    a.add_argument("--oidc-audience", help="expected audience (aud) of tokens")
    a.add_argument("--oidc-jwks-url", help="JWKS URL (default: from OIDC discovery)")
    a.add_argument("--oidc-introspection-url", help="RFC 7662 introspection endpoint for opaque tokens")
    a.add_argument("--oidc-client-id", help="client id (for introspection)")
    a.add_argument("--oidc-client-secret", help="client secret for introspection (or env HIVEGATE_OIDC_CLIENT_SECRET)")
    a.add_argument("--oidc-scopes", default="", metavar="SCOPES", help="comma-separated scopes advertised in metadata")
    a.add_argument("--oidc-insecure-allow-http", action="store_true", help="allow an http:// issuer (development)")
    a.add_argument(
        "--oidc-clock-skew",
        default="60s",
        metavar="DURATION",
        help="leeway for exp/nbf/iat of every token checked, the embedded authorization server's too (default 60s)",
    )
    a.add_argument(
        "--oidc-k8s-service-account",
        metavar="NAMESPACE/NAME",
        help="only this Kubernetes service account may call (NAMESPACE/* for any in a namespace)",
    )
    a.add_argument("--resource-url", help="this server's canonical resource URL (RFC 9728 `resource`)")
    a.add_argument("--jwks-auth-token-file", help="file whose content is sent as bearer token when fetching the JWKS")
    a.add_argument(
        "--jwks-allow-private-ip",
        action="store_true",
        help="allow JWKS/introspection URLs on private or loopback addresses",
    )
    a.add_argument(
        "--auth-server-config",
        metavar="FILE",
        help="run the embedded OAuth authorization server (ToolHive's embeddedAuthServer spec, YAML); "
        "callers log in at its upstream identity provider and present its tokens",
    )
    a.add_argument(
        "--ca-bundle", "--thv-ca-bundle", dest="ca_bundle", help="CA bundle for the issuer's TLS certificate"
    )
    o = p.add_argument_group("operations")
    o.add_argument("--enable-audit", action="store_true", help="write an audit line per MCP request (to stdout)")
    o.add_argument("--audit-config", metavar="FILE", help="audit config (ToolHive's keys; implies --enable-audit)")
    o.add_argument(
        "--diagnostics-port",
        "--metrics-port",
        dest="diagnostics_port",
        type=int,
        metavar="PORT",
        help="serve /metrics (Prometheus), /health and /readyz on this port (0: a free one); off by default",
    )
    o.add_argument("--log-format", choices=("text", "json"), default="text", help="log line format (default text)")
    o.add_argument(
        "--log-output",
        choices=("stderr", "stdout"),
        default="stderr",
        help="where log lines go (default stderr); stdout: beside the serving line, one stream for a container "
        "runtime, journald or Kubernetes",
    )
    o.add_argument(
        "--otel-endpoint",
        metavar="URL",
        help="send OpenTelemetry traces to this OTLP/HTTP collector (base URL, e.g. http://127.0.0.1:4318; "
        "spans go to URL/v1/traces); off by default",
    )
    o.add_argument(
        "--otel-service-name", metavar="NAME", help="service.name of the traces (default: the workload name)"
    )
    o.add_argument("--otel-sampling-rate", metavar="RATE", help="fraction of MCP requests traced, 0 to 1 (default 1.0)")
    o.add_argument(
        "--otel-headers",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="header sent with every export (e.g. a collector's API key; repeatable; never logged). "
        "OTEL_EXPORTER_OTLP_HEADERS in the environment keeps them off the command line",
    )
    x = p.add_argument_group(
        "outgoing authentication (a remote backend gets a credential of its own, never the caller's token; one of: "
        "header injection, --upstream-inject, --token-exchange-url)"
    )
    x.add_argument(
        "--remote-forward-headers",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="add this header to every request to the remote server (repeatable). The value is on the command line "
        "(and in a background workload's record): put secrets in --remote-forward-headers-secret",
    )
    x.add_argument(
        "--remote-forward-headers-secret",
        action="append",
        default=[],
        metavar="NAME=SECRET",
        help="add this header with a secret value, never on the command line (repeatable): SECRET is env:VARIABLE, "
        "file:PATH, or a secret name read from $HIVEGATE_SECRET_<NAME>",
    )
    x.add_argument(
        "--upstream-inject",
        metavar="PROVIDER",
        help="send the caller's access token from this upstream provider of --auth-server-config (refreshed when "
        "expired; without one the caller gets 401 and logs in again)",
    )
    x.add_argument("--token-exchange-url", metavar="URL", help="the STS token endpoint (https, http on loopback)")
    x.add_argument("--token-exchange-client-id", metavar="ID", help="client id at the STS")
    x.add_argument(
        "--token-exchange-client-secret",
        metavar="SECRET",
        help="client secret at the STS (or --token-exchange-client-secret-file, or env "
        "HIVEGATE_TOKEN_EXCHANGE_CLIENT_SECRET)",
    )
    x.add_argument("--token-exchange-client-secret-file", metavar="FILE", help="file holding the client secret")
    x.add_argument("--token-exchange-audience", metavar="AUD", help="audience of the exchanged token")
    x.add_argument("--token-exchange-scopes", default="", metavar="SCOPES", help="comma-separated scopes to ask for")
    x.add_argument(
        "--token-exchange-subject-token-type",
        default="access_token",
        choices=("access_token", "id_token", "jwt"),
        help="type of the subject token (default access_token)",
    )
    x.add_argument(
        "--token-exchange-subject-provider",
        metavar="PROVIDER",
        help="the upstream provider of --auth-server-config whose token of the caller is exchanged (default: the "
        "first)",
    )
    x.add_argument(
        "--token-exchange-header-name",
        metavar="NAME",
        help="header for the exchanged token (default: Authorization: Bearer)",
    )
    add_thv_flags(p.add_argument_group("thv run's other flags"))
    z = p.add_argument_group("authorization")
    z.add_argument(
        "--authz-config",
        metavar="FILE",
        help="Cedar authorization config (ToolHive's cedarv1 format, JSON or YAML); reloaded on SIGHUP or change",
    )
    return p
