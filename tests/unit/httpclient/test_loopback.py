from __future__ import annotations

import pytest

from hivegate.httpclient.loopback import is_loopback_host, is_secure_transport, uses_http


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "localhost.", "127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]",
             "::ffff:127.0.0.1"],
)  # fmt: skip
def test_these_hosts_are_this_machine(host: str) -> None:
    assert is_loopback_host(host)


@pytest.mark.parametrize(
    "host", ["", None, "0.0.0.0", "::", "10.0.0.1", "192.168.1.1", "localhost.example.com", "app.localhost",
             "127.0.0.1.nip.io", "128.0.0.1", "::2", "::ffff:10.0.0.1"],
)  # fmt: skip
def test_these_hosts_are_not(host: str | None) -> None:
    assert not is_loopback_host(host)


@pytest.mark.parametrize(
    ("url", "secure"),
    [
        ("https://idp.example.com/token", True),
        ("http://127.0.0.1:8080/token", True),
        ("http://[::1]:8080/token", True),
        ("http://localhost/token", True),
        ("http://idp.example.com/token", False),
        ("http://10.0.0.5/token", False),
        ("https:///no-host", False),
        ("ftp://127.0.0.1/x", False),
        ("/relative", False),
    ],
)
def test_credentials_travel_over_https_or_loopback_http_only(url: str, secure: bool) -> None:
    assert is_secure_transport(url) is secure


def test_a_client_allows_http_only_when_a_configured_url_uses_it() -> None:
    assert not uses_http(["https://a.example/x", None])
    assert uses_http(["https://a.example/x", "http://127.0.0.1:9/token"])
