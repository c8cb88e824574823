"""Backends the virtual MCP server starts itself and then reaches over HTTP: a local command that listens on its
`url` (`hivegate.dev/command` with an HTTP transport), or a container image run with Docker or Podman and published
on a loopback port.

The container's command line is `hivegate.backends.container`'s, and the process is a `Launched`.
"""

from __future__ import annotations

from hivegate.backends.container import WORKLOAD_LABEL, ContainerRun, run_argv
from hivegate.backends.launched import Launched, free_port
from hivegate.vmcp.spec import BackendConfig

__all__ = ["launched_for"]


def launched_for(backend: BackendConfig) -> Launched | None:
    """The process to start for `backend` (None for a stdio or already running one)."""
    if backend.kind == "launched":
        assert backend.command is not None
        assert backend.url is not None
        return Launched(backend.name, [backend.command, *backend.args], backend.url, backend.env)
    if backend.kind == "container":
        spec = backend.container
        assert spec is not None
        host_port = free_port()
        path = "/sse" if backend.transport == "sse" else "/mcp"
        run = ContainerRun(spec.runtime, spec.image, spec.args, tuple(spec.env), stdio=False, port=spec.port)
        argv = run_argv(run, labels=[(WORKLOAD_LABEL, backend.name)], host_port=host_port)
        return Launched(backend.name, argv, f"http://127.0.0.1:{host_port}{path}", spec.env)
    return None
