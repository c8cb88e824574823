"""`hivegate authz`: check a Cedar authorization config before deploying it, and ask it what it decides.

`validate FILE` compiles every policy and checks it against hivegate's entity model (exit 0, or 1 when a policy has
a syntax error or can never match); with `--config VMCP.yaml` (FILE then optional: the vMCP's own policies) it also
warns about names the virtual server cannot have (offline: `vmcp.policy_names.configured_problems`).
`check FILE --claims … --tool NAME` decides one request as the gateway would
(exit 0 allow, 3 deny). Bad input is one line on stderr naming the flag or file (exit 1); bad usage exits 2.
`test FILE...` runs policy test cases (`authz_test`); `replay --audit …` re-decides an audit trail (`authz_replay`);
both exit 2 on bad input.
The authz library (and with it the Cedar engine) is imported only when a subcommand runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hivegate.cli.authz_replay import add_replay_parser, replay_command
from hivegate.cli.authz_test import add_test_parser, test_command
from hivegate.errors import ConfigError

if TYPE_CHECKING:
    from hivegate.authz import AuthzConfig, CedarAuthorizer, Decision
    from hivegate.authz.cedar import CompiledPolicy
    from hivegate.authz.entities import ActionName
    from hivegate.authz.names import NameProblem
    from hivegate.authz.validate import PolicyProblem
    from hivegate.core.principal import Principal
    from hivegate.vmcp.spec import VMCPConfig

__all__ = ["EXIT_DENY", "add_authz_parser", "authz_command"]

EXIT_DENY = 3
DEFAULT_SERVER = "mcp"
_SNIPPET = 100


def add_authz_parser(sub: Any) -> argparse.ArgumentParser:
    """Register `hivegate authz validate`, `check`, `test` and `replay` on the top-level subparsers."""
    p: argparse.ArgumentParser = sub.add_parser(
        "authz",
        help="validate a Cedar authorization config, or check what it decides for one request",
        description="Work with a Cedar authorization config in ToolHive's cedarv1 format (JSON, or YAML by extension), "
        "the file `hivegate run --authz-config` takes.",
    )
    sub2 = p.add_subparsers(dest="authz_command", metavar="SUBCOMMAND", required=True, parser_class=type(p))
    v = sub2.add_parser(
        "validate",
        help="check policy syntax and that every policy can match a request hivegate builds",
        description="Compile every policy and check it against hivegate's entity model. Prints each problem, then "
        "a summary. Exit 0 when there are no errors (warnings allowed), 1 on errors or an unreadable or invalid "
        "file, 2 on bad usage.",
    )
    v.add_argument(
        "file",
        metavar="FILE",
        nargs="?",
        help="authz config (JSON, or YAML when the name ends in .yaml/.yml); with --config, default: its "
        "incomingAuth.authz",
    )
    v.add_argument(
        "--config",
        metavar="VMCP.yaml",
        help="a virtual MCP server's configuration: also warn about policies naming a backend it does not have "
        "or, under conflictResolution prefix, a tool or prompt without a backend's prefix (offline: no backend "
        "is started or contacted; `vmcp serve` checks the real catalog at start-up)",
    )
    v.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    c = sub2.add_parser(
        "check",
        help="decide one request as the gateway would and say which policies decided it",
        usage="hivegate authz check FILE --claims CLAIMS (--tool NAME | --prompt NAME | --resource URI) "
        "[--args JSON] [--annotations JSON] [--server NAME] [--backend NAME] [--backend-name NAME] [--entities] "
        "[--format text|json]",
        description="Decide one MCP request for the caller whose token claims are given, and print ALLOW or DENY "
        "with the deciding policies. Exit 0 on allow, 3 on deny, 1 on bad input (file, claims, JSON), 2 on bad "
        "usage. Claims are taken as given: no signature, issuer, audience or expiry check.",
    )
    c.add_argument("file", metavar="FILE", help="authz config (JSON, or YAML when the name ends in .yaml/.yml)")
    c.add_argument(
        "--claims",
        required=True,
        metavar="CLAIMS",
        help="the caller's token claims as a JSON object: a file, `-` for stdin, or inline JSON starting with `{`; "
        '`sub` is required (the principal is Client::"<sub>")',
    )
    what = c.add_mutually_exclusive_group(required=True)
    what.add_argument("--tool", metavar="NAME", help='decide call_tool on Tool::"NAME" (tools/call)')
    what.add_argument("--prompt", metavar="NAME", help='decide get_prompt on Prompt::"NAME" (prompts/get)')
    what.add_argument("--resource", metavar="URI", help='decide read_resource on Resource::"URI" (resources/read)')
    c.add_argument(
        "--args",
        metavar="JSON",
        help="tool or prompt arguments as a JSON object; policies read them as resource.arg_<key>",
    )
    c.add_argument(
        "--annotations",
        metavar="JSON",
        help="the tool's annotations as a JSON object (readOnlyHint, destructiveHint, idempotentHint, "
        "openWorldHint); with --tool only",
    )
    c.add_argument(
        "--server",
        metavar="NAME",
        help="the MCP server's workload name (`hivegate run --name`; by default derived from the command or URL, "
        f'e.g. "weather" for `-- python weather.py`); every resource\'s parent is MCP::"NAME" '
        f"(default: {DEFAULT_SERVER})",
    )
    c.add_argument(
        "--backend",
        metavar="NAME",
        help="behind a virtual MCP server (its name is --server): the backend the tool, prompt or resource comes "
        'from; its parent is then MCP::"NAME", itself in the server',
    )
    c.add_argument(
        "--backend-name",
        metavar="NAME",
        help="with --backend: the backend's own name for it (resource.backendName; default: the name decided)",
    )
    c.add_argument(
        "--entities",
        action="store_true",
        help="also print the request as Cedar sees it: principal, action, resource, context and every entity",
    )
    c.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    add_test_parser(sub2)
    add_replay_parser(sub2)
    return p


def authz_command(args: argparse.Namespace) -> int:
    """Run `hivegate authz validate` or `check`; returns the process exit code."""
    prog = f"hivegate authz {args.authz_command}"
    if args.authz_command == "test":
        return test_command(args)
    if args.authz_command == "replay":
        return replay_command(args)
    try:
        if args.authz_command == "validate":
            return _validate(args)
        return _check(args, prog)
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1


def _load(path: str, server: str) -> tuple[AuthzConfig, list[CompiledPolicy], CedarAuthorizer]:
    """Load and compile `path` exactly as the gateway does; every problem is a `ConfigError` naming the file."""
    from hivegate.authz import CedarAuthorizer, load_authz_config
    from hivegate.authz.cedar import compile_policies

    cfg = load_authz_config(path)
    try:
        return cfg, compile_policies(cfg.cedar.policies), CedarAuthorizer.from_config(cfg, server)
    except ConfigError as exc:
        raise ConfigError(f"authz config {path}: {exc}") from None


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _validate(args: argparse.Namespace) -> int:
    from hivegate.authz import validate_policies

    if args.file is None and args.config is None:
        print("hivegate authz validate: error: give FILE, or --config VMCP.yaml", file=sys.stderr)
        return 2
    vmcp = None
    if args.config is not None:
        from hivegate.vmcp.spec import load_vmcp_config

        vmcp = load_vmcp_config(args.config)
    cfg, compiled, where = _validated_config(args.file, vmcp, args.config)
    try:
        problems: list[PolicyProblem | NameProblem] = list(validate_policies(cfg))
    except ConfigError as exc:
        raise ConfigError(f"authz config {where}: {exc}") from None
    if vmcp is not None:
        from hivegate.vmcp.policy_names import configured_problems

        problems += configured_problems(vmcp, compiled)
    errors = sum(p.severity == "error" for p in problems)
    warnings = len(problems) - errors
    if args.format == "json":
        report = {
            "policies": len(compiled),
            "errors": errors,
            "warnings": warnings,
            "problems": [
                {"policy_id": p.policy_id, "index": p.index, "severity": p.severity, "message": p.message}
                for p in problems
            ],
        }
        print(json.dumps(report, indent=2))
    else:
        for problem in problems:
            print(problem)
        policies = _count(len(compiled), "policy", "policies")
        print(f"{policies}: {_count(errors, 'error', 'errors')}, {_count(warnings, 'warning', 'warnings')}")
    return 1 if errors else 0


def _validated_config(
    file: str | None, vmcp: VMCPConfig | None, vmcp_path: str | None
) -> tuple[AuthzConfig, list[CompiledPolicy], str]:
    """The authz config validated: FILE, else the virtual MCP server's `incomingAuth.authz`; and where it is from."""
    if file is not None:
        cfg, compiled, _ = _load(file, DEFAULT_SERVER)
        return cfg, compiled, file
    from hivegate.authz.cedar import compile_policies

    authz = vmcp.incoming_auth.authz if vmcp is not None else None
    if authz is None:
        raise ConfigError(f"{vmcp_path}: incomingAuth.authz: not set (no policies to validate); give FILE")
    try:
        return authz, compile_policies(authz.cedar.policies), f"{vmcp_path} incomingAuth.authz"
    except ConfigError as exc:
        raise ConfigError(f"{vmcp_path}: incomingAuth.authz: {exc}") from None


def _json_object(text: str, flag: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{flag}: not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ConfigError(f"{flag}: must be a JSON object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    names = {str: "a string", int: "a number", float: "a number", list: "an array"}
    return names.get(type(value), type(value).__name__)


def _claims(source: str) -> dict[str, Any]:
    if source.lstrip().startswith("{"):
        return _json_object(source, "--claims")
    if source == "-":
        return _json_object(sys.stdin.read(), "--claims (stdin)")
    try:
        with open(source, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"--claims {source}: cannot read: {reason}") from None
    return _json_object(text, f"--claims {source}")


def _principal(claims: dict[str, Any]) -> Principal:
    from hivegate.core.principal import Principal

    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise ConfigError('--claims: a non-empty string `sub` claim is required (the principal is Client::"<sub>")')
    issuer = claims.get("iss")
    return Principal(sub, issuer if isinstance(issuer, str) else "", "jwt", claims)


def _annotations(text: str) -> dict[str, bool]:
    from hivegate.authz.entities import ANNOTATION_HINTS

    value = _json_object(text, "--annotations")
    for hint in ANNOTATION_HINTS:
        if hint in value and not isinstance(value[hint], bool):
            raise ConfigError(f"--annotations: {hint} must be true or false, got {_kind(value[hint])}")
    return {h: value[h] for h in ANNOTATION_HINTS if h in value}


def _check(args: argparse.Namespace, prog: str) -> int:
    action: ActionName
    if args.tool is not None:
        action, name, flag = "call_tool", args.tool, "--tool"
    elif args.prompt is not None:
        action, name, flag = "get_prompt", args.prompt, "--prompt"
    else:
        action, name, flag = "read_resource", args.resource, "--resource"
    for given, allowed in (("--args", ("--tool", "--prompt")), ("--annotations", ("--tool",))):
        if getattr(args, given.removeprefix("--")) is not None and flag not in allowed:
            print(f"{prog}: error: {given} goes with {' or '.join(allowed)}, not {flag}", file=sys.stderr)
            return 2
    if args.backend_name is not None and args.backend is None:
        print(f"{prog}: error: --backend-name goes with --backend", file=sys.stderr)
        return 2
    if not name:
        raise ConfigError(f"{flag}: must not be empty")
    arguments = _json_object(args.args, "--args") if args.args is not None else None
    annotations = _annotations(args.annotations) if args.annotations is not None else None
    principal = _principal(_claims(args.claims))
    cfg, compiled, authorizer = _load(args.file, args.server or DEFAULT_SERVER)
    if args.server is None and any("MCP::" in text for text in cfg.cedar.policies):
        print(
            f'{prog}: note: policies refer to MCP:: servers; deciding for MCP::"{DEFAULT_SERVER}" '
            "(pass --server NAME, the gateway's --name)",
            file=sys.stderr,
        )
    from hivegate.authz.entities import Origin
    from hivegate.authz.explain import describe, why
    from hivegate.authz.gate import decide_call

    origin = Origin(args.backend, args.backend_name or name) if args.backend else None
    decision, _ = decide_call(
        authorizer, principal, action, name, arguments=arguments, annotations=annotations, origin=origin
    )
    entities = (
        authorizer.entity_set(principal, action, name, arguments=arguments, annotations=annotations, origin=origin)
        if args.entities
        else None
    )
    _never_match_note(cfg, args.file, prog)
    if args.format == "json":
        report = {
            "decision": "allow" if decision.allowed else "deny",
            "policies": list(decision.reasons),
            "names": list(decision.named),
            "why": why(decision, action),
            "explanation": describe(decision, action),
            "errors": list(decision.errors),
            **({"entities": entities} if entities is not None else {}),
        }
        print(json.dumps(report, indent=2, default=str))
    else:
        print("\n".join(_explain(decision, action, compiled, cfg.cedar.policies)))
        if entities is not None:
            print("entities: " + json.dumps(entities, indent=2, default=str))
    return 0 if decision.allowed else EXIT_DENY


def _never_match_note(cfg: AuthzConfig, path: str, prog: str) -> None:
    """A surprising answer is often a policy that can never match: point at `validate` when there is one."""
    from hivegate.authz import validate_policies

    errors = [p for p in validate_policies(cfg) if p.severity == "error"]
    if errors:
        which = ", ".join(f"cedar.policies[{p.index}]" for p in errors)
        print(f"{prog}: note: {which} can never match; see `hivegate authz validate {path}`", file=sys.stderr)


def _explain(
    decision: Decision, action: ActionName, compiled: Sequence[CompiledPolicy], texts: Sequence[str]
) -> list[str]:
    from hivegate.authz.explain import describe, why
    from hivegate.authz.teach import guard_hint

    lines = ["ALLOW" if decision.allowed else "DENY"]
    lines.append(f"policies: {', '.join(decision.reasons)}" if decision.reasons else "policies: (none: default deny)")
    by_id = {p.id: p for p in compiled}
    names = dict(zip(decision.reasons, decision.named, strict=True))
    for policy_id in decision.reasons:
        found = by_id.get(policy_id)
        if found is not None:
            named = f" @id({names[policy_id]!r})" if names[policy_id] != policy_id else ""
            lines.append(f"  {policy_id}{named}: {_describe(found, compiled, texts)}")
    if why(decision, action) in ("forbid_error", "scope", "error"):
        lines.append(describe(decision, action))
    lines += [f"error: {e}{guard_hint(e)}" for e in decision.errors]
    return lines


def _describe(policy: CompiledPolicy, compiled: Sequence[CompiledPolicy], texts: Sequence[str]) -> str:
    """`cedar.policies[i]: <first line>`, or its position when one entry holds several policies."""
    siblings = [p.id for p in compiled if p.entry == policy.entry]
    where = f"cedar.policies[{policy.entry}]"
    if len(siblings) > 1:
        return f"{where} (policy {siblings.index(policy.id) + 1} of {len(siblings)} in it)"
    first = next((line.strip() for line in texts[policy.entry].splitlines() if line.strip()), "")
    return f"{where}: {first if len(first) <= _SNIPPET else first[: _SNIPPET - 1] + '…'}"
