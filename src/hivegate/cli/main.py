"""The `hivegate` command. Subcommands import their dependencies lazily so `hivegate --help` stays fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

__all__ = ["main"]


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (`hivegate run: error: …`) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> Parser:
    from hivegate import __version__
    from hivegate.cli import authz, operator, run_args, vmcp, workloads

    parser = Parser(prog="hivegate", description="A security gateway for MCP servers.")
    parser.add_argument("--version", action="version", version=f"hivegate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    run_args.add_run_parser(sub)
    workloads.add_workload_parsers(sub)
    demo = sub.add_parser(
        "demo", help="run a bundled demo MCP server behind JWT authentication and print how to call it"
    )
    demo.add_argument("--port", type=int, default=0, help="port to listen on (default: a free port)")
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    authz.add_authz_parser(sub)
    vmcp.add_vmcp_parser(sub)
    operator.add_operator_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> NoReturn:
    from hivegate.cli.goflags import GoFlagError, go_style

    parser = build_parser()
    try:
        args_list = go_style(parser, sys.argv[1:] if argv is None else argv)
    except GoFlagError as exc:
        exc.parser.error(str(exc))
    args = parser.parse_args(args_list)
    if args.command == "run":
        from hivegate.cli.run import run_command

        sys.exit(run_command(args, parser, argv=args_list[args_list.index("run") + 1 :]))
    from hivegate.cli import workloads

    if args.command in workloads.COMMANDS:
        sys.exit(workloads.workload_command(args))
    if args.command == "demo":
        from hivegate.cli.demo import demo_command

        sys.exit(demo_command(args))
    if args.command == "authz":
        from hivegate.cli.authz import authz_command

        sys.exit(authz_command(args))
    if args.command == "vmcp":
        from hivegate.cli.vmcp import vmcp_command

        at = args_list.index("vmcp") + 2  # the words after `vmcp serve`, for a background start to replay
        sys.exit(vmcp_command(args, args_list[at:]))
    if args.command == "operator":
        from hivegate.cli.operator import operator_command

        sys.exit(operator_command(args))
    parser.print_help()
    sys.exit(2)
