from __future__ import annotations

import ipaddress

import pytest
from authn_idp import LocalIdP

from hivegate.errors import FetchError, UnsafeURLError
from hivegate.httpclient.guard import GuardedHTTPClient, check_url, is_public_address


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "64:ff9b::a9fe:a9fe",
    ],
)
def test_non_public_addresses(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


def test_check_url_refuses_literal_private_ip_unless_allowed() -> None:
    with pytest.raises(UnsafeURLError, match=r"non-public address 127\.0\.0\.1 .*--jwks-allow-private-ip"):
        check_url("https://127.0.0.1/jwks", allow_http=False, allow_private=False)
    with pytest.raises(UnsafeURLError, match="non-public address ::1"):
        check_url("https://[::1]:8443/jwks", allow_http=False, allow_private=False)
    assert check_url("https://127.0.0.1/jwks", allow_http=False, allow_private=True).host == "127.0.0.1"


def test_check_url_refuses_http_unless_insecure_allowed() -> None:
    hint = r"only https is allowed \(allow http with --oidc-insecure-allow-http, or insecureAllowHTTP in a vMCP"
    with pytest.raises(UnsafeURLError, match=hint):
        check_url("http://idp.example/jwks", allow_http=False, allow_private=False)
    with pytest.raises(UnsafeURLError, match="refusing to fetch"):
        check_url("file:///etc/passwd", allow_http=True, allow_private=True)
    with pytest.raises(UnsafeURLError, match="only https"):
        check_url("gopher://idp.example/", allow_http=True, allow_private=True)
    assert check_url("http://idp.example/jwks", allow_http=True, allow_private=False).scheme == "http"


@pytest.mark.anyio
async def test_fetch_to_loopback_ip_is_refused_before_any_request(idp: LocalIdP) -> None:
    client = GuardedHTTPClient(allow_http=True, allow_private=False)
    try:
        with pytest.raises(UnsafeURLError, match=r"non-public address 127\.0\.0\.1"):
            await client.fetch("GET", idp.jwks_url, max_bytes=1024)
    finally:
        await client.aclose()
    assert idp.count("jwks") == 0


@pytest.mark.anyio
async def test_host_name_resolving_to_loopback_is_refused_at_connect_time(idp: LocalIdP) -> None:
    url = idp.jwks_url.replace("127.0.0.1", "localhost")
    client = GuardedHTTPClient(allow_http=True, allow_private=False)
    try:
        with pytest.raises(UnsafeURLError, match=r"refusing to connect to localhost: it resolves to"):
            await client.fetch("GET", url, max_bytes=1024 * 1024)
    finally:
        await client.aclose()
    assert idp.count("jwks") == 0


@pytest.mark.anyio
async def test_private_host_allowlist_and_allow_private_let_requests_through(idp: LocalIdP) -> None:
    url = idp.jwks_url.replace("127.0.0.1", "localhost")
    for client in (
        GuardedHTTPClient(allow_http=True, private_hosts=frozenset({"localhost"})),
        GuardedHTTPClient(allow_http=True, allow_private=True),
    ):
        try:
            resp = await client.fetch("GET", url, max_bytes=1024 * 1024)
        finally:
            await client.aclose()
        assert resp.status == 200
        assert "keys" in resp.json()
    assert idp.count("jwks") == 2


@pytest.mark.anyio
async def test_http_refused_without_insecure_even_when_private_allowed(idp: LocalIdP) -> None:
    client = GuardedHTTPClient(allow_http=False, allow_private=True)
    try:
        with pytest.raises(UnsafeURLError, match="only https"):
            await client.fetch("GET", idp.jwks_url, max_bytes=1024)
    finally:
        await client.aclose()
    assert idp.count("jwks") == 0


@pytest.mark.anyio
@pytest.mark.parametrize("route", ["big", "big-stream"])
async def test_oversized_responses_are_cut_off(idp: LocalIdP, http: GuardedHTTPClient, route: str) -> None:
    with pytest.raises(FetchError, match="exceeds 65536 bytes"):
        await http.fetch("GET", f"{idp.base}/{route}", max_bytes=64 * 1024)


@pytest.mark.anyio
async def test_redirects_are_not_followed(idp: LocalIdP, http: GuardedHTTPClient) -> None:
    resp = await http.fetch("GET", f"{idp.base}/redirect", max_bytes=1024)
    assert resp.status == 302
    assert idp.count("jwks") == 0


@pytest.mark.anyio
async def test_connection_errors_become_fetch_errors_without_the_query(http: GuardedHTTPClient) -> None:
    with pytest.raises(FetchError) as info:
        await http.fetch("GET", "http://127.0.0.1:1/tokeninfo", params={"access_token": "secret-tok"}, max_bytes=10)
    assert "secret-tok" not in str(info.value)
    assert "127.0.0.1:1/tokeninfo" in str(info.value)
