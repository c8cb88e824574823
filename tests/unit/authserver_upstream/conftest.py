from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from joserfc.jwk import RSAKey
from upstream_idp import FakeIdP, run_idp

from hivegate.httpclient.guard import GuardedHTTPClient


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "idp-1"})


@pytest.fixture
async def idp(signing_key: RSAKey) -> AsyncIterator[FakeIdP]:
    async with run_idp(signing_key) as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[GuardedHTTPClient]:
    client = GuardedHTTPClient(allow_http=True, allow_private=True)
    yield client
    await client.aclose()
