"""`hivegate authz replay --audit AUDIT.jsonl --config NEW [--config OLD]`: what a policy change would change.

Re-decides every authorization decision of the gateway's audit trail (`hivegate.authz.replay`) under the new config
(the first `--config`) and the old one (the second), or else against the decisions recorded. Prints the changes by
target and by principal, the first `--examples` with the policies that decided each side, and what was not replayed.
Exit 0 no decision changes, 1 some change, 2 errors: a config or audit file that cannot be read, or bad lines in the
trail (counted and listed by line number; the report is still printed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from typing import TYPE_CHECKING, Any

from hivegate.errors import ConfigError

if TYPE_CHECKING:
    from hivegate.authz.replay import Report

__all__ = ["add_replay_parser", "replay_command"]

EXIT_CHANGED = 1
EXIT_ERRORS = 2
_TOP = 20


def add_replay_parser(sub: Any) -> None:
    r = sub.add_parser(
        "replay",
        help="re-decide the decisions of an audit trail under changed policies and report what changes",
        usage="hivegate authz replay --audit AUDIT.jsonl --config NEW [--config OLD] [--examples N] "
        "[--format text|json]",
        description="Re-decide every authorization decision recorded in the gateway's audit trail under NEW "
        "(and OLD, else against the decision recorded) and report the decisions that change. The trail must "
        "come from a gateway that records decision inputs (every audit line it writes does; policies that read "
        "arguments need `authorizationArguments: read` or `includeRequestData` in the audit config). "
        "Exit 0 no change, 1 changes, 2 errors (unreadable files, bad lines).",
    )
    r.add_argument("--audit", required=True, metavar="AUDIT.jsonl", help="the audit trail (`-` for stdin)")
    r.add_argument(
        "--config",
        required=True,
        action="append",
        metavar="FILE",
        help="the new authz config; given twice, the second is the old one to compare with",
    )
    r.add_argument("--examples", type=int, default=10, metavar="N", help="show the first N changes (default 10)")
    r.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")


def replay_command(args: argparse.Namespace) -> int:
    """Run `hivegate authz replay`; returns the exit code."""
    prog = "hivegate authz replay"
    if len(args.config) > 2:
        print(f"{prog}: error: --config: at most twice (the new config, then the old one)", file=sys.stderr)
        return EXIT_ERRORS
    if args.examples < 0:
        print(f"{prog}: error: --examples: must be 0 or more", file=sys.stderr)
        return EXIT_ERRORS
    try:
        report = _replay(args)
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERRORS
    against = args.config[1] if len(args.config) > 1 else "the decisions recorded"
    if args.format == "json":
        print(json.dumps(_as_json(report), indent=2))
    else:
        print("\n".join(_text(report, args.config[0], against)))
    if report.bad_lines:
        return EXIT_ERRORS
    return EXIT_CHANGED if report.changed else 0


def _replay(args: argparse.Namespace) -> Report:
    from hivegate.authz import CedarAuthorizer, load_authz_config
    from hivegate.authz.replay import Replayer

    configs = []
    for path in args.config:
        cfg = load_authz_config(path)
        try:
            CedarAuthorizer.from_config(cfg, "mcp")  # compile now: a bad policy is an error before any line is read
        except ConfigError as exc:
            raise ConfigError(f"authz config {path}: {exc}") from None
        configs.append(cfg)
    replayer = Replayer(configs[0], configs[1] if len(configs) > 1 else None, examples=args.examples)
    if args.audit == "-":
        return replayer.feed(sys.stdin.buffer)
    try:
        with open(args.audit, "rb") as lines:
            return replayer.feed(lines)
    except OSError as exc:
        raise ConfigError(f"--audit {args.audit}: cannot read: {exc.strerror or exc}") from None


def _counted(counter: Counter[str]) -> list[str]:
    width = max((len(k) for k, _ in counter.most_common(_TOP)), default=0)
    lines = [f"  {key.ljust(width)}  {n}" for key, n in counter.most_common(_TOP)]
    if len(counter) > _TOP:
        lines.append(f"  … and {len(counter) - _TOP} more")
    return lines


def _text(report: Report, new: str, against: str) -> list[str]:
    lines = [
        f"replayed {report.replayed} decisions under {new}, against {against} "
        f"({report.lines} lines, {report.events} audit events)",
        f"changed: {report.changed} (newly allowed {report.newly_allowed}, newly denied {report.newly_denied})",
    ]
    if report.changed:
        lines += ["by target:", *_counted(report.by_target), "by principal:", *_counted(report.by_principal)]
    if report.changes:
        lines.append(f"first {len(report.changes)} changes:")
    for change in report.changes:
        event = change.event
        lines.append(f"  line {event.line}: {event.subject} {event.action} {event.target}")
        for label, side in (("before", change.before), ("after", change.after)):
            decided = f"{'allow' if side.allowed else 'deny'}"
            by = f" by {', '.join(side.policies)}" if side.policies else ""
            why = f" ({side.explanation})" if side.explanation != "as recorded" else " (as recorded)"
            lines.append(f"    {label + ':':8}{decided}{by}{why}")
    skipped = [
        (report.lists, "list answers (filtered per caller)"),
        (report.never_allowed, "methods the gateway never lets through"),
        (report.no_input, "decisions recorded without their input (not replayable)"),
        (report.not_decided, "events without a decision"),
        (report.other_lines, "lines that are not audit events"),
    ]
    shown = [f"{n} {what}" for n, what in skipped if n]
    if shown:
        lines.append("not replayed: " + "; ".join(shown))
    if report.missing_arguments:
        lines.append(
            f"warning: {report.missing_arguments} decisions replayed without argument values the new policies read "
            "(record them with `authorizationArguments: read` in the audit config)"
        )
    if report.bad_lines:
        lines.append(f"error: {report.bad_lines} bad lines")
        lines += [f"  line {number}: {why}" for number, why in report.bad]
    return lines


def _as_json(report: Report) -> dict[str, Any]:
    return {
        "lines": report.lines,
        "events": report.events,
        "replayed": report.replayed,
        "changed": report.changed,
        "newly_allowed": report.newly_allowed,
        "newly_denied": report.newly_denied,
        "by_target": dict(report.by_target.most_common()),
        "by_principal": dict(report.by_principal.most_common()),
        "examples": [
            {
                "line": c.event.line,
                "principal": c.event.subject,
                "action": c.event.action,
                "target": c.event.target,
                "before": {"decision": "allow" if c.before.allowed else "deny", "policies": list(c.before.policies)},
                "after": {
                    "decision": "allow" if c.after.allowed else "deny",
                    "policies": list(c.after.policies),
                    "explanation": c.after.explanation,
                },
            }
            for c in report.changes
        ],
        "not_replayed": {
            "lists": report.lists,
            "never_allowed": report.never_allowed,
            "no_input": report.no_input,
            "not_decided": report.not_decided,
            "other_lines": report.other_lines,
        },
        "missing_arguments": report.missing_arguments,
        "bad_lines": report.bad_lines,
        "bad": [{"line": n, "error": why} for n, why in report.bad],
    }
