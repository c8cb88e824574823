"""Serve an ASGI app with uvicorn on a socket we bind ourselves (so port 0 works and the URL can be printed)."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import uvicorn

from hivegate.asgi.connections import ConnectionLimits, guarded_protocol, raise_open_files_limit
from hivegate.asgi.types import ASGIApp

__all__ = ["bind", "run", "serve"]


def bind(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket; raises OSError with the OS's reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio enables TCP_NODELAY on accepted connections only when the listening socket
    # says it is TCP; without it every response that uvicorn writes in two parts waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.listen(2048)
    sock.set_inheritable(False)  # never in a stdio server's process: it could accept() the gateway's callers
    return sock


async def serve(
    app: ASGIApp,
    sock: socket.socket | list[socket.socket],
    *,
    log_level: str,
    on_ready: Callable[[], None],
    connections: ConnectionLimits | None = None,
    listening: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Serve `app` on one or more bound sockets (the app tells them apart by `scope["server"]`), within
    `connections` (default limits when None; see `asgi.connections`). Once the sockets listen, `listening` runs, then
    `on_ready`."""
    limits = connections or ConnectionLimits()
    open_files = raise_open_files_limit()
    if not limits.max_connections:
        # each connection may also hold a backend connection or a stdio child's pipes: leave room for those
        limits.max_connections = max(64, open_files // 4)
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    config = uvicorn.Config(
        app,
        lifespan="on",
        loop=loop,
        http=guarded_protocol(limits),
        log_level=log_level,
        log_config=None,  # uvicorn's own lines go through the gateway's handler: one format (JSON or text) for all
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets: list[socket.socket] | None = None) -> None:
        await original_startup(sockets=sockets)
        if not server.should_exit:
            if listening is not None:
                await listening()
            on_ready()

    server.startup = startup  # type: ignore[method-assign]
    await server.serve(sockets=sock if isinstance(sock, list) else [sock])


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop when it is installed (uvicorn's `loop=` setting only applies to `uvicorn.run`)."""
    if importlib.util.find_spec("uvloop"):
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(main)
    else:
        asyncio.run(main)
