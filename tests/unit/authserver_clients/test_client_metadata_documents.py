"""Client ID Metadata Documents: a URL client id is resolved by fetching its document from a real https server."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import anyio
import orjson
import pytest
from aiohttp import web
from client_registry_support import DocumentServer, FakeClock

from hivegate.authserver.client_metadata import metadata_cache_ttl
from hivegate.authserver.registration import ClientRegistry
from hivegate.authserver.settings import DEFAULT_SCOPES, StaticClient
from hivegate.httpclient.guard import GuardedHTTPClient
from hivegate.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

PATH = "/oauth/client.json"


def registry_for(
    store: MemoryStore, http: GuardedHTTPClient | None, clock: FakeClock, *, allow_private: bool = True, **options: Any
) -> ClientRegistry:
    return ClientRegistry(
        store, scopes_supported=DEFAULT_SCOPES, http=http, allow_private_metadata=allow_private, clock=clock, **options
    )


@pytest.fixture
def registry(store: MemoryStore, http: GuardedHTTPClient, clock: FakeClock) -> ClientRegistry:
    return registry_for(store, http, clock)


def document(server: DocumentServer, path: str = PATH, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "client_id": server.url(path),
        "client_name": "Example MCP Client",
        "client_uri": "https://client.example",
        "redirect_uris": ["http://127.0.0.1:33418/callback", "https://client.example/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not None}


def serve_json(server: DocumentServer, path: str, body: Any, **headers: str) -> None:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)

    server.routes[path] = handler


def serve_raw(server: DocumentServer, path: str, body: bytes, *, status: int = 200, **headers: str) -> None:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.Response(body=body, status=status, content_type="application/json", headers=headers)

    server.routes[path] = handler


# -- valid documents ---------------------------------------------------------------------------------------------------


async def test_a_valid_document_describes_a_public_client(registry: ClientRegistry, documents: DocumentServer) -> None:
    serve_json(documents, PATH, document(documents))
    client_id = documents.url(PATH)

    client = await registry.get(client_id)

    assert client is not None
    assert (client.client_id, client.source, client.client_name) == (client_id, "metadata", "Example MCP Client")
    assert client.public
    assert client.secret_hash is None
    assert client.redirect_uris == ("http://127.0.0.1:33418/callback", "https://client.example/callback")
    assert client.grant_types == ("authorization_code", "refresh_token")
    assert documents.hits[PATH] == 1
    assert registry.metadata_documents_supported


async def test_optional_fields_default_and_extra_grant_types_are_dropped(
    registry: ClientRegistry, documents: DocumentServer
) -> None:
    grants = ["urn:ietf:params:oauth:grant-type:device_code", "authorization_code"]
    doc = document(documents, grant_types=grants, response_types=None, token_endpoint_auth_method=None)
    serve_json(documents, PATH, {**doc, "scope": "anything at all", "x-extension": [1, 2]})

    client = await registry.get(documents.url(PATH))

    assert client is not None
    assert client.grant_types == ("authorization_code",)
    assert client.scope is None


async def test_the_document_is_cached_for_an_hour(
    registry: ClientRegistry, documents: DocumentServer, clock: FakeClock
) -> None:
    serve_json(documents, PATH, document(documents))
    client_id = documents.url(PATH)
    first = await registry.get(client_id)

    clock.advance(3599)
    assert await registry.get(client_id) == first
    assert documents.hits[PATH] == 1

    clock.advance(2)
    assert await registry.get(client_id) is not None
    assert documents.hits[PATH] == 2


async def test_the_cache_is_in_the_shared_store(
    store: MemoryStore, http: GuardedHTTPClient, documents: DocumentServer, clock: FakeClock
) -> None:
    serve_json(documents, PATH, document(documents))
    assert await registry_for(store, http, clock).get(documents.url(PATH)) is not None

    other_replica = registry_for(store, http, clock)
    assert await other_replica.get(documents.url(PATH)) is not None
    assert documents.hits[PATH] == 1


async def test_concurrent_lookups_share_one_fetch(registry: ClientRegistry, documents: DocumentServer) -> None:
    release = anyio.Event()
    doc = document(documents)

    async def slow(_: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response(doc)

    documents.routes[PATH] = slow
    results: list[Any] = []

    async def lookup() -> None:
        results.append(await registry.get(documents.url(PATH)))

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(lookup)
            while documents.hits[PATH] == 0:
                await anyio.sleep(0.01)
            release.set()

    assert documents.hits[PATH] == 1
    assert len(results) == 5
    assert results[0] is not None
    assert all(result == results[0] for result in results)


async def test_static_clients_come_first_and_no_request_is_made(
    store: MemoryStore, http: GuardedHTTPClient, documents: DocumentServer, clock: FakeClock
) -> None:
    client_id = documents.url(PATH)
    serve_json(documents, PATH, document(documents))
    registry = registry_for(store, http, clock, static=[StaticClient(client_id, ("https://configured.example/cb",))])

    client = await registry.get(client_id)

    assert client is not None
    assert client.source == "static"
    assert documents.hits[PATH] == 0


# -- refused documents -------------------------------------------------------------------------------------------------


async def refused(registry: ClientRegistry, documents: DocumentServer, path: str = PATH) -> None:
    assert await registry.get(documents.url(path)) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"token_endpoint_auth_method": "client_secret_basic"},
        {"token_endpoint_auth_method": "client_secret_post"},
        {"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://client.example/jwks"},
        {"client_secret": "shared"},
        {"client_secret_expires_at": 0},
        {"redirect_uris": ["javascript:alert(1)"]},
        {"redirect_uris": ["http://client.example/callback"]},
        {"redirect_uris": ["https://client.example/cb#fragment"]},
        {"redirect_uris": []},
        {"redirect_uris": None},
        {"grant_types": ["refresh_token"]},
        {"response_types": ["token"]},
        {"client_name": "n" * 257},
    ],
)
async def test_a_document_breaking_a_rule_is_refused(
    registry: ClientRegistry, documents: DocumentServer, fields: dict[str, Any]
) -> None:
    doc = document(documents)
    doc.update(fields)
    serve_json(documents, PATH, {k: v for k, v in doc.items() if v is not None})
    await refused(registry, documents)


@pytest.mark.parametrize(
    "client_id",
    [
        lambda url: url + "/",
        lambda url: url.replace("https://", "HTTPS://"),
        lambda url: url.replace("127.0.0.1", "localhost"),
        lambda url: url + "?v=1",
        lambda url: "https://client.example" + PATH,
        lambda url: None,
    ],
)
async def test_client_id_must_be_the_documents_url_exactly(
    registry: ClientRegistry, documents: DocumentServer, client_id: Any
) -> None:
    serve_json(documents, PATH, document(documents, client_id=client_id(documents.url(PATH))))
    await refused(registry, documents)
    assert documents.hits[PATH] == 1


async def test_a_document_over_5_kb_is_refused(registry: ClientRegistry, documents: DocumentServer) -> None:
    serve_json(documents, PATH, document(documents, padding="x" * 5200))
    await refused(registry, documents)


async def test_a_document_just_under_5_kb_is_accepted(registry: ClientRegistry, documents: DocumentServer) -> None:
    doc = document(documents)
    doc["padding"] = "x" * (5 * 1024 - len(orjson.dumps(doc)) - len(',"padding":""'))
    assert len(orjson.dumps(doc)) == 5 * 1024
    serve_json(documents, PATH, doc)
    assert await registry.get(documents.url(PATH)) is not None


@pytest.mark.parametrize("body", [b"<html>hello</html>", b'{"client_id": ', b"[]", b'"a string"', b""])
async def test_a_body_that_is_not_a_json_object_is_refused(
    registry: ClientRegistry, documents: DocumentServer, body: bytes
) -> None:
    serve_raw(documents, PATH, body)
    await refused(registry, documents)


@pytest.mark.parametrize("status", [201, 204, 404, 500])
async def test_a_status_other_than_200_is_refused(
    registry: ClientRegistry, documents: DocumentServer, status: int
) -> None:
    body = b"" if status == 204 else orjson.dumps(document(documents))
    serve_raw(documents, PATH, body, status=status)
    await refused(registry, documents)


async def test_a_redirect_is_not_followed(registry: ClientRegistry, documents: DocumentServer) -> None:
    async def moved(_: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/elsewhere.json")

    documents.routes[PATH] = moved
    serve_json(documents, "/elsewhere.json", document(documents))  # names PATH's URL: would pass if followed

    await refused(registry, documents)
    assert documents.hits[PATH] == 1
    assert documents.hits["/elsewhere.json"] == 0


async def test_a_failure_is_remembered_for_30_seconds(
    registry: ClientRegistry, documents: DocumentServer, clock: FakeClock
) -> None:
    client_id = documents.url(PATH)
    await refused(registry, documents)  # 404: nothing served yet
    serve_json(documents, PATH, document(documents))

    clock.advance(29)
    await refused(registry, documents)
    assert documents.hits[PATH] == 1

    clock.advance(2)
    assert await registry.get(client_id) is not None
    assert documents.hits[PATH] == 2


async def test_a_private_address_is_refused_without_a_request(
    store: MemoryStore,
    http: GuardedHTTPClient,
    documents: DocumentServer,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="hivegate.authserver.registration")
    serve_json(documents, PATH, document(documents))
    registry = registry_for(store, http, clock, allow_private=False)

    assert await registry.get(documents.url(PATH)) is None
    assert sum(documents.hits.values()) == 0
    assert "refused by the SSRF guard: only https to public addresses" in caplog.text


@pytest.mark.parametrize(
    "client_id",
    [
        lambda base: base.replace("https://", "http://") + PATH,
        lambda base: base,
        lambda base: base + "/",
        lambda base: base + "/oauth/../client.json",
        lambda base: base + "/oauth/%2e%2e/client.json",
        lambda base: base + "/./client.json",
        lambda base: base + PATH + "#frag",
        lambda base: base.replace("https://", "https://user@") + PATH,
        lambda base: base + "/client json",
        lambda base: base + "/" + "a" * 2000,
    ],
)
async def test_urls_that_cannot_be_client_ids_are_unknown_without_a_request(
    registry: ClientRegistry, documents: DocumentServer, client_id: Any
) -> None:
    assert await registry.get(client_id(documents.base)) is None
    assert sum(documents.hits.values()) == 0


async def test_without_an_http_client_url_client_ids_are_unknown(
    store: MemoryStore, documents: DocumentServer, clock: FakeClock
) -> None:
    serve_json(documents, PATH, document(documents))
    registry = registry_for(store, None, clock)

    assert not registry.metadata_documents_supported
    assert await registry.get(documents.url(PATH)) is None
    assert sum(documents.hits.values()) == 0


async def test_a_refusal_is_logged_once_without_the_query(
    registry: ClientRegistry, documents: DocumentServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hivegate.authserver.registration")
    client_id = documents.url(PATH) + "?token=sensitive-value"

    assert await registry.get(client_id) is None

    lines = [r.getMessage() for r in caplog.records if r.name == "hivegate.authserver.registration"]
    assert len(lines) == 1
    assert lines[0].startswith(f"client metadata document {documents.url(PATH)} refused: ")
    assert "HTTP 404" in lines[0]
    assert "sensitive-value" not in caplog.text


# -- cache lifetime ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cache_control", "seconds"),
    [
        (None, 3600.0),
        ("", 3600.0),
        ("no-store", 60.0),
        ("private, no-cache", 60.0),
        ('no-cache="set-cookie", max-age=600', 600.0),
        ("public, max-age=600", 600.0),
        ("max-age=5", 60.0),
        ("max-age=0", 60.0),
        ("MAX-AGE=7200, must-revalidate", 7200.0),
        ('max-age="900"', 900.0),
        ("max-age=604800", 86400.0),
        ("s-maxage=10, max-age=120", 120.0),
        ("max-age=abc", 3600.0),
    ],
)
def test_cache_lifetime_follows_max_age_within_a_minute_and_a_day(cache_control: str | None, seconds: float) -> None:
    assert metadata_cache_ttl(cache_control) == seconds


async def test_a_response_with_cache_control_sets_the_cache_time(
    store: MemoryStore, tls_files: tuple[Path, Path, Path], documents: DocumentServer, clock: FakeClock
) -> None:
    http = GuardedHTTPClient(allow_private=True, ca_bundle=str(tls_files[0]))
    try:
        registry = registry_for(store, http, clock)
        serve_json(documents, PATH, document(documents), **{"Cache-Control": "max-age=120"})
        assert await registry.get(documents.url(PATH)) is not None
        clock.advance(119)
        assert await registry.get(documents.url(PATH)) is not None
        assert documents.hits[PATH] == 1
        clock.advance(2)
        assert await registry.get(documents.url(PATH)) is not None
        assert documents.hits[PATH] == 2
    finally:
        await http.aclose()
