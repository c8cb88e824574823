"""An MCP server in a container, run with Docker or Podman: which runtime, the `run` command line, and removing what
a gateway left running.

Both runtimes take the same `run` flags, so one command line serves both. What it always says:
- `--rm`, and `--label hivegate.workload=NAME --label hivegate.gateway=ID`: the container is removed when it stops,
  and the gateway that started it (`ID`, the gateway process's pid and start time) finds and removes it at shutdown,
  and `hivegate stop` after a crash (`remove_labelled`).
- `--read-only --tmpfs /tmp`, `--cap-drop ALL`, `--security-opt no-new-privileges`: a read-only root with a
  writable `/tmp`; writable places are given with `--volume`.
- `-e NAME` for each variable: the values reach the runtime in its environment, never on its command line (where
  `ps` would show them).
- a stdio server runs with `-i` (stdin attached, no TTY); an HTTP server is published on `127.0.0.1` only.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from hivegate.errors import ConfigError

__all__ = [
    "GATEWAY_LABEL",
    "RUNTIMES",
    "WORKLOAD_LABEL",
    "ContainerRun",
    "Mount",
    "container_name",
    "find_runtime",
    "remove",
    "remove_labelled",
    "run_argv",
]

logger = logging.getLogger("hivegate.backend.container")

RUNTIMES = ("docker", "podman")
WORKLOAD_LABEL = "hivegate.workload"
GATEWAY_LABEL = "hivegate.gateway"
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class Mount:
    """A host path bound into the container (`-v host:container[:ro]`)."""

    host: str
    container: str
    read_only: bool = False

    def flag(self) -> str:
        return f"{self.host}:{self.container}{':ro' if self.read_only else ''}"


@dataclass(frozen=True, slots=True)
class ContainerRun:
    """What to run: `image` with `args`, and how (see the module docstring for what every container gets)."""

    runtime: str  # the docker or podman executable
    image: str
    args: tuple[str, ...] = ()
    env_names: tuple[str, ...] = ()  # passed as `-e NAME`; the values are in the runtime's environment
    mounts: tuple[Mount, ...] = ()
    network: str | None = None  # None: the runtime's default network
    stdio: bool = True  # `-i`; False: an HTTP server on `port`
    port: int = 8080  # the port an HTTP server listens on inside the container
    read_only: bool = True

    @property
    def runtime_name(self) -> Literal["docker", "podman"]:
        return "podman" if os.path.basename(self.runtime).startswith("podman") else "docker"


def find_runtime(preferred: str | None = None, *, path: str | None = None) -> str:
    """The runtime executable: `preferred` (docker or podman), else docker, else podman, found on `path` (default:
    this process's `PATH`); `ConfigError` in one line when there is none."""
    names = (preferred,) if preferred else RUNTIMES
    for name in names:
        found = shutil.which(name, path=path)
        if found is not None:
            return found
    if preferred:
        raise ConfigError(f"--runtime {preferred}: {preferred} is not installed (not found on PATH)")
    raise ConfigError(
        "running a container image needs Docker or Podman, and neither `docker` nor `podman` is on PATH; install "
        "one, or give the server's command after -- or its URL"
    )


def container_name(workload: str, suffix: str) -> str:
    """A container name for a session of `workload` (`hivegate-WORKLOAD-SUFFIX`, in the characters runtimes take)."""
    return "hivegate-" + _NOT_NAME.sub("-", f"{workload}-{suffix}").strip("-.")


def run_argv(
    run: ContainerRun,
    *,
    name: str | None = None,
    labels: Sequence[tuple[str, str]] = (),
    host_port: int | None = None,
) -> list[str]:
    """The `run` command line for `run`, named `name`, labelled, and for an HTTP server published on
    `127.0.0.1:host_port`."""
    argv = [run.runtime, "run", "--rm"]
    argv += ["-i"] if run.stdio else ["--init", "-p", f"127.0.0.1:{host_port}:{run.port}"]
    if name is not None:
        argv += ["--name", name]
    for key, value in labels:
        argv += ["--label", f"{key}={value}"]
    if run.network is not None:
        argv += ["--network", run.network]
    if run.read_only:
        argv += ["--read-only", "--tmpfs", "/tmp"]  # noqa: S108 - the container's own /tmp, a fresh tmpfs
    argv += ["--cap-drop", "ALL", "--security-opt", "no-new-privileges"]
    for mount in run.mounts:
        argv += ["-v", mount.flag()]
    for env_name in run.env_names:
        argv += ["-e", env_name]
    return [*argv, run.image, *run.args]


def remove_labelled(runtime: str, label: str, value: str, *, timeout: float = 30.0) -> int:
    """Remove (`rm -f`) every container of `runtime` labelled `label=value`, running or not; the number removed.
    Blocking: from async code, run it in a thread. A runtime that cannot answer is logged, not raised: cleanup
    must not stop the rest of a shutdown."""
    try:
        listed = subprocess.run(
            [runtime, "ps", "-aq", "--filter", f"label={label}={value}"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        ids = listed.stdout.split()
        if listed.returncode != 0:
            logger.warning("%s ps failed: %s", runtime, listed.stderr.strip()[:300])
            return 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("cannot list the containers labelled %s=%s: %s", label, value, exc)
        return 0
    remove(runtime, ids, timeout=timeout)
    return len(ids)


def remove(runtime: str, containers: Sequence[str], *, timeout: float = 30.0) -> None:
    """`rm -f` the `containers` (ids or names); one already gone is no error. Blocking, and never raises."""
    if not containers:
        return
    try:
        subprocess.run([runtime, "rm", "-f", *containers], capture_output=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("cannot remove the containers %s: %s", ", ".join(containers), exc)
