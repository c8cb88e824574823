"""Backends the vMCP starts itself: the container command line, waiting for the port, a process that dies early."""

from __future__ import annotations

import sys

import pytest

from hivegate.backends.container import ContainerRun, run_argv
from hivegate.backends.launched import Launched
from hivegate.errors import BackendError
from hivegate.vmcp.launch import launched_for
from hivegate.vmcp.spec import BackendConfig, ContainerSpec
from support.backend import closed_port, free_port

pytestmark = pytest.mark.anyio


def test_a_container_is_published_on_loopback_and_gets_env_by_name_only() -> None:
    run = ContainerRun("docker", "ghcr.io/x/y:1", ("serve", "--http"), ("TOKEN",), stdio=False, port=8080)
    argv = run_argv(run, host_port=40001)
    assert argv == ["docker", "run", "--rm", "--init", "-p", "127.0.0.1:40001:8080", "--read-only", "--tmpfs", "/tmp",
                    "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
                    "-e", "TOKEN", "ghcr.io/x/y:1", "serve", "--http"]  # fmt: skip


def test_a_container_backend_is_reached_on_the_published_port() -> None:
    spec = ContainerSpec("podman", "img", 3000, env={"TOKEN": "s3cret"})
    launched = launched_for(BackendConfig("c", "streamable-http", container=spec))
    assert launched is not None
    assert launched.url.startswith("http://127.0.0.1:")
    assert launched.url.endswith("/mcp")
    assert "s3cret" not in " ".join(launched._argv)


def test_stdio_and_remote_backends_are_not_launched() -> None:
    assert launched_for(BackendConfig("s", "stdio", command="x")) is None
    assert launched_for(BackendConfig("r", url="http://127.0.0.1:1/mcp")) is None


async def test_it_waits_until_the_port_listens_and_stop_ends_it() -> None:
    port = free_port()
    code = (
        f"import time,socket;time.sleep(0.3);s=socket.socket();s.bind(('127.0.0.1',{port}));s.listen();time.sleep(60)"
    )
    launched = Launched("late", [sys.executable, "-c", code], f"http://127.0.0.1:{port}/mcp", {})
    await launched.ensure_running(10)
    assert launched.running
    await launched.stop()
    assert not launched.running


async def test_a_process_that_exits_early_names_its_exit_code_and_last_words() -> None:
    code = "import sys; print('cannot bind: address in use'); sys.exit(3)"
    launched = Launched("dies", [sys.executable, "-c", code], f"http://127.0.0.1:{closed_port()}/mcp", {})
    with pytest.raises(BackendError, match=r"exited with 3 before listening: cannot bind: address in use"):
        await launched.ensure_running(10)


async def test_a_missing_command_is_a_backend_error() -> None:
    launched = Launched("none", ["/no/such/binary"], "http://127.0.0.1:1/mcp", {})
    with pytest.raises(BackendError, match="cannot start '/no/such/binary'"):
        await launched.ensure_running(5)
