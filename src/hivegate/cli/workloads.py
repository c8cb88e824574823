"""`hivegate list`, `logs`, `stop`, `restart`, `rm`, and the background start of `hivegate run` (and of `hivegate vmcp
serve --background`), as ToolHive's `thv` has them. Only the parsers are built at import time, from modules Python
has loaded anyway: the rest is imported by the command that needs it, so `hivegate --help` stays fast."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hivegate.config.run import RunConfig
    from hivegate.workloads import WorkloadRecord, WorkloadStore
    from hivegate.workloads.record import Kind

__all__ = ["COMMANDS", "add_workload_parsers", "start_in_background", "start_workload", "workload_command"]

COMMANDS = ("list", "logs", "stop", "restart", "rm")


def add_workload_parsers(sub: Any) -> None:
    p = sub.add_parser("list", help="list the workloads of `hivegate run` and `vmcp serve -d` (running, crashed)")
    p.add_argument("-a", "--all", action="store_true", help="include stopped workloads")
    p.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    p.add_argument("--group", help="only the workloads of this group (`hivegate run --group`)")
    p = sub.add_parser("logs", help="print a workload's logs: its MCP server's stderr, or with --proxy the gateway's")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until the workload stops")
    p.add_argument("-p", "--proxy", action="store_true", help="the gateway's own log instead of the server's stderr")
    p = sub.add_parser("stop", help="stop a workload (SIGTERM to its processes, SIGKILL after --timeout)")
    p.add_argument("name", metavar="NAME", nargs="?")
    p.add_argument("-a", "--all", action="store_true", help="stop every running workload")
    p.add_argument("--timeout", default="30s", metavar="DURATION", help="grace period before SIGKILL (default 30s)")
    p = sub.add_parser("restart", help="stop a workload if it runs and start it again (same command line and port)")
    p.add_argument("name", metavar="NAME")
    p = sub.add_parser("rm", help="stop a workload if it runs and delete its record and logs")
    p.add_argument("name", metavar="NAME")


def workload_command(args: argparse.Namespace) -> int:
    from hivegate.workloads import StartFailed, WorkloadError, WorkloadStore

    handler: Callable[[argparse.Namespace, WorkloadStore], int] = _HANDLERS[args.command]
    try:
        return handler(args, WorkloadStore.default())
    except StartFailed as exc:
        print(exc.line, file=sys.stderr)
        return exc.code
    except WorkloadError as exc:
        print(f"hivegate {args.command}: error: {exc}", file=sys.stderr)
        return exc.code


def start_in_background(cfg: RunConfig, argv: Sequence[str], *, ready_timeout: float = 15.0) -> int:
    """`hivegate run` without `--foreground`: reserve the name, start the gateway detached, wait until it serves."""
    return start_workload(
        "run", cfg.name, argv, host=cfg.host, port=cfg.port, group=cfg.group, labels=cfg.labels,
        ready_timeout=ready_timeout,
    )  # fmt: skip


def start_workload(
    kind: Kind,
    name: str,
    argv: Sequence[str],
    *,
    host: str,
    port: int,
    group: str = "default",
    labels: tuple[tuple[str, str], ...] = (),
    ready_timeout: float = 15.0,
) -> int:
    """Reserve `name`, start `hivegate run --foreground ARGV` (or `vmcp serve`, by `kind`) detached, and wait until
    it is ready (exit 0) or say why not."""
    from hivegate.workloads import (
        KINDS,
        LIVE,
        StartFailed,
        WorkloadError,
        WorkloadRecord,
        WorkloadStore,
        check_name,
        launch,
        start_time,
        utc_now,
    )

    command = " ".join(KINDS[kind])
    try:
        name = check_name(name)
        store = WorkloadStore.default()
        existing = _existing(store, name, command)
        if existing is not None:
            if existing.status in LIVE:
                where = f" at {existing.url}" if existing.url else ""
                rename = "choose another --name" if kind == "run" else "give the vMCP config another name"
                raise WorkloadError(
                    f"a workload named {name!r} is already running{where}; stop it (`hivegate stop {name}`) or {rename}"
                )
            raise WorkloadError(
                f"a workload named {name!r} exists ({existing.status}): `hivegate restart {name}` starts it again, "
                f"`hivegate rm {name}` removes it"
            )
        if port:
            records, warnings = store.scan()
            _warn(command, warnings)
            for other in records:
                if other.status in LIVE and other.port == port:
                    raise WorkloadError(f"--port {port} is already used by workload {other.name!r} ({other.url})")
        proxy_log, server_log = store.log_paths(name)
        me = os.getpid()
        record = WorkloadRecord(
            name=name,
            status="starting",
            pid=me,  # the name is ours while we start it; pgid None: nothing to signal yet
            pgid=None,
            url=None,
            host=host,
            port=port,
            argv=tuple(argv),
            cwd=os.getcwd(),
            started_at=utc_now(),
            proxy_log=str(proxy_log),
            server_log=str(server_log),
            pid_start=start_time(me),
            group=group,
            labels=labels,
            kind=kind,
        )
        store.create(record)
        record = launch(store, record, fresh=True)
    except StartFailed as exc:
        print(exc.line, file=sys.stderr)
        return exc.code
    except WorkloadError as exc:
        print(f"hivegate {command}: error: {exc}", file=sys.stderr)
        return exc.code
    return _report_running(command, record, ready_timeout)


def _report_running(command: str, record: WorkloadRecord, timeout: float | None = None) -> int:
    """Wait until the started workload is ready; say it runs, or why it cannot serve yet (exit 1, left running)."""
    from hivegate.workloads.health import READY_TIMEOUT, wait_ready

    timeout = READY_TIMEOUT if timeout is None else timeout
    health = wait_ready(record.url or "", timeout)
    if health.ready:
        print(f"{record.name}: running at {record.url} (pid {record.pid})")
        return 0
    print(
        f"hivegate {command}: error: {record.name} runs at {record.url} (pid {record.pid}) but is not ready after "
        f"{timeout:g}s: {health.detail}. `hivegate logs {record.name} --proxy` shows why; "
        f"`hivegate stop {record.name}` stops it",
        file=sys.stderr,
    )
    return 1


def _warn(command: str, warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"hivegate {command}: warning: {warning}", file=sys.stderr)


def _existing(store: WorkloadStore, name: str, command: str) -> WorkloadRecord | None:
    """The record named `name`, refreshed; an unreadable one is removed (with a warning) and counts as none."""
    from hivegate.workloads import CorruptRecord

    try:
        return store.get(name)
    except CorruptRecord as exc:
        _warn(command, [f"removing {exc}"])
        store.delete(name)
        return None


def _lookup(store: WorkloadStore, name: str) -> WorkloadRecord:
    from hivegate.workloads import CorruptRecord, WorkloadError, check_name

    try:
        check_name(name)
        record = store.get(name)
    except CorruptRecord as exc:
        raise WorkloadError(f"{exc} (`hivegate rm {name}` removes it)") from None
    except WorkloadError:
        record = None
    if record is None:
        raise WorkloadError(f"no workload named {name!r}")
    return record


def _list(args: argparse.Namespace, store: WorkloadStore) -> int:
    import json

    from hivegate.workloads.health import readiness

    records, warnings = store.scan()
    _warn("list", warnings)
    shown = records if args.all else [r for r in records if r.status != "stopped"]
    if args.group is not None:
        shown = [r for r in shown if r.group == args.group]
    health = {r.name: readiness(r.url, timeout=1.0) for r in shown if r.status == "running" and r.url}
    if args.format == "json":
        shown_health = {name: {"ready": h.ready, "detail": h.detail} for name, h in health.items()}
        print(json.dumps([{**r.to_dict(), "health": shown_health.get(r.name)} for r in shown], indent=2))
        return 0
    if not shown:
        print("no workloads" if args.all else "no running workloads (`hivegate list -a` shows stopped ones)")
        return 0
    rows = [("NAME", "STATUS", "READY", "URL", "PID", "STARTED")]
    for r in shown:
        live = r.status in ("starting", "running", "stopping")
        h = health.get(r.name)
        ready = "-" if h is None else "ready" if h.ready else f"no: {_shorten(h.detail, 60)}"
        rows.append((r.name, r.status, ready, r.url or "-", str(r.pid) if live else "-", _local_time(r.started_at)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _local_time(iso: str) -> str:
    from datetime import datetime

    try:
        return datetime.fromisoformat(iso).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _logs(args: argparse.Namespace, store: WorkloadStore) -> int:
    import shutil
    from pathlib import Path

    from hivegate.workloads import LIVE, alive, follow

    record = _lookup(store, args.name)
    path = Path(record.proxy_log if args.proxy else record.server_log)
    out = sys.stdout.buffer
    try:
        if args.follow:
            follow(path, out, running=lambda: record.status in LIVE and alive(record.pid, record.pid_start))
        else:
            with contextlib.suppress(FileNotFoundError), path.open("rb") as log:
                shutil.copyfileobj(log, out)
            out.flush()
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:  # `hivegate logs NAME | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _stop_one(store: WorkloadStore, record: WorkloadRecord, timeout: float) -> bool:
    """Stop `record`'s processes and mark it stopped; False when it was not running."""
    from hivegate.workloads import LIVE, WorkloadError, stop_group

    if record.status not in LIVE:
        if record.status != "stopped":
            _remove_containers(record)  # a gateway that crashed did not remove its containers
            store.save(record.with_status("stopped"))
        return False
    if record.pid is None or record.pgid is None:
        raise WorkloadError(f"{record.name!r} is still starting; try again in a moment")
    store.save(record.with_status("stopping"))
    if not stop_group(record.pid, record.pgid, record.pid_start, timeout):
        raise WorkloadError(f"{record.name!r}: processes of group {record.pgid} did not exit")
    _remove_containers(record)  # what the gateway could not remove itself, e.g. when it had to be killed
    store.save(record.with_status("stopped"))
    return True


def _remove_containers(record: WorkloadRecord) -> None:
    """Remove the containers of a container image's workload, found by its gateway's label."""
    from hivegate.backends.container import GATEWAY_LABEL, remove_labelled
    from hivegate.compose.run_container import gateway_id
    from hivegate.workloads import WorkloadError

    if record.pid is None or record.kind != "run":
        return  # a vMCP removes its backends' containers as it stops
    try:
        cfg = _config_of(record)
    except WorkloadError:
        return  # its command line no longer reads (a runtime or file gone): nothing to go by
    if cfg.container is not None:
        remove_labelled(cfg.container.runtime, GATEWAY_LABEL, gateway_id(record.pid, record.pid_start))


def _timeout(text: str) -> float:
    from hivegate.config.durations import parse_duration
    from hivegate.workloads import WorkloadError

    try:
        value = parse_duration(text)
    except ValueError as exc:
        raise WorkloadError(f"--timeout: {exc}", code=2) from None
    if value < 0:
        raise WorkloadError("--timeout must not be negative", code=2)
    return value


def _stop(args: argparse.Namespace, store: WorkloadStore) -> int:
    from hivegate.workloads import LIVE, WorkloadError

    timeout = _timeout(args.timeout)
    if args.all == (args.name is not None):
        raise WorkloadError("give a workload NAME or --all", code=2)
    if args.name is not None:
        record = _lookup(store, args.name)
        stopped = _stop_one(store, record, timeout)
        print(f"{record.name}: {'stopped' if stopped else 'not running'}")
        return 0
    records, warnings = store.scan()
    _warn("stop", warnings)
    running = [r for r in records if r.status in LIVE]
    if not running:
        print("no running workloads")
    failed = 0
    for record in running:
        try:
            _stop_one(store, record, timeout)
        except WorkloadError as exc:
            print(f"hivegate stop: error: {exc}", file=sys.stderr)
            failed = 1
        else:
            print(f"{record.name}: stopped")
    return failed


def _restart(args: argparse.Namespace, store: WorkloadStore) -> int:
    from hivegate.workloads import launch

    record = _lookup(store, args.name)
    _check_can_start(record)
    _stop_one(store, record, 30.0)
    record = (store.get(record.name) or record).with_status("starting")
    store.save(record)
    record = launch(store, record, fresh=False)
    return _report_running("restart", record)


def _check_can_start(record: WorkloadRecord) -> None:
    """Read the workload's command line again, where it was started, as its start would: a secret, file or command
    that has gone is found before the running workload is stopped (`WorkloadError`, exit 2)."""
    from hivegate.workloads import WorkloadError

    try:
        if record.kind == "vmcp":
            _vmcp_config_of(record)
        else:
            _config_of(record)
    except WorkloadError as exc:
        raise WorkloadError(f"{record.name} could not start again, so it is left as it is: {exc}", code=2) from None


def _config_of(record: WorkloadRecord) -> RunConfig:
    """The workload's configuration, read from its command line where it was started (`WorkloadError` why not)."""
    from hivegate.cli.goflags import GoFlagError, go_style
    from hivegate.cli.main import build_parser
    from hivegate.cli.run import config_from_args
    from hivegate.cli.run_target import check_command
    from hivegate.errors import ConfigError
    from hivegate.workloads import WorkloadError

    parser = build_parser()
    try:
        with contextlib.chdir(record.cwd):
            args = parser.parse_args(go_style(parser, ["run", *record.argv]))
            if args.file:  # `run -f`: the manifest's resource, checked as its start checks it
                from hivegate.cli.run_file import file_configs

                _, configs = file_configs(args, record.argv, foreground=True)
                cfg = configs[0]
            else:
                cfg = config_from_args(args)
                if cfg.command:
                    check_command(cfg.command, cfg.env)
    except (ConfigError, GoFlagError, OSError) as exc:
        raise WorkloadError(f"{record.cwd}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)) from None
    return cfg


def _vmcp_config_of(record: WorkloadRecord) -> None:
    """Load a vMCP workload's configuration from its command line where it was started (`WorkloadError` why not)."""
    from hivegate.cli.goflags import GoFlagError, go_style
    from hivegate.cli.main import build_parser
    from hivegate.cli.vmcp import check_config, load_config
    from hivegate.errors import ConfigError
    from hivegate.workloads import WorkloadError

    parser = build_parser()
    try:
        with contextlib.chdir(record.cwd):
            args = parser.parse_args(go_style(parser, ["vmcp", "serve", *record.argv]))
            check_config(load_config(args))
    except (ConfigError, GoFlagError, OSError) as exc:
        raise WorkloadError(f"{record.cwd}: {exc.strerror}" if isinstance(exc, OSError) else str(exc)) from None


def _rm(args: argparse.Namespace, store: WorkloadStore) -> int:
    from hivegate.workloads import CorruptRecord, WorkloadError, check_name

    try:
        check_name(args.name)
        record = store.get(args.name)
    except CorruptRecord as exc:
        _warn("rm", [f"removing {exc}"])
        logs = [str(p) for p in store.log_paths(args.name)]
    except WorkloadError:
        raise WorkloadError(f"no workload named {args.name!r}") from None
    else:
        if record is None:
            raise WorkloadError(f"no workload named {args.name!r}")
        _stop_one(store, record, 30.0)
        logs = [record.proxy_log, record.server_log]
    store.delete(args.name)
    for path in logs:
        with contextlib.suppress(OSError):
            os.unlink(path)
    print(f"{args.name}: removed")
    return 0


_HANDLERS: dict[str, Callable[[argparse.Namespace, WorkloadStore], int]] = {
    "list": _list,
    "logs": _logs,
    "stop": _stop,
    "restart": _restart,
    "rm": _rm,
}
