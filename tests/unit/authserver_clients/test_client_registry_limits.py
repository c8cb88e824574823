"""Static clients from the config, and the per-remote rate limit on registration."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from client_registry_support import FakeClock

from hivegate.authserver.errors import OAuthError
from hivegate.authserver.registration import ClientRegistry
from hivegate.authserver.settings import DEFAULT_SCOPES, StaticClient
from hivegate.errors import ConfigError
from hivegate.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

BODY = {"redirect_uris": ["https://app.example/callback"]}


def registry_for(store: MemoryStore, clock: FakeClock, **options: Any) -> ClientRegistry:
    return ClientRegistry(store, scopes_supported=DEFAULT_SCOPES, clock=clock, **options)


# -- static clients ----------------------------------------------------------------------------------------------------


async def test_static_client_without_secret_is_public(store: MemoryStore, clock: FakeClock) -> None:
    static = StaticClient("inspector", ("http://localhost:6274/oauth/callback",), client_name="MCP Inspector")
    registry = registry_for(store, clock, static=[static])

    client = await registry.get("inspector")

    assert client is not None
    assert (client.source, client.token_endpoint_auth_method, client.secret_hash) == ("static", "none", None)
    assert client.public
    assert client.client_name == "MCP Inspector"
    assert client.redirect_uris == ("http://localhost:6274/oauth/callback",)
    assert not client.secret_matches("")


async def test_static_client_with_secret_is_confidential_with_its_hash(store: MemoryStore, clock: FakeClock) -> None:
    static = StaticClient("backend", ("https://backend.example/cb",), client_secret="s3cret-value")
    registry = registry_for(store, clock, static=[static])

    client = await registry.get("backend")

    assert client is not None
    assert not client.public
    assert client.token_endpoint_auth_method == "client_secret_basic"
    assert client.secret_hash == hashlib.sha256(b"s3cret-value").hexdigest()
    assert client.secret_matches("s3cret-value")
    assert not client.secret_matches("s3cret-valuE")
    assert "s3cret-value" not in repr(client)


async def test_static_clients_come_before_registered_ones(store: MemoryStore, clock: FakeClock) -> None:
    registry = registry_for(store, clock, static=[StaticClient("same", ("https://static.example/cb",))])
    impostor, _ = await registry_for(store, clock).register(BODY, remote="a")
    await store.put("client", "same", {**impostor.to_record(), "client_id": "same"}, 60)

    client = await registry.get("same")

    assert client is not None
    assert client.source == "static"
    assert client.redirect_uris == ("https://static.example/cb",)


def test_a_static_client_id_configured_twice_is_a_config_error(clock: FakeClock) -> None:
    twice = [StaticClient("a", ("https://a.example/cb",)), StaticClient("a", ("https://b.example/cb",))]
    with pytest.raises(ConfigError, match=r"^clients\[1\]\.clientId: 'a' is configured twice$"):
        registry_for(MemoryStore(), clock, static=twice)


# -- rate limit --------------------------------------------------------------------------------------------------------


async def rate_limited(registry: ClientRegistry, remote: str) -> OAuthError:
    with pytest.raises(OAuthError) as info:
        await registry.register(BODY, remote=remote)
    return info.value


async def test_sixth_quick_registration_from_one_remote_is_429(store: MemoryStore, clock: FakeClock) -> None:
    registry = registry_for(store, clock)
    for _ in range(5):
        await registry.register(BODY, remote="198.51.100.7")

    error = await rate_limited(registry, "198.51.100.7")

    assert (error.status, error.error) == (429, "invalid_request")
    assert error.description == "too many registrations; retry later"
    assert error.retry_after is not None
    assert error.retry_after >= 1
    await registry.register(BODY, remote="198.51.100.8")  # another remote is unaffected


async def test_tokens_come_back_at_the_configured_rate(store: MemoryStore, clock: FakeClock) -> None:
    registry = registry_for(store, clock)
    for _ in range(5):
        await registry.register(BODY, remote="r")
    assert (await rate_limited(registry, "r")).retry_after == 1

    clock.advance(0.5)
    assert (await rate_limited(registry, "r")).retry_after == 1  # half a token: still wait (rounded up)
    clock.advance(0.5)
    await registry.register(BODY, remote="r")
    assert (await rate_limited(registry, "r")).retry_after == 1

    clock.advance(60)  # a full bucket again, never more than the burst
    for _ in range(5):
        await registry.register(BODY, remote="r")
    await rate_limited(registry, "r")


async def test_rate_and_burst_are_configurable(store: MemoryStore, clock: FakeClock) -> None:
    registry = registry_for(store, clock, rate=0.1, burst=2)
    await registry.register(BODY, remote="r")
    await registry.register(BODY, remote="r")
    assert (await rate_limited(registry, "r")).retry_after == 10


async def test_refused_registrations_count_too(store: MemoryStore, clock: FakeClock) -> None:
    registry = registry_for(store, clock)
    for _ in range(5):
        with pytest.raises(OAuthError, match="invalid_redirect_uri"):
            await registry.register({"redirect_uris": ["javascript:alert(1)"]}, remote="probe")
    assert (await rate_limited(registry, "probe")).status == 429


async def test_the_table_of_remotes_is_bounded(store: MemoryStore, clock: FakeClock) -> None:
    registry = registry_for(store, clock)
    for _ in range(5):
        await registry.register(BODY, remote="first")
    assert (await rate_limited(registry, "first")).status == 429

    for i in range(10_000):  # cheap refused requests from 10,000 other remotes push the oldest one out
        with pytest.raises(OAuthError, match="invalid_client_metadata"):
            await registry.register(None, remote=f"other-{i}")

    await registry.register(BODY, remote="first")  # forgotten, so a fresh bucket


@pytest.mark.parametrize("options", [{"rate": 0.0}, {"burst": 0}, {"client_ttl": 0.0}])
def test_rate_limit_settings_are_checked(clock: FakeClock, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be"):
        registry_for(MemoryStore(), clock, **options)
