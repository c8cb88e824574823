from __future__ import annotations

import pytest

from hivegate.errors import AuthenticationError
from hivegate.oauth.bearer import extract_bearer, www_authenticate
from hivegate.oauth.metadata import protected_resource_metadata, resource_metadata_url


@pytest.mark.parametrize(
    "header", ["Bearer abc.def-ghi_~+/==", "bearer abc.def-ghi_~+/==", "BEARER   abc.def-ghi_~+/== "]
)
def test_extract_bearer_accepts_any_case_scheme(header: str) -> None:
    assert extract_bearer(header) == "abc.def-ghi_~+/=="


@pytest.mark.parametrize(
    ("header", "description"),
    [
        (None, "Missing Authorization header"),
        ("", "Missing Authorization header"),
        ("   ", "Missing Authorization header"),
        ("Basic dXNlcjpwYXNz", "Authorization header must use the Bearer scheme"),
        ("Bearertoken", "Authorization header must use the Bearer scheme"),
        ("Bearer", "Bearer token is empty"),
        ("Bearer    ", "Bearer token is empty"),
        ("Bearer two words", "Bearer token is malformed"),
        ('Bearer tok"en', "Bearer token is malformed"),
    ],
)
def test_extract_bearer_refuses_with_invalid_request(header: str | None, description: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        extract_bearer(header)
    assert info.value.error == "invalid_request"
    assert info.value.description == description
    assert info.value.status_code == 401


def test_www_authenticate_lists_known_parts_in_order() -> None:
    value = www_authenticate(
        realm="https://idp.example",
        resource_metadata="https://gw.example/.well-known/oauth-protected-resource/mcp",
        scope="openid mcp:tools",
        error="invalid_token",
        error_description="Token has expired",
    )
    assert value == (
        'Bearer realm="https://idp.example", '
        'resource_metadata="https://gw.example/.well-known/oauth-protected-resource/mcp", '
        'scope="openid mcp:tools", error="invalid_token", error_description="Token has expired"'
    )


def test_www_authenticate_omits_none_parts() -> None:
    assert (
        www_authenticate(realm=None, resource_metadata="https://g/x", scope=None)
        == 'Bearer resource_metadata="https://g/x"'
    )
    assert www_authenticate() == "Bearer"


def test_www_authenticate_escapes_quotes_backslashes_and_drops_line_breaks() -> None:
    value = www_authenticate(realm='a"b\\c', error_description='bad "x"\r\nSet-Cookie: evil=1')
    assert value == 'Bearer realm="a\\"b\\\\c", error_description="bad \\"x\\"  Set-Cookie: evil=1"'
    assert "\r" not in value
    assert "\n" not in value


def test_protected_resource_metadata_document() -> None:
    doc = protected_resource_metadata("https://gw.example/mcp", ["https://idp.example"], ["openid", "mcp"])
    assert doc == {
        "resource": "https://gw.example/mcp",
        "authorization_servers": ["https://idp.example"],
        "bearer_methods_supported": ["header"],
        "scopes_supported": ["openid", "mcp"],
    }
    assert "scopes_supported" not in protected_resource_metadata("https://gw.example/mcp", ["https://idp.example"], [])


@pytest.mark.parametrize(
    ("base", "path", "expected"),
    [
        ("https://gw.example", "/mcp", "https://gw.example/.well-known/oauth-protected-resource/mcp"),
        ("http://127.0.0.1:8080/ignored", "mcp", "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"),
        ("https://gw.example/", "/", "https://gw.example/.well-known/oauth-protected-resource"),
    ],
)
def test_resource_metadata_url(base: str, path: str, expected: str) -> None:
    assert resource_metadata_url(base, path) == expected


def test_resource_metadata_url_needs_an_absolute_base() -> None:
    with pytest.raises(ValueError, match="not an absolute URL"):
        resource_metadata_url("gw.example", "/mcp")
