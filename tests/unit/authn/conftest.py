from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from authn_idp import LocalIdP, run_idp
from joserfc.jwk import ECKey, OKPKey, RSAKey

from hivegate.httpclient.guard import GuardedHTTPClient


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def rsa_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})


@pytest.fixture(scope="session")
def rsa_key_2() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "rsa-2"})


@pytest.fixture(scope="session")
def ec_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": "ec-1"})


@pytest.fixture(scope="session")
def ed_key() -> OKPKey:
    return OKPKey.generate_key("Ed25519", parameters={"kid": "ed-1"})


@pytest.fixture
async def idp(rsa_key: RSAKey, ec_key: ECKey, ed_key: OKPKey) -> AsyncIterator[LocalIdP]:
    async with run_idp() as server:
        server.published = [rsa_key, ec_key, ed_key]
        yield server


@pytest.fixture
async def http() -> AsyncIterator[GuardedHTTPClient]:
    """A guarded client that may reach the local IdP (http, 127.0.0.1)."""
    client = GuardedHTTPClient(allow_http=True, allow_private=True)
    yield client
    await client.aclose()
