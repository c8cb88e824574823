"""`hivegate run IMAGE`: the container flags of `thv run` (`--runtime`, `-v/--volume`, `--network`,
`--permission-profile`, `--target-port`, `--isolate-network`) turned into a `ContainerRun`.

Network, as ToolHive's permission profiles say it, failing closed:
- a stdio server gets no network (`--network none`) unless `--permission-profile network` (or a profile file with
  `network.outbound.insecure_allow_all: true`) or an explicit `--network NAME` allows it;
- an HTTP server (`--transport streamable-http|sse`) is published on a loopback port, which needs the runtime's
  network: a profile without network, `--network none` and `--network host` are refused for it rather than
  quietly not applied.
`-e KEY=VALUE` reaches the container as `-e KEY`; `-e KEY` without a value is refused (as for a command), so nothing
of this machine's environment reaches the container unless it is named with its value.
"""

from __future__ import annotations

import argparse

from hivegate.backends.container import ContainerRun, find_runtime
from hivegate.backends.permissions import load_profile, parse_mount
from hivegate.errors import ConfigError

__all__ = ["CONTAINER_FLAGS", "container_run", "refuse_container_flags"]

DEFAULT_TARGET_PORT = 8080
# (flag, attribute): the flags that only mean something for an image
CONTAINER_FLAGS = (
    ("--runtime", "runtime"),
    ("--volume", "volume"),
    ("--network", "network"),
    ("--permission-profile", "permission_profile"),
    ("--target-port", "target_port"),
    ("--isolate-network", "isolate_network"),
)


def refuse_container_flags(args: argparse.Namespace, target: str) -> None:
    """`ConfigError` for the first container flag given with a command or URL `target`."""
    for flag, attr in CONTAINER_FLAGS:
        if getattr(args, attr):
            raise ConfigError(
                f"{flag} is for a container image, and {target} is not one: hivegate runs a command as a process "
                "on this machine and reaches a URL as it is"
            )


def container_run(
    args: argparse.Namespace, image: str, image_args: tuple[str, ...], env_names: tuple[str, ...], transport: str
) -> ContainerRun:
    """The container to run `image` with, from the flags in `args` (the runtime found now, on this `PATH`)."""
    stdio = transport == "stdio"
    if args.target_port is not None:
        if stdio:
            raise ConfigError("--target-port is the port an HTTP server listens on: give --transport streamable-http")
        if not 0 < args.target_port < 65536:
            raise ConfigError(f"--target-port must be between 1 and 65535 (got {args.target_port})")
    profile = load_profile(args.permission_profile or ("none" if stdio else "network"))
    network: str | None = None
    if args.network is not None:
        network = args.network.strip()
        if not network:
            raise ConfigError("--network: give a network name (e.g. bridge, host, none)")
        if args.permission_profile and not profile.network and network != "none":
            raise ConfigError(
                f"--network {network} contradicts --permission-profile {args.permission_profile}, which allows no "
                "network: drop one"
            )
    elif stdio and not profile.network:
        network = "none"
    if getattr(args, "isolate_network", False):  # thv's egress proxy enforces a profile's hosts; here: no network
        if not stdio or profile.network or network not in (None, "none"):
            raise ConfigError(
                "--isolate-network: here an isolated container has no network at all (thv's egress proxy for a "
                "profile's allowed hosts is not implemented), so it cannot be combined with a network profile, "
                "--network or an HTTP transport"
            )
        network = "none"
    if not stdio:
        if not profile.network:
            raise ConfigError(
                f"--permission-profile {args.permission_profile}: an HTTP server's container needs a network for its "
                "published port, so its outbound connections cannot be cut; use --transport stdio, or "
                "--permission-profile network"
            )
        if network in ("none", "host"):
            raise ConfigError(
                f"--network {network}: an HTTP server's container is published on a loopback port, which needs the "
                "runtime's network (bridge or a named one)"
            )
    mounts = {m.container: m for m in profile.mounts}
    for item in args.volume:
        mount = parse_mount(item, "--volume")
        mounts[mount.container] = mount
    return ContainerRun(
        runtime=find_runtime(args.runtime),
        image=image,
        args=image_args,
        env_names=env_names,
        mounts=tuple(mounts.values()),
        network=network,
        stdio=stdio,
        port=args.target_port or DEFAULT_TARGET_PORT,
    )
