"""The `thv run` flags that hivegate has no use for, each refused with its own reason, and ToolHive's spellings of
what it does have (`--env-file`, `--env-file-dir`, `--isolate-network`, `--target-host`, `--otel-insecure`,
`--otel-tracing-enabled`, `--otel-metrics-enabled`, `--image-verification`, `--debug`).

Every flag of `thv run` (ToolHive's CLI reference) is known to the parser, so a command line written for `thv`
never meets argparse's "unrecognized arguments": a flag either works, or `refuse_thv_flags` says in one line
which flag it is and why hivegate does not do it. The refused ones are hidden from `--help`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hivegate.errors import ConfigError

__all__ = ["REFUSED", "add_thv_flags", "env_files", "go_bool", "refuse_thv_flags"]

_REMOTE_AUTH = (
    "hivegate does not log in to a remote server in a browser; give the remote its credential with "
    "--remote-forward-headers-secret, --token-exchange-url or --upstream-inject"
)
_OVERLAYS = "hivegate mounts no .thvignore overlays: a --volume is mounted as given"
# flag: (takes a value, why it is refused)
REFUSED: dict[str, tuple[bool, str]] = {
    "--from-config": (True, "hivegate has no `thv export` file; keep the flags in a script, or use `run -f MANIFEST`"),
    "--ca-cert": (True, "hivegate builds no images for npx://, uvx:// and go://: it runs them on this machine"),
    "--tools-override": (True, "renaming tools is done by a vMCP (aggregation.tools[].overrides in its config)"),
    "--otel-env-vars": (True, "environment variables are never copied into spans here"),
    "--otel-enable-prometheus-metrics-path": (
        False,
        "metrics are never served on the MCP port here; serve /metrics on --diagnostics-port",
    ),
    "--trust-proxy-headers": (
        False,
        "hivegate never builds its public URL from X-Forwarded-* headers; give it with --resource-url",
    ),
    "--ignore-globally": (False, _OVERLAYS),
    "--print-resolved-overlays": (False, _OVERLAYS),
    "--remote-auth": (False, _REMOTE_AUTH),
    "--remote-auth-skip-browser": (False, _REMOTE_AUTH),
    **{
        f"--remote-auth-{name}": (True, _REMOTE_AUTH)
        for name in (
            "authorize-url",
            "callback-port",
            "client-id",
            "client-secret",
            "client-secret-file",
            "issuer",
            "scopes",
            "timeout",
            "token-url",
        )
    },
}


def add_thv_flags(p: argparse._ActionsContainer) -> None:
    """The `thv run` spellings hivegate takes, and the refused flags (hidden)."""
    p.add_argument(
        "--env-file",
        action="append",
        default=[],
        metavar="FILE",
        help="KEY=VALUE lines for the server's environment (# comments; -e overrides)",
    )
    p.add_argument(
        "--env-file-dir", metavar="DIR", help="every file in DIR is an --env-file (in name order; -e overrides)"
    )
    p.add_argument(
        "--isolate-network",
        action="store_true",
        help="a container image's stdio server gets no network at all (thv's egress proxy with allowed hosts "
        "is not implemented: a profile that allows network is refused with it)",
    )
    p.add_argument(
        "--target-host",
        metavar="HOST",
        help="where a container's HTTP server is reached: 127.0.0.1 (its published port), the only choice here",
    )
    p.add_argument("--otel-insecure", action="store_true", help="an --otel-endpoint without a scheme uses http")
    for flag, what in (("tracing", "export traces (default true)"), ("metrics", "false: no OTLP metrics")):
        p.add_argument(
            f"--otel-{flag}-enabled",
            nargs="?",
            const="true",
            metavar="BOOL",
            help=what if flag == "tracing" else f"{what}; hivegate exports traces only (metrics: --diagnostics-port)",
        )
    p.add_argument(
        "--image-verification",
        choices=("warn", "enabled", "disabled"),
        help="hivegate does not verify image signatures: enabled is refused; warn and disabled run the image as is",
    )
    p.add_argument("--debug", dest="log_level", action="store_const", const="debug", help="--log-level debug")
    for flag, (value, _) in REFUSED.items():
        p.add_argument(flag, action="store" if value else "store_true", help=argparse.SUPPRESS)


def refuse_thv_flags(args: argparse.Namespace) -> None:
    """`ConfigError` naming the first `thv run` flag given that hivegate does not do, and why."""
    for flag, (_, why) in REFUSED.items():
        if getattr(args, flag[2:].replace("-", "_")):
            raise ConfigError(f"{flag} (a thv run flag): {why}")
    if args.image_verification == "enabled":
        raise ConfigError(
            "--image-verification enabled: hivegate does not verify image signatures or provenance; check the image "
            "(e.g. with cosign) before running it, then run it with --image-verification disabled"
        )
    if args.target_host is not None and args.target_host not in ("127.0.0.1", "localhost"):
        raise ConfigError(
            f"--target-host {args.target_host}: a container's HTTP server is reached on its port published on "
            "127.0.0.1; to front a server elsewhere, give its URL as the target"
        )
    if args.otel_metrics_enabled is not None and go_bool(args.otel_metrics_enabled, "--otel-metrics-enabled"):
        raise ConfigError(
            "--otel-metrics-enabled: hivegate exports traces over OTLP, not metrics; scrape /metrics on "
            "--diagnostics-port, or pass --otel-metrics-enabled=false"
        )


def go_bool(value: str | None, flag: str, *, default: bool = True) -> bool:
    """A Go-style boolean flag value (`--flag`, `--flag=false`, …); None: not given."""
    if value is None:
        return default
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ConfigError(f"{flag}: expected true or false, got {value[:40]!r}")


def env_files(files: list[str], folder: str | None) -> dict[str, str]:
    """The environment in `--env-file` files and the files of `--env-file-dir`, later files overriding earlier."""
    paths = [Path(f) for f in files]
    if folder is not None:
        try:
            paths += sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith("."))
        except OSError as exc:
            raise ConfigError(f"--env-file-dir {folder}: {exc.strerror or exc}") from None
    env: dict[str, str] = {}
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise ConfigError(f"--env-file {path}: {reason}") from None
        for number, raw in enumerate(lines, start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.removeprefix("export ").partition("=")
            key, value = key.strip(), value.strip()
            if not sep or not key.replace("_", "a").isalnum() or key[0].isdigit():
                raise ConfigError(f"--env-file {path}:{number}: expected KEY=VALUE")
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key] = value
    return env
