"""The live policy set of one server, loaded from a source (a file, or a configuration that holds policies) and
reloaded on request (SIGHUP) or when the source's content changes. `config_source` holds policies already read
(e.g. an `MCPServer`'s `authzConfig` in a manifest): they do not change while the process runs.

A reload compiles the new policies off the event loop and then swaps one reference: requests in flight finish with
the policies they started with, none is dropped. A source that does not load (unreadable, invalid, bad Cedar)
leaves the old policies in force and logs why.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from hivegate.authz.cedar import CedarAuthorizer
from hivegate.authz.policy_config import AuthzConfig, load_authz_config
from hivegate.errors import ConfigError

__all__ = ["PolicySource", "PolicyStore", "config_source", "file_source"]

logger = logging.getLogger("hivegate.authz")


class PolicySource(Protocol):
    """Where a server's policies come from. `read()` is the content they are loaded from, cheaply (to tell a change;
    `OSError` when it cannot be read); `load()` that content and the config, or `ConfigError` naming the source.
    `name` is for the logs."""

    name: str

    def read(self) -> bytes: ...

    def load(self) -> tuple[bytes, AuthzConfig]: ...


class _File:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path)

    def read(self) -> bytes:
        return self.path.read_bytes()

    def load(self) -> tuple[bytes, AuthzConfig]:
        try:
            raw = self.read()
        except OSError as exc:
            raise ConfigError(f"authz config {self.path}: cannot read: {exc.strerror or exc}") from exc
        return raw, load_authz_config(self.path)  # its errors name the file


def file_source(path: str | Path) -> PolicySource:
    """Policies in a ToolHive authz config file (`--authz-config`), JSON or YAML."""
    return _File(Path(path))


class _Config:
    def __init__(self, config: AuthzConfig, name: str) -> None:
        self._config = config
        self._raw = json.dumps(asdict(config), sort_keys=True).encode()
        self.name = name

    def read(self) -> bytes:
        return self._raw

    def load(self) -> tuple[bytes, AuthzConfig]:
        return self._raw, self._config


def config_source(config: AuthzConfig, name: str) -> PolicySource:
    """Policies already read into `config`; `name` says where from (e.g. the manifest, document and field)."""
    return _Config(config, name)


class PolicyStore:
    """Holds `current`, the authorizer compiled from `source` for the MCP server `server_name`."""

    def __init__(self, source: PolicySource, server_name: str) -> None:
        self._source = source
        self._server = server_name
        self._lock = asyncio.Lock()
        self._rejected: bytes | None = None  # the content of the last source that failed to load (logged once)
        digest, authorizer = self._load()  # policies that do not load at start-up are fatal: raises ConfigError
        self._digest = digest
        self.current: CedarAuthorizer = authorizer
        self.reloads = 0

    @property
    def source(self) -> PolicySource:
        return self._source

    def _load(self) -> tuple[bytes, CedarAuthorizer]:
        try:
            raw, cfg = self._source.load()
        except Exception:
            with contextlib.suppress(OSError):
                self._rejected = hashlib.sha256(self._source.read()).digest()
            raise
        try:
            return hashlib.sha256(raw).digest(), CedarAuthorizer.from_config(cfg, self._server)
        except ConfigError as exc:
            self._rejected = hashlib.sha256(raw).digest()
            raise ConfigError(f"authz config {self._source.name}: {exc}") from None

    async def reload(self, *, reason: str = "reload requested") -> bool:
        """Compile the file again and swap it in; False (old policies kept, reason logged) when it does not load."""
        async with self._lock:
            try:
                digest, authorizer = await asyncio.to_thread(self._load)
            except ConfigError as exc:
                logger.error("authz: %s; keeping the %d policies in force", exc, self.current.policy_count)
                return False
            except Exception as exc:  # anything else in a bad source is the same: keep what works
                logger.error("authz: reloading %s failed (%s); keeping the policies in force", self._source.name, exc)
                return False
            self._digest = digest
            self.current = authorizer
            self.reloads += 1
            logger.info("authz: %s; %d policies loaded from %s", reason, authorizer.policy_count, self._source.name)
            return True

    async def changed(self) -> bool:
        """Whether the source's content differs from what is loaded (one that cannot be read counts as unchanged)."""
        try:
            raw = await asyncio.to_thread(self._source.read)
        except OSError:
            return False
        digest = hashlib.sha256(raw).digest()
        return digest != self._digest and digest != self._rejected

    async def watch(self, interval: float = 2.0) -> None:
        """Reload whenever the source's content changes (polled; editors that replace the file are covered)."""
        while True:
            await asyncio.sleep(interval)
            if await self.changed():
                await self.reload(reason="policy file changed")
