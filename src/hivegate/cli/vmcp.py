"""`hivegate vmcp`: check a virtual MCP server's configuration, and write a starter one.

`validate --config FILE` (a vMCP config) or `validate -f MANIFEST…` (Kubernetes-shaped manifests, files or folders)
loads everything the server would load, compiles the Cedar policies, and prints one summary line (exit 0) or the one
line of the first error (exit 1). `init [--output FILE]` writes a commented starter config that validates; it never
overwrites a file (exit 1). Bad usage exits 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hivegate.cli.workers import add_workers_flag
from hivegate.errors import ConfigError

if TYPE_CHECKING:
    from hivegate.vmcp.spec import BackendConfig, VMCPConfig

__all__ = ["add_vmcp_parser", "check_config", "starter_config", "vmcp_command"]

DEFAULT_OUTPUT = "vmcp.yaml"


def add_vmcp_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `hivegate vmcp validate` and `hivegate vmcp init` on the top-level subparsers."""
    p: argparse.ArgumentParser = sub.add_parser(
        "vmcp",
        help="virtual MCP server: one endpoint in front of several MCP servers",
        description="Work with a virtual MCP server's configuration: a vMCP config file (ToolHive's vMCP keys) or "
        "Kubernetes-shaped manifests (VirtualMCPServer, MCPGroup, MCPServer, …).",
    )
    sub2 = p.add_subparsers(dest="vmcp_command", metavar="SUBCOMMAND", required=True, parser_class=type(p))
    v = sub2.add_parser(
        "validate",
        help="load a vMCP config or manifests as the server would, and print a summary",
        description="Load the configuration, resolve its references and secrets, compile its Cedar policies, and "
        "print one summary line. Exit 0 when valid, 1 with the first error, 2 on bad usage.",
    )
    source = v.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", metavar="FILE", help="a vMCP config file (YAML)")
    source.add_argument(
        "-f",
        "--filename",
        dest="manifests",
        metavar="MANIFEST",
        nargs="+",
        action="extend",
        help="Kubernetes-shaped manifests: files or folders (repeatable)",
    )
    v.add_argument("--name", metavar="NAME", help="the VirtualMCPServer to load when the manifests hold several")
    srv = sub2.add_parser(
        "serve",
        help="serve the virtual MCP server: one endpoint in front of every backend",
        description="Start the backends' discovery, then serve MCP Streamable HTTP at http://HOST:PORT/mcp "
        "(default 127.0.0.1:4483) until interrupted. Exit 1 when the configuration or a backend (under "
        "partialFailureMode: fail) is not usable, 2 on bad usage.",
    )
    served = srv.add_mutually_exclusive_group(required=True)
    served.add_argument("--config", metavar="FILE", help="a vMCP config file (YAML)")
    served.add_argument(
        "-f",
        "--filename",
        dest="manifests",
        metavar="MANIFEST",
        nargs="+",
        action="extend",
        help="Kubernetes-shaped manifests: files or folders (repeatable)",
    )
    srv.add_argument("--name", metavar="NAME", help="the VirtualMCPServer to serve when the manifests hold several")
    srv.add_argument("--host", help="address to listen on (default: the config's, else 127.0.0.1)")
    srv.add_argument("--port", type=int, help="port to listen on (default: the config's, else 4483; 0: a free one)")
    srv.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    add_workers_flag(srv)
    srv.add_argument("--log-format", default="text", choices=("text", "json"))
    srv.add_argument("--log-output", default="stderr", choices=("stderr", "stdout"), help="where log lines go")
    where = srv.add_mutually_exclusive_group()
    where.add_argument(
        "-d",
        "--background",
        action="store_true",
        help="start it as a background workload named after the vMCP (see `hivegate list`, `logs`, `stop`, "
        "`restart`, `rm`), wait until it is ready and return",
    )
    where.add_argument(
        "--foreground",
        action="store_true",
        help="serve in this process until interrupted (the default, as `thv vmcp serve` does)",
    )
    srv.add_argument(
        "--ready-timeout",
        default="15s",
        metavar="DURATION",
        help="with --background: how long to wait for the vMCP to be ready before saying why it is not (default 15s)",
    )
    # Internal: set by the background start for the foreground child it runs (the stdio backends' stderr file).
    srv.add_argument("--workload-server-log", dest="workload_server_log", metavar="FILE", help=argparse.SUPPRESS)
    i = sub2.add_parser(
        "init",
        help="write a commented starter vMCP config",
        description="Write a commented starter vMCP config (one stdio backend, anonymous access on 127.0.0.1). "
        "Refuses to overwrite an existing file.",
    )
    i.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        default=DEFAULT_OUTPUT,
        help=f"where to write (default {DEFAULT_OUTPUT}; - for stdout)",
    )
    return p


def vmcp_command(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    """`hivegate vmcp SUBCOMMAND`; `argv` is what followed `vmcp serve` (a background start replays it)."""
    if args.vmcp_command == "init":
        return _init(args.output)
    if args.vmcp_command == "serve":
        from hivegate.cli.vmcp_serve import serve_command

        return serve_command(args, argv)
    return _validate(args)


def starter_config() -> str:
    """The text of the commented starter config (`hivegate/vmcp/starter.yaml`)."""
    return resources.files("hivegate.vmcp").joinpath("starter.yaml").read_text(encoding="utf-8")


def load_config(args: argparse.Namespace) -> VMCPConfig:
    """The config named by `--config` or `-f` (`ConfigError` names what is wrong)."""
    from hivegate.vmcp.manifests import load_manifests
    from hivegate.vmcp.spec import load_vmcp_config

    if args.config is not None:
        if args.name is not None:
            raise ConfigError("--name only applies to manifests (-f)")
        return load_vmcp_config(args.config)
    return load_manifests(args.manifests, name=args.name)


def check_config(cfg: VMCPConfig) -> None:
    """What loading leaves to start-up, checked now: every Cedar policy compiles (the vMCP's and each MCPServer's
    own), and every stdio backend's command is found on its `PATH` (`ConfigError`). Backend URLs are checked as they
    load (`hivegate.vmcp.spec.values.http_url`)."""
    from hivegate.authz.cedar import compile_policies

    authz = cfg.incoming_auth.authz
    checked = [("incomingAuth.authz", authz)]  # the vMCP's policies, then each MCPServer's own
    checked += [(f"{b.own_auth.where}.authzConfig", b.own_auth.authz) for b in cfg.backends if b.own_auth]
    for where, config in checked:
        if config is not None:
            try:
                compile_policies(config.cedar.policies)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
    for backend in cfg.backends:
        _check_backend(backend)


def _check_backend(backend: BackendConfig) -> None:
    from hivegate.cli.run_target import check_command

    where = f"backend {backend.name!r}"
    if backend.command is not None:
        try:
            check_command([backend.command], backend.env)
        except ConfigError:
            raise ConfigError(
                f"{where}: command {backend.command!r} not found on PATH (its env's PATH, else this one's): install "
                "it, or give its full path in `command`"
            ) from None


def _validate(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args)
        check_config(cfg)
    except ConfigError as exc:
        print(f"hivegate vmcp validate: {exc}", file=sys.stderr)
        return 1
    authz = cfg.incoming_auth.authz
    names = ", ".join(b.name for b in cfg.backends)
    count = len(cfg.backends)
    policies = len(authz.cedar.policies) if authz is not None else 0
    server = ", embedded authorization server" if cfg.auth_server is not None else ""
    print(
        f"{cfg.name}: valid: {count} backend{'s' if count != 1 else ''} ({names}), incoming auth "
        f"{cfg.incoming_auth.type}{server}, {policies} Cedar polic{'ies' if policies != 1 else 'y'}, aggregation "
        f"{cfg.aggregation.conflict_resolution}"
    )
    return 0


def _init(output: str) -> int:
    text = starter_config()
    if output == "-":
        sys.stdout.write(text)
        return 0
    path = Path(output)
    try:
        with path.open("x", encoding="utf-8") as f:
            f.write(text)
    except FileExistsError:
        print(f"hivegate vmcp init: {path} already exists; not overwriting it", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"hivegate vmcp init: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}; check it with: hivegate vmcp validate --config {path}")
    return 0
