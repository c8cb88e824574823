"""ToolHive's permission profiles for a container: the built-ins `none` and `network`, or a JSON file.

A file may say `read` and `write` (paths bound read-only or writable: `PATH`, the same path inside, or
`HOST:CONTAINER`) and `network.outbound.insecure_allow_all` (any outbound connection; without it, no network at all).
What hivegate cannot enforce is refused by name rather than ignored: ToolHive's egress allow-lists
(`allow_host`, `allow_port`, `allow_transport`, which it enforces with a proxy of its own), `seccomp`, resource URIs
such as `volume://NAME:PATH`, and any other key.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hivegate.backends.container import Mount
from hivegate.errors import ConfigError

__all__ = ["BUILTIN_PROFILES", "PermissionProfile", "load_profile", "parse_mount"]

_FLAG = "--permission-profile"


@dataclass(frozen=True, slots=True)
class PermissionProfile:
    """What a container may do: reach the network (`network`), and the host paths bound into it (`mounts`)."""

    name: str
    network: bool = False
    mounts: tuple[Mount, ...] = ()


BUILTIN_PROFILES = {"none": PermissionProfile("none"), "network": PermissionProfile("network", network=True)}


def load_profile(value: str) -> PermissionProfile:
    """`none`, `network`, or the JSON profile in the file `value`; `ConfigError` naming what is wrong."""
    if value in BUILTIN_PROFILES:
        return BUILTIN_PROFILES[value]
    try:
        doc = json.loads(Path(value).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{_FLAG}: {value!r} is neither none, network nor a file") from None
    except OSError as exc:
        raise ConfigError(f"{_FLAG} {value}: cannot read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{_FLAG} {value}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    at = f"{_FLAG} {value}"
    top = _object(doc, at)
    _only(top, ("read", "write", "network"), at)
    mounts: dict[str, Mount] = {}
    for key, read_only in (("read", True), ("write", False)):
        for i, item in enumerate(_list(top.get(key), f"{at}: {key}")):
            if not isinstance(item, str):
                raise ConfigError(f"{at}: {key}[{i}] must be a path")
            mount = parse_mount(item, f"{at}: {key}[{i}]", read_only=read_only)
            mounts[mount.container] = mount  # `write` after `read`: a path in both is writable, as in ToolHive
    network = False
    if "network" in top:
        net = _object(top["network"], f"{at}: network")
        _only(net, ("outbound",), f"{at}: network")
        outbound = _object(net.get("outbound", {}), f"{at}: network.outbound")
        where = f"{at}: network.outbound"
        _only(outbound, ("insecure_allow_all", "allow_host", "allow_port", "allow_transport"), where)
        for key in ("allow_host", "allow_port", "allow_transport"):
            if outbound.get(key):
                raise ConfigError(
                    f"{where}.{key}: egress allow-lists are not supported (hivegate has no egress proxy); use "
                    "insecure_allow_all: true for any outbound connection, or leave the network out for none"
                )
        allow = outbound.get("insecure_allow_all", False)
        if not isinstance(allow, bool):
            raise ConfigError(f"{where}.insecure_allow_all must be true or false")
        network = allow
    return PermissionProfile(value, network=network, mounts=tuple(mounts.values()))


def parse_mount(text: str, at: str, *, read_only: bool = False) -> Mount:
    """`PATH` (the same path inside), or `HOST:CONTAINER`, with an optional `:ro` (`:rw`) when `read_only` is not
    decided by the caller; the host path made absolute from the current directory."""
    if "://" in text:
        raise ConfigError(f"{at}: {text!r}: resource URIs (such as volume://) are not supported; give a host path")
    parts = text.split(":")
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        read_only = read_only or parts[2] == "ro"
        parts = parts[:2]
    if len(parts) == 1:
        parts = [parts[0], parts[0]]
    if len(parts) != 2 or not all(parts):
        raise ConfigError(f"{at}: {text!r}: expected HOST_PATH:CONTAINER_PATH[:ro]")
    host, container = parts
    if not host.startswith(("/", ".", "~")):
        raise ConfigError(
            f"{at}: {host!r} is not a path (named volumes are not supported); give an absolute path or ./relative"
        )
    if not container.startswith("/"):
        raise ConfigError(f"{at}: the container path {container!r} must be absolute")
    if any(c in text for c in "\0\n,"):
        raise ConfigError(f"{at}: {text!r} has a character a mount cannot take (NUL, newline or comma)")
    return Mount(os.path.abspath(os.path.expanduser(host)), os.path.normpath(container), read_only)


def _object(value: Any, at: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{at}: expected a JSON object")
    return value


def _list(value: Any, at: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{at}: expected a list of paths")
    return value


def _only(doc: dict[str, Any], known: tuple[str, ...], at: str) -> None:
    for key in doc:
        if key not in known:
            hint = " (seccomp profiles are not supported)" if key == "seccomp" else ""
            raise ConfigError(f"{at}: {key!r} is not supported{hint}; known keys: {', '.join(known)}")
