from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from client_registry_support import DocumentServer, FakeClock, serve_documents

from hivegate.httpclient.guard import GuardedHTTPClient
from hivegate.storage.memory import MemoryStore
from support.tls import make_ca_and_server_cert


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    memory = MemoryStore()
    yield memory
    await memory.aclose()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(CA, server certificate for 127.0.0.1, server key)."""
    return make_ca_and_server_cert(tmp_path_factory.mktemp("cimd-tls"))


@pytest.fixture
async def documents(tls_files: tuple[Path, Path, Path]) -> AsyncIterator[DocumentServer]:
    _, cert, key = tls_files
    async with serve_documents(cert, key) as server:
        yield server


@pytest.fixture
async def http(tls_files: tuple[Path, Path, Path]) -> AsyncIterator[GuardedHTTPClient]:
    """A guarded https-only client that trusts the test CA and may reach 127.0.0.1."""
    client = GuardedHTTPClient(allow_private=True, ca_bundle=str(tls_files[0]))
    yield client
    await client.aclose()
