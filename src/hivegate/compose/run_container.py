"""`hivegate run IMAGE`'s backend: the containers of one gateway, labelled with its identity, and removed with it.

A stdio image is a `ContainerStdioTransport` per client session. An HTTP image is one container (a `Launched`
runtime client) published on a free loopback port, started before the gateway serves and started again by the
readiness check when it has exited. At shutdown every container labelled with this gateway's identity is removed,
whatever state its session left it in; `hivegate stop` does the same for a gateway that died (`gateway_id`).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace

from hivegate.backends.container import GATEWAY_LABEL, WORKLOAD_LABEL, ContainerRun, remove_labelled, run_argv
from hivegate.backends.container_stdio import ContainerStdioTransport
from hivegate.backends.launched import Launched, free_port
from hivegate.backends.transport import TransportFactory
from hivegate.compose.lifecycle import Lifecycle
from hivegate.config.run import RunConfig
from hivegate.errors import BackendError
from hivegate.workloads.process import start_time

__all__ = ["START_TIMEOUT", "container_backend", "gateway_id", "stdio_factory"]

logger = logging.getLogger("hivegate")

START_TIMEOUT = 60.0  # an image may be pulled on its first run


def gateway_id(pid: int, started: int | None) -> str:
    """The `hivegate.gateway` label of the containers the gateway process `pid` (started at `started`) runs."""
    return f"{pid}-{started}"


def _labels(cfg: RunConfig) -> list[tuple[str, str]]:
    me = os.getpid()
    return [(WORKLOAD_LABEL, cfg.name), (GATEWAY_LABEL, gateway_id(me, start_time(me)))]


def stdio_factory(cfg: RunConfig, run: ContainerRun) -> TransportFactory:
    """A new container per session (`run -i --rm --name hivegate-NAME-… --label …`)."""
    labels, env, name = _labels(cfg), cfg.env, cfg.name
    return lambda: ContainerStdioTransport(run, labels=labels, env=env or None, name=name)


def container_backend(cfg: RunConfig, lifecycle: Lifecycle) -> tuple[RunConfig, Callable[[], Awaitable[str | None]]]:
    """`cfg` with the URL of its HTTP container (unchanged for a stdio image), and the backend's readiness check.
    Registers the removal of this gateway's containers at shutdown (before anything built earlier closes)."""
    run = cfg.container
    assert run is not None
    labels = _labels(cfg)
    gateway = labels[1][1]

    async def remove_all() -> None:
        removed = await asyncio.to_thread(remove_labelled, run.runtime, GATEWAY_LABEL, gateway)
        if removed:
            logger.info("%s: removed %d container(s) left running", cfg.name, removed)

    lifecycle.on_shutdown(remove_all)
    if run.stdio:

        async def runtime_found() -> str | None:
            return None if os.access(run.runtime, os.X_OK) else f"container runtime {run.runtime!r} not found"

        return cfg, runtime_found
    port = free_port()
    url = f"http://127.0.0.1:{port}{'/sse' if cfg.transport == 'sse' else '/mcp'}"
    argv = run_argv(run, labels=labels, host_port=port)
    launched = Launched(cfg.name, argv, url, cfg.env)
    lifecycle.on_shutdown(launched.stop)  # before remove_all: the runtime client first, then what it left

    async def start() -> None:
        try:
            await launched.ensure_running(START_TIMEOUT)
        except BackendError as exc:  # said by the readiness check (and `hivegate run` in the background)
            logger.error("%s: the container of %s did not start: %s", cfg.name, run.image, exc)

    async def serving() -> str | None:
        try:
            await launched.ensure_running(START_TIMEOUT)
        except BackendError as exc:
            return f"container {run.image}: {exc}"
        return None

    lifecycle.startup.append(start)
    return replace(cfg, url=url), serving
