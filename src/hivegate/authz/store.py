"""The live policy set of one server, loaded from its file and reloaded on SIGHUP or when the file changes.

A reload compiles the new file off the event loop and then swaps one reference: requests in flight finish with the
policies they started with, none is dropped. A file that does not load (unreadable, invalid, bad Cedar) leaves the
old policies in force and logs why.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from hivegate.authz.cedar import CedarAuthorizer
from hivegate.authz.config import load_authz_config
from hivegate.errors import ConfigError

__all__ = ["PolicyStore"]

logger = logging.getLogger("hivegate.authz")


class PolicyStore:
    """Holds `current`, the authorizer compiled from `path` for the MCP server `server_name`."""

    def __init__(self, path: str | Path, server_name: str) -> None:
        self._path = Path(path)
        self._server = server_name
        self._lock = asyncio.Lock()
        digest, authorizer = self._load()  # a broken file at start-up is fatal: raises ConfigError
        self._digest = digest
        self._rejected: bytes | None = None  # the content of the last file that failed to load (logged once)
        self.current: CedarAuthorizer = authorizer
        self.reloads = 0

    @property
    def path(self) -> Path:
        return self._path

    def _load(self) -> tuple[bytes, CedarAuthorizer]:
        try:
            raw = self._path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"authz config {self._path}: cannot read: {exc.strerror or exc}") from exc
        digest = hashlib.sha256(raw).digest()
        try:
            cfg = load_authz_config(self._path)  # its errors name the file
            try:
                return digest, CedarAuthorizer.from_config(cfg, self._server)
            except ConfigError as exc:
                raise ConfigError(f"authz config {self._path}: {exc}") from None
        except Exception:
            self._rejected = digest
            raise

    async def reload(self, *, reason: str = "reload requested") -> bool:
        """Compile the file again and swap it in; False (old policies kept, reason logged) when it does not load."""
        async with self._lock:
            try:
                digest, authorizer = await asyncio.to_thread(self._load)
            except ConfigError as exc:
                logger.error("authz: %s; keeping the %d policies in force", exc, self.current.policy_count)
                return False
            except Exception as exc:  # anything else in a bad file is the same: keep what works
                logger.error("authz: reloading %s failed (%s); keeping the policies in force", self._path, exc)
                return False
            self._digest = digest
            self.current = authorizer
            self.reloads += 1
            logger.info("authz: %s; %d policies loaded from %s", reason, authorizer.policy_count, self._path)
            return True

    async def changed(self) -> bool:
        """Whether the file's content differs from what is loaded (unreadable counts as unchanged)."""
        try:
            raw = await asyncio.to_thread(self._path.read_bytes)
        except OSError:
            return False
        digest = hashlib.sha256(raw).digest()
        return digest != self._digest and digest != self._rejected

    async def watch(self, interval: float = 2.0) -> None:
        """Reload whenever the file's content changes (polled; editors that replace the file are covered)."""
        while True:
            await asyncio.sleep(interval)
            if await self.changed():
                await self.reload(reason="policy file changed")
