"""A Client ID Metadata Document that does not arrive within `METADATA_TIMEOUT` is refused, quickly: the client is
unknown (`invalid_client` at the token endpoint), the failure is remembered, and a later fetch can succeed.

The document server is a real https server on 127.0.0.1 (the registry may reach it through the test seam:
`allow_private_metadata=True` and a guarded client trusting the test CA) that holds its answer past the limit.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import anyio
import pytest
from aiohttp import web
from client_registry_support import DocumentServer, FakeClock

from hivegate.authserver import client_metadata
from hivegate.authserver.errors import OAuthError
from hivegate.authserver.keys import HMACKeys, SigningKeys
from hivegate.authserver.registration import ClientRegistry
from hivegate.authserver.service import AuthorizationServer, Params
from hivegate.authserver.settings import DEFAULT_SCOPES, AuthServerConfig, Lifespans, UpstreamConfig
from hivegate.httpclient.guard import GuardedHTTPClient
from hivegate.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

PATH = "/oauth/slow-client.json"
LIMIT = 0.2  # seconds: the patched METADATA_TIMEOUT
HELD = 30.0  # how long the server would hold its answer (far past LIMIT, and past the http client's own 5 s)
QUICK = 2.0  # a refusal must come well before the server would have answered


@pytest.fixture(autouse=True)
def short_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(client_metadata, "METADATA_TIMEOUT", LIMIT)


@pytest.fixture
async def stalled(documents: DocumentServer) -> AsyncIterator[DocumentServer]:
    """`PATH` answers only after `HELD` seconds (or when the test ends, so the server shuts down at once)."""
    done = anyio.Event()

    async def hold(request: web.Request) -> web.StreamResponse:
        with anyio.move_on_after(HELD):
            await done.wait()
        return web.json_response({"client_id": str(request.url)})

    documents.routes[PATH] = hold
    yield documents
    done.set()


def registry_for(store: MemoryStore, http: GuardedHTTPClient, clock: FakeClock) -> ClientRegistry:
    return ClientRegistry(store, scopes_supported=DEFAULT_SCOPES, http=http, allow_private_metadata=True, clock=clock)


def document(client_id: str) -> dict[str, object]:
    return {"client_id": client_id, "redirect_uris": ["http://127.0.0.1:33418/callback"], "client_name": "Slow"}


async def test_a_document_slower_than_the_limit_is_refused_quickly(
    store: MemoryStore,
    http: GuardedHTTPClient,
    stalled: DocumentServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hivegate.authserver.registration")
    registry = registry_for(store, http, clock)
    client_id = stalled.url(PATH)

    started = time.monotonic()
    with anyio.fail_after(QUICK):
        assert await registry.get(client_id) is None
    elapsed = time.monotonic() - started

    assert LIMIT * 0.9 <= elapsed < QUICK
    assert stalled.hits[PATH] == 1
    assert f"client metadata document {client_id} refused: timed out" in caplog.text


async def test_a_timed_out_document_is_remembered_then_fetched_again(
    store: MemoryStore, http: GuardedHTTPClient, stalled: DocumentServer, clock: FakeClock
) -> None:
    registry = registry_for(store, http, clock)
    client_id = stalled.url(PATH)
    with anyio.fail_after(QUICK):
        assert await registry.get(client_id) is None

    clock.advance(29)  # within the 30 s a failure is remembered: no second wait on the slow server
    with anyio.fail_after(0.5):
        assert await registry.get(client_id) is None
    assert stalled.hits[PATH] == 1

    async def prompt(_: web.Request) -> web.StreamResponse:
        return web.json_response(document(client_id))

    stalled.routes[PATH] = prompt
    clock.advance(2)
    with anyio.fail_after(QUICK):
        client = await registry.get(client_id)
    assert client is not None
    assert (client.client_id, client.source) == (client_id, "metadata")
    assert stalled.hits[PATH] == 2


async def test_concurrent_lookups_all_get_the_timeout_from_one_fetch(
    store: MemoryStore, http: GuardedHTTPClient, stalled: DocumentServer, clock: FakeClock
) -> None:
    registry = registry_for(store, http, clock)
    results: list[object] = []

    async def lookup() -> None:
        results.append(await registry.get(stalled.url(PATH)))

    with anyio.fail_after(QUICK):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(lookup)
    assert results == [None] * 4
    assert stalled.hits[PATH] == 1


async def test_the_token_endpoint_answers_invalid_client_quickly(
    store: MemoryStore, http: GuardedHTTPClient, stalled: DocumentServer, clock: FakeClock
) -> None:
    cfg = AuthServerConfig(
        issuer="https://mcp.example.com",
        upstreams=(UpstreamConfig("okta", "oidc", "cid", issuer_url="https://idp.example"),),
        lifespans=Lifespans(),
    )
    server = AuthorizationServer(
        cfg,
        keys=SigningKeys.from_pems([]),
        hmac_keys=HMACKeys.from_config([b"k" * 32]),
        store=store,
        clients=registry_for(store, http, clock),
        upstreams=(),
        audiences=["https://mcp.example.com/mcp"],
    )
    form = Params({"grant_type": ["authorization_code"], "client_id": [stalled.url(PATH)], "code": ["c"]})

    with anyio.fail_after(QUICK), pytest.raises(OAuthError) as caught:
        await server.token(form, None)

    assert (caught.value.error, caught.value.status) == ("invalid_client", 401)
    assert caught.value.description == "unknown client"
    assert stalled.hits[PATH] == 1
