"""FastMCP's multi-server proxy as a peer to measure against: its own virtual environment, its config, its process.

The environment lives in ``benchmarks/.peers/fastmcp-venv`` (git-ignored) and is created on first use with
``python -m venv`` and ``pip install fastmcp``; later runs reuse it. The proxy is ``fastmcp run mcp.json --transport
http``: every server in the ``mcpServers`` file becomes tools named ``{server}_{tool}``, as in the virtual MCP server
with ``conflictResolution: prefix``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness import BENCH_DIR, HOST, ManagedProcess, Processes, free_port, wait_for_port

__all__ = ["DEFAULT_VENV", "ensure_venv", "start_proxy"]

DEFAULT_VENV = BENCH_DIR / ".peers" / "fastmcp-venv"
# No update check, no banner: nothing leaves the machine and stdout stays quiet.
QUIET_ENV = {"FASTMCP_CHECK_FOR_UPDATES": "off", "FASTMCP_SHOW_SERVER_BANNER": "false"}


def _version(python: Path) -> str | None:
    done = subprocess.run(
        [str(python), "-c", "import fastmcp; print(fastmcp.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def ensure_venv(venv: Path, requirement: str = "fastmcp") -> str:
    """Create ``venv`` with ``requirement`` installed unless it already has fastmcp; return fastmcp's version."""
    python = venv / "bin" / "python"
    if python.exists() and (venv / "bin" / "fastmcp").exists():
        version = _version(python)
        if version is not None:
            return version
    print(f"creating {venv} with `pip install {requirement}` (first use; about a minute) ...", file=sys.stderr)
    venv.parent.mkdir(parents=True, exist_ok=True)
    steps = (
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "-q", requirement],
    )
    for argv in steps:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
            raise RuntimeError(f"`{' '.join(argv)}` exited {done.returncode}:\n{tail}")
    version = _version(python)
    if version is None:
        raise RuntimeError(f"fastmcp does not import in {venv} after installing {requirement!r}")
    return version


def write_config(path: Path, servers: Mapping[str, Sequence[str]]) -> None:
    """An ``mcp.json``: one stdio server per entry (name -> argv)."""
    entries = {name: {"command": argv[0], "args": list(argv[1:])} for name, argv in servers.items()}
    path.write_text(json.dumps({"mcpServers": entries}, indent=2))


def start_proxy(procs: Processes, venv: Path, servers: Mapping[str, Sequence[str]]) -> tuple[str, ManagedProcess]:
    """Start ``fastmcp run mcp.json --transport http`` in front of ``servers``; return its MCP URL and process."""
    config = procs.log_dir / "fastmcp-mcp.json"
    write_config(config, servers)
    port = free_port()
    argv = [str(venv / "bin" / "fastmcp"), "run", str(config), "--transport", "http"]
    argv += ["--host", HOST, "--port", str(port), "--path", "/mcp", "--no-banner", "--log-level", "WARNING"]
    proc = procs.start("fastmcp-proxy", argv, env=QUIET_ENV)
    wait_for_port(port, timeout=120, proc=proc)  # --log-level WARNING: it prints no URL, --path fixes it
    return f"http://{HOST}:{port}/mcp", proc
