"""`--workers N|auto` of `hivegate run` and `hivegate vmcp serve`: the flag, and what a worker sets up for itself."""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
from typing import TYPE_CHECKING, Any

from hivegate.errors import ConfigError

if TYPE_CHECKING:
    from hivegate.asgi.prefork import Worker
    from hivegate.asgi.types import ASGIApp
    from hivegate.authserver.settings import AuthServerConfig

__all__ = ["add_workers_flag", "become_worker", "check_auth_server", "route_sessions", "workers_of"]


def add_workers_flag(group: Any) -> None:
    group.add_argument(
        "--workers",
        default="1",
        metavar="N|auto",
        help="serve with N processes sharing the port (auto: one per CPU core; default 1); a session stays in the "
        "worker that opened it",
    )


def workers_of(args: argparse.Namespace) -> int:
    from hivegate.asgi.prefork import parse_workers

    return parse_workers(args.workers)


def check_auth_server(workers: int, auth_server: AuthServerConfig | None) -> None:
    """Several workers must issue and check the same tokens: the embedded authorization server then needs keys
    of its own and a store the workers share (sqlite, the default, or redis)."""
    if workers <= 1 or auth_server is None:
        return
    if auth_server.storage.type == "memory":
        raise ConfigError(
            "--workers: the embedded authorization server's storage.type memory is not shared by workers; "
            "use sqlite (the default) or redis"
        )
    if not auth_server.signing_keys or not auth_server.hmac_keys:
        raise ConfigError(
            "--workers: every worker must sign with the same keys: give the embedded authorization server "
            "signingKeySecretRefs and hmacSecretRefs"
        )


def become_worker(worker: Worker) -> None:
    """In worker `worker`, before its gateway is built: the ids of its sessions name it, and the event ids it seals
    open at every worker (`Last-Event-ID` may come to another one)."""
    from hivegate.asgi.affinity import session_prefix
    from hivegate.backends.registry import set_session_id_prefix
    from hivegate.pipeline.events import share_key

    set_session_id_prefix(session_prefix(worker.index))
    share_key(worker.secret)


def route_sessions(worker: Worker, app: ASGIApp, public: socket.socket) -> tuple[ASGIApp, socket.socket]:
    """`app` behind the router that hands other workers' sessions to them, and the worker's private socket (bound
    here) to serve alongside the public ones."""
    from hivegate.asgi.affinity import AffinityRouter

    path = worker.socket_path(worker.index)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by this worker's predecessor
    private = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    private.bind(path)
    private.listen(512)
    private.set_inheritable(False)
    host, port = public.getsockname()[:2]
    return AffinityRouter(app, worker, (host, port)), private
