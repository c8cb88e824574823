"""`hivegate operator`: the Kubernetes operator that runs ToolHive's custom resources on hivegate
(`hivegate.operator`). Needs the `operator` extra (`pip install 'hivegate[operator]'`: kopf)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from typing import Any

__all__ = ["add_operator_parser", "operator_command"]


def add_operator_parser(sub: Any) -> None:
    p = sub.add_parser(
        "operator",
        help="run the Kubernetes operator for MCPServer, VirtualMCPServer, MCPRemoteProxy and their configs",
        description="Reconcile ToolHive's custom resources (toolhive.stacklok.dev) into hivegate gateways.",
    )
    p.add_argument("-n", "--namespace", action="append", default=[], metavar="NS",
                   help="watch this namespace (repeat for several; default: the whole cluster)")  # fmt: skip
    p.add_argument("--image", default="hivegate:latest", help="the hivegate image the gateway pods run")
    p.add_argument("--image-pull-policy", default="IfNotPresent", choices=("Always", "IfNotPresent", "Never"))
    p.add_argument("--health-port", type=int, default=8081, help="port of /healthz and /metrics (default 8081)")
    p.add_argument("--health-host", default="0.0.0.0", help="address of /healthz and /metrics (default 0.0.0.0)")
    p.add_argument("--no-leader-election", action="store_true", help="run without taking the Lease (one replica)")
    p.add_argument("--lease-namespace", help="namespace of the leader Lease (default: the pod's own)")
    p.add_argument("--lease-name", default="hivegate-operator", help="name of the leader Lease")
    p.add_argument("--resync", type=float, default=60.0, help="seconds between full re-renders (default 60)")
    p.add_argument("--log-format", default="json", choices=("text", "json"))
    p.add_argument("--log-output", default="stderr", choices=("stderr", "stdout"), help="where log lines go")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))


def operator_command(args: argparse.Namespace) -> int:
    try:
        import kopf  # noqa: F401
    except ImportError:
        print("hivegate operator: needs kopf: pip install 'hivegate[operator]'", file=sys.stderr)
        return 2
    from hivegate.errors import HivegateError
    from hivegate.observe.logs import configure_logging
    from hivegate.operator.objects import Settings
    from hivegate.operator.runner import OperatorOptions, connect, run_operator

    configure_logging(args.log_level, args.log_format, args.log_output)
    logging.getLogger("kopf").setLevel(logging.WARNING if args.log_level != "debug" else logging.DEBUG)
    options = OperatorOptions(
        namespaces=tuple(args.namespace),
        settings=Settings(image=args.image, pull_policy=args.image_pull_policy),
        health_host=args.health_host,
        health_port=args.health_port,
        leader_election=not args.no_leader_election,
        lease_namespace=args.lease_namespace,
        lease_name=args.lease_name,
        resync=args.resync,
    )
    try:
        connection, api = connect()
    except HivegateError as exc:
        print(f"hivegate operator: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_operator(options, connection, api))
    return 0
