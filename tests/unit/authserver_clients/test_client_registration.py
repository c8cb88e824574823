"""RFC 7591 dynamic client registration through `ClientRegistry.register`, and finding the client again."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from client_registry_support import FakeClock

from hivegate.authserver.errors import OAuthError
from hivegate.authserver.registration import ClientRegistry
from hivegate.authserver.settings import DEFAULT_SCOPES
from hivegate.storage.memory import MemoryStore

pytestmark = pytest.mark.anyio

DAY = 86400.0
REDIRECT = "https://app.example/callback"


@pytest.fixture
def registry(store: MemoryStore, clock: FakeClock) -> ClientRegistry:
    return ClientRegistry(store, scopes_supported=DEFAULT_SCOPES, http=None, clock=clock)


async def refusal(registry: ClientRegistry, metadata: Any, *, remote: str = "192.0.2.1") -> OAuthError:
    with pytest.raises(OAuthError) as info:
        await registry.register(metadata, remote=remote)
    assert info.value.status == 400
    assert "\n" not in info.value.description
    return info.value


# -- public and confidential clients -----------------------------------------------------------------------------------


async def test_minimal_registration_is_a_public_client_with_the_defaults(
    registry: ClientRegistry, clock: FakeClock
) -> None:
    client, response = await registry.register({"redirect_uris": [REDIRECT]}, remote="192.0.2.1")

    assert response == {
        "client_id": client.client_id,
        "client_id_issued_at": int(clock.now),
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
    }
    assert client.public
    assert client.source == "dynamic"
    assert client.secret_hash is None
    assert await registry.get(client.client_id) == client
    assert client.expires_at == int(clock.now + 30 * DAY)


async def test_client_ids_are_random_and_url_safe(registry: ClientRegistry) -> None:
    ids = {(await registry.register({"redirect_uris": [REDIRECT]}, remote=f"r{i}"))[0].client_id for i in range(5)}
    assert len(ids) == 5
    for client_id in ids:
        assert len(client_id) >= 32
        assert all(c.isalnum() or c in "-_" for c in client_id)


async def test_known_metadata_is_echoed_and_unknown_fields_are_ignored(registry: ClientRegistry) -> None:
    metadata = {
        "redirect_uris": [REDIRECT, "http://127.0.0.1:8765/cb"],
        "client_name": "My MCP client",
        "client_uri": "https://app.example",
        "logo_uri": "https://app.example/logo.png",
        "tos_uri": "https://app.example/tos",
        "policy_uri": "https://app.example/privacy",
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.1",
        "contacts": ["ops@app.example"],
        "scope": "openid profile openid",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "jwks_uri": "https://app.example/jwks",
        "x-vendor": {"anything": True},
    }
    client, response = await registry.register(metadata, remote="192.0.2.1")

    assert "jwks_uri" not in response
    assert "x-vendor" not in response
    expected = {k: v for k, v in metadata.items() if k not in ("jwks_uri", "x-vendor")}
    expected["scope"] = "openid profile"
    assert {k: response[k] for k in expected} == expected
    assert client.client_name == "My MCP client"
    assert client.scope == "openid profile"
    assert client.grant_types == ("authorization_code",)
    assert client.redirect_uris == (REDIRECT, "http://127.0.0.1:8765/cb")


@pytest.mark.parametrize("method", ["client_secret_basic", "client_secret_post"])
async def test_confidential_client_gets_its_secret_once_and_only_its_hash_is_kept(
    registry: ClientRegistry, store: MemoryStore, method: str
) -> None:
    client, response = await registry.register(
        {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": method}, remote="192.0.2.1"
    )
    secret = response["client_secret"]
    assert response["client_secret_expires_at"] == 0
    assert response["token_endpoint_auth_method"] == method
    assert len(secret) >= 43  # 32 random bytes, base64url

    found = await registry.get(client.client_id)
    assert found is not None
    assert not found.public
    assert found.token_endpoint_auth_method == method
    assert found.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert found.secret_matches(secret)
    assert not found.secret_matches(secret + "x")
    assert secret not in repr(found)
    record = await store.get("client", client.client_id)
    assert record is not None
    assert secret not in json.dumps(record)


async def test_two_confidential_clients_get_different_secrets(registry: ClientRegistry) -> None:
    body = {"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic"}
    first = (await registry.register(body, remote="a"))[1]["client_secret"]
    second = (await registry.register(body, remote="b"))[1]["client_secret"]
    assert first != second


async def test_unknown_client_is_none(registry: ClientRegistry) -> None:
    assert await registry.get("no-such-client") is None
    assert await registry.get("") is None


# -- expiry ------------------------------------------------------------------------------------------------------------


async def test_an_unused_registration_expires_after_the_client_ttl(registry: ClientRegistry, clock: FakeClock) -> None:
    kept, _ = await registry.register({"redirect_uris": [REDIRECT]}, remote="a")
    unused, _ = await registry.register({"redirect_uris": [REDIRECT]}, remote="a")
    clock.advance(30 * DAY - 1)
    assert await registry.get(kept.client_id) is not None
    clock.advance(2)
    assert await registry.get(unused.client_id) is None


async def test_a_client_in_use_has_its_expiry_pushed_back(registry: ClientRegistry, clock: FakeClock) -> None:
    client, _ = await registry.register({"redirect_uris": [REDIRECT]}, remote="a")
    clock.advance(2 * DAY)
    assert await registry.get(client.client_id) is not None  # used on day 2: now kept until day 32
    clock.advance(29 * DAY)
    found = await registry.get(client.client_id)
    assert found is not None
    assert found.expires_at == int(clock.now + 30 * DAY)


async def test_client_ttl_is_configurable(store: MemoryStore, clock: FakeClock) -> None:
    registry = ClientRegistry(store, scopes_supported=DEFAULT_SCOPES, client_ttl=3600, clock=clock)
    client, _ = await registry.register({"redirect_uris": [REDIRECT]}, remote="a")
    clock.advance(3601)
    assert await registry.get(client.client_id) is None


# -- redirect URIs -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "uri",
    [
        "https://app.example/callback",
        "https://app.example:8443/cb?tenant=a",
        "http://127.0.0.1/callback",
        "http://127.0.0.1:53682/callback",
        "http://[::1]:8080/cb",
        "http://localhost:3000/oauth/callback",
        "com.example.app:/callback",
        "com.example.app://oauth/callback",
    ],
)
async def test_acceptable_redirect_uris(registry: ClientRegistry, uri: str) -> None:
    client, response = await registry.register({"redirect_uris": [uri]}, remote="a")
    assert client.redirect_uris == (uri,)
    assert response["redirect_uris"] == [uri]


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("javascript:alert(1)", "the javascript scheme is not allowed"),
        ("JavaScript:alert(1)", "the javascript scheme is not allowed"),
        ("data:text/html,<script>alert(1)</script>", "the data scheme is not allowed"),
        ("file:///etc/passwd", "the file scheme is not allowed"),
        ("vbscript:msgbox", "the vbscript scheme is not allowed"),
        ("https://app.example/cb#frag", "must not contain a fragment"),
        ("https://app.example/cb#", "must not contain a fragment"),
        ("http://app.example/cb", "http is only allowed on loopback"),
        ("http://localhost.evil.com/cb", "http is only allowed on loopback"),
        ("http://127.0.0.1.evil.com/cb", "http is only allowed on loopback"),
        ("http://10.0.0.1/cb", "http is only allowed on loopback"),
        ("https://user@app.example/cb", "must not contain user information"),
        ("https://app.example@evil.example/cb", "must not contain user information"),
        ("http://user:pw@127.0.0.1/cb", "must not contain user information"),
        ("/callback", "must be an absolute URI"),
        ("app.example/callback", "must be an absolute URI"),
        ("https:///callback", "must name a host"),
        ("myapp://callback", "a private-use scheme must be a reverse domain name"),
        ("com.example.app:", "must have a path after the scheme"),
        ("https://app.example/a b", "must not contain spaces"),
        ("https://evil.example\\@app.example/", "backslashes"),
        ("https://app.example/\u00e9", "non-ASCII"),
        ("https://app.example:99999/cb", "not a valid URI"),
        ("https://app.example/" + "a" * 2000, "longer than 2000 characters"),
        ("", "must be a non-empty string"),
    ],
)
async def test_refused_redirect_uris_name_the_entry(registry: ClientRegistry, uri: str, reason: str) -> None:
    error = await refusal(registry, {"redirect_uris": [REDIRECT, uri]})
    assert error.error == "invalid_redirect_uri"
    assert error.description.startswith("redirect_uris[1]: ")
    assert reason in error.description


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (None, "redirect_uris: required"),
        ([], "redirect_uris: must be a non-empty array of URIs"),
        (REDIRECT, "redirect_uris: must be a non-empty array of URIs"),
        ([REDIRECT] * 11, "redirect_uris: at most 10 entries"),
        ([42], "redirect_uris[0]: must be a non-empty string"),
    ],
)
async def test_redirect_uris_is_a_list_of_one_to_ten(registry: ClientRegistry, value: Any, reason: str) -> None:
    body = {} if value is None else {"redirect_uris": value}
    error = await refusal(registry, body)
    assert (error.error, error.description) == ("invalid_redirect_uri", reason)


async def test_ten_redirect_uris_are_accepted(registry: ClientRegistry) -> None:
    uris = [f"https://app.example/cb/{i}" for i in range(10)]
    client, _ = await registry.register({"redirect_uris": uris}, remote="a")
    assert client.redirect_uris == tuple(uris)


# -- other metadata ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [[{"redirect_uris": [REDIRECT]}], "redirect_uris", None, 42])
async def test_body_must_be_a_json_object(registry: ClientRegistry, body: Any) -> None:
    error = await refusal(registry, body)
    assert (error.error, error.description) == (
        "invalid_client_metadata",
        "the registration request must be a JSON object",
    )


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"token_endpoint_auth_method": "private_key_jwt"}, "token_endpoint_auth_method: 'private_key_jwt' is not"),
        ({"token_endpoint_auth_method": "client_secret_jwt"}, "token_endpoint_auth_method: 'client_secret_jwt' is"),
        ({"token_endpoint_auth_method": 1}, "token_endpoint_auth_method: a non-string is not supported"),
        ({"grant_types": ["implicit"]}, "grant_types: 'implicit' is not supported"),
        ({"grant_types": ["authorization_code", "client_credentials"]}, "grant_types: 'client_credentials' is not"),
        ({"grant_types": ["refresh_token"]}, "grant_types: must include authorization_code"),
        ({"grant_types": []}, "grant_types: must include authorization_code"),
        ({"grant_types": "authorization_code"}, "grant_types: must be an array of strings"),
        ({"response_types": ["token"]}, "response_types: only code is supported"),
        ({"response_types": ["code", "token"]}, "response_types: only code is supported"),
        ({"response_types": ["code id_token"]}, "response_types: only code is supported"),
        ({"scope": "openid admin"}, "scope: 'admin' is not supported"),
        ({"scope": ["openid"]}, "scope: must be a space-separated string"),
        ({"client_name": "n" * 257}, "client_name: longer than 256 characters"),
        ({"client_name": 7}, "client_name: must be a string"),
        ({"client_uri": "http://app.example"}, "client_uri: must be an https URL"),
        ({"logo_uri": "javascript:alert(1)"}, "logo_uri: must be an https URL"),
        ({"tos_uri": "https://user@app.example/tos"}, "tos_uri: must be an https URL"),
        ({"policy_uri": "https://app.example/" + "p" * 2000}, "policy_uri: longer than 2000 characters"),
        ({"software_id": "s" * 2001}, "software_id: longer than 2000 characters"),
        ({"software_version": 2}, "software_version: must be a string"),
        ({"contacts": "ops@app.example"}, "contacts: must be an array of strings"),
        ({"contacts": [f"c{i}@app.example" for i in range(11)]}, "contacts: at most 10 entries"),
        ({"contacts": [""]}, "contacts[0]: must be 1 to 2000 characters"),
    ],
)
async def test_refused_metadata_names_the_field(registry: ClientRegistry, fields: dict[str, Any], reason: str) -> None:
    error = await refusal(registry, {"redirect_uris": [REDIRECT], **fields})
    assert error.error == "invalid_client_metadata"
    assert error.description.startswith(reason), error.description


async def test_client_name_of_256_characters_is_accepted(registry: ClientRegistry) -> None:
    client, response = await registry.register({"redirect_uris": [REDIRECT], "client_name": "n" * 256}, remote="a")
    assert client.client_name == response["client_name"] == "n" * 256


async def test_null_and_empty_optional_fields_count_as_absent(registry: ClientRegistry) -> None:
    body = {"redirect_uris": [REDIRECT], "client_name": "", "logo_uri": None, "scope": "", "grant_types": None}
    client, response = await registry.register(body, remote="a")
    assert "client_name" not in response
    assert "logo_uri" not in response
    assert "scope" not in response
    assert client.scope is None
    assert client.grant_types == ("authorization_code", "refresh_token")


async def test_nothing_is_stored_for_a_refused_registration(registry: ClientRegistry, store: MemoryStore) -> None:
    await refusal(registry, {"redirect_uris": ["http://app.example/cb"]})
    assert len(store) == 0


async def test_a_short_lived_registration_in_use_is_renewed_after_half_its_ttl(
    store: MemoryStore, clock: FakeClock
) -> None:
    registry = ClientRegistry(store, scopes_supported=DEFAULT_SCOPES, client_ttl=3600, clock=clock)
    client, _ = await registry.register({"redirect_uris": [REDIRECT]}, remote="a")
    clock.advance(1000)
    assert (await registry.get(client.client_id)) == client  # not yet: no write on every use
    clock.advance(1000)
    renewed = await registry.get(client.client_id)
    assert renewed is not None
    assert renewed.expires_at == int(clock.now + 3600)
