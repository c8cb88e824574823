"""Start a real `redis-server` on 127.0.0.1 for tests: no persistence, a free port, killed at the end."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from support.backend import free_port
from support.tls import make_ca_and_server_cert

INSTALL_HINT = "redis-server not found on PATH: run scripts/install-test-deps.sh (it installs the redis-server package)"


class RedisServer:
    def __init__(
        self, port: int, password: str | None, ca_file: Path | None, process: asyncio.subprocess.Process | None = None
    ) -> None:
        self.process = process  # to take the server down in a test (it is killed at the end anyway)
        self.port = port
        self.password = password
        self.ca_file = ca_file  # set when the server speaks TLS only

    @property
    def url(self) -> str:
        scheme = "rediss" if self.ca_file is not None else "redis"
        auth = "" if self.password is None else f":{self.password}@"
        return f"{scheme}://{auth}127.0.0.1:{self.port}/0"


@asynccontextmanager
async def start_redis(*, password: str | None = None, tls: bool = False) -> AsyncIterator[RedisServer]:
    """Run redis-server until the block ends; yields where it listens (with `tls`, TLS only, certificate for
    127.0.0.1 signed by `server.ca_file`). Fails, never skips, when redis-server is not installed."""
    executable = shutil.which("redis-server")
    if executable is None:
        raise RuntimeError(INSTALL_HINT)
    with tempfile.TemporaryDirectory(prefix="hivegate-redis-") as tmp:
        directory = Path(tmp)
        port = free_port()
        args = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", tmp, "--loglevel", "warning"]
        ca_file = None
        if tls:
            ca_file, cert, key = make_ca_and_server_cert(directory)
            args += ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
            args += ["--tls-ca-cert-file", str(ca_file), "--tls-auth-clients", "no"]
        else:
            args += ["--port", str(port)]
        if password is not None:
            args += ["--requirepass", password]
        log = directory / "redis.log"
        with log.open("wb") as out:
            proc = await asyncio.create_subprocess_exec(
                executable, *args, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
            )
        try:
            await _wait_until_answering(proc, port, ca_file, log)
            yield RedisServer(port, password, ca_file, proc)
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


async def _wait_until_answering(proc: asyncio.subprocess.Process, port: int, ca_file: Path | None, log: Path) -> None:
    """Wait until the server answers PING (with a password set, a NOAUTH error: an answer all the same)."""
    context = None if ca_file is None else ssl.create_default_context(cafile=str(ca_file))
    async with asyncio.timeout(20):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(
                    f"redis-server exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}"
                )
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            try:
                writer.write(b"PING\r\n")
                await writer.drain()
                answer = await reader.readline()
            except OSError:
                answer = b""
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            if answer.startswith((b"+PONG", b"-NOAUTH")):
                return
            await asyncio.sleep(0.02)
