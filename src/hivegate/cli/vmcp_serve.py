"""`hivegate vmcp serve`: discover the backends, then serve the virtual MCP server until interrupted.

In the foreground by default, as ToolHive's `thv vmcp serve` (which has no background mode) does. With `-d` /
`--background` it becomes a workload like `hivegate run`'s: the configuration is checked here (exit 1), then
`hivegate vmcp serve --foreground ARGV` starts detached under the vMCP's name, and this returns once `/readyz` says
it is ready (exit 0) or with the failing checks (exit 1, left running). `hivegate list`, `logs`, `stop`, `restart`
and `rm` then work on it by that name.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from hivegate.errors import HivegateError

if TYPE_CHECKING:
    from hivegate.asgi.prefork import Worker
    from hivegate.asgi.types import ASGIApp
    from hivegate.vmcp.spec import VMCPConfig

__all__ = ["serve_command"]

logger = logging.getLogger("hivegate.vmcp")


def serve_command(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    """`hivegate vmcp serve`; `argv` is what followed `serve` on the command line (a background start replays it)."""
    if args.background:
        return _start_in_background(args, argv)
    from hivegate.asgi.server import bind
    from hivegate.cli.vmcp import load_config
    from hivegate.cli.workers import check_auth_server, workers_of
    from hivegate.observe.logs import configure_logging

    configure_logging(args.log_level, args.log_format, args.log_output)
    if args.workload_server_log:
        from hivegate.workloads.logs import route_server_stderr

        route_server_stderr(args.workload_server_log)
    try:
        workers = workers_of(args)
        cfg = load_config(args)
        if args.port is not None and not 0 <= args.port <= 65535:
            raise HivegateError(f"--port must be 0..65535 (got {args.port})")
        cfg = replace(cfg, host=args.host or cfg.host, port=cfg.port if args.port is None else args.port)
        check_auth_server(workers, cfg.auth_server)
    except HivegateError as exc:
        print(f"hivegate vmcp serve: {exc}", file=sys.stderr)
        return 1
    try:
        sock = bind(cfg.host, cfg.port)
    except OSError as exc:
        print(f"hivegate vmcp serve: --port: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}", file=sys.stderr)
        return 1
    if workers > 1:
        from hivegate.asgi.prefork import supervise

        return supervise(workers, lambda worker: _serve(args, cfg, sock, worker))
    return _serve(args, cfg, sock, None)


def _serve(args: argparse.Namespace, cfg: VMCPConfig, sock: socket.socket, worker: Worker | None) -> int:
    """Build the virtual MCP server and serve it on `sock` (in worker `worker` of several, or alone)."""
    from hivegate.asgi.server import run, serve
    from hivegate.cli.vmcp import load_config
    from hivegate.observe.logs import serving_line
    from hivegate.vmcp.gateway import build_virtual_server

    host, port = cfg.host, cfg.port
    if worker is not None:
        from hivegate.cli.workers import become_worker

        become_worker(worker)
    try:
        server = build_virtual_server(cfg, reload=lambda: replace(load_config(args), host=host, port=port))
    except HivegateError as exc:
        print(f"hivegate vmcp serve: {exc}", file=sys.stderr)
        return 1 if worker is None else 2  # a worker's 2: the supervisor stops, as every worker would fail
    sockets = [sock]
    served: ASGIApp = server.gateway
    if worker is not None:
        from hivegate.cli.workers import route_sessions

        served, private = route_sessions(worker, server.gateway, sock)
        sockets.append(private)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}{cfg.path}"
    failed: list[str] = []

    def ready() -> None:
        if worker is not None and worker.index != 0:
            return  # the first worker speaks for all
        names = ", ".join(f"{s.name} ({s.state})" for s in server.pool.statuses.values())
        message = f"hivegate: serving virtual MCP server {cfg.name} at {url}"
        catalog = server.pool.catalog
        lines = [
            f"backends: {names}",
            f"catalog: {len(catalog.tools)} tools, {len(catalog.prompts)} prompts, {len(catalog.resources)} resources"
            f" ({cfg.aggregation.conflict_resolution})",
            *server.summary,
            f"status: http://{shown}:{port}/status",
        ]
        if worker is not None:
            lines.append(f"workers: {worker.count} processes share the port (sessions stay in their worker)")
        if args.log_format == "json":
            print(serving_line("json", message, name=cfg.name, url=url, summary=lines), flush=True)
            return
        print(message, flush=True)
        for line in lines:
            print(f"  {line}", flush=True)

    async def main() -> None:
        try:
            problems = await server.pool.start()
        except HivegateError as exc:
            failed.append(str(exc))
            await server.pool.close()
            return
        if problems and not server.pool.best_effort:
            failed.append("backend unavailable at start-up (partialFailureMode: fail): " + "; ".join(problems))
            await server.pool.close()
            return
        for problem in problems:
            logger.warning("backend unavailable at start-up (bestEffort: serving the others): %s", problem)
        await serve(served, sockets, log_level=args.log_level, on_ready=ready)

    with contextlib.suppress(KeyboardInterrupt):
        run(main())
    if failed:
        with contextlib.suppress(OSError):
            sock.close()
        print(f"hivegate vmcp serve: {failed[0]}", file=sys.stderr)
        return 1
    return 0


def _start_in_background(args: argparse.Namespace, argv: Sequence[str]) -> int:
    """Check the configuration as `validate` does, then start it as a background workload named after the vMCP."""
    from hivegate.cli.vmcp import check_config, load_config
    from hivegate.cli.workloads import start_workload
    from hivegate.config.durations import parse_duration

    try:
        ready_timeout = parse_duration(args.ready_timeout)
    except ValueError as exc:
        print(f"hivegate vmcp serve: error: --ready-timeout: {exc}", file=sys.stderr)
        return 2
    try:
        cfg = load_config(args)
        check_config(cfg)
        if args.port is not None and not 0 <= args.port <= 65535:
            raise HivegateError(f"--port must be 0..65535 (got {args.port})")
    except HivegateError as exc:
        print(f"hivegate vmcp serve: {exc}", file=sys.stderr)
        return 1
    host = args.host or cfg.host
    port = cfg.port if args.port is None else args.port
    child = [arg for arg in argv if arg not in ("-d", "--background")]
    return start_workload("vmcp", cfg.name, child, host=host, port=port, ready_timeout=ready_timeout)
