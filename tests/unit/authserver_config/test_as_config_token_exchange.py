"""`upstreamProviders[].oidcConfig.tokenExchange`: the audiences an upstream access token may name to be exchanged;
strict, with errors naming the field path."""

from __future__ import annotations

from typing import Any

import pytest

from hivegate.authserver.secrets import SecretResolver
from hivegate.authserver.settings import parse_auth_server_config
from hivegate.errors import ConfigError

AT = "embeddedAuthServer.upstreamProviders[0].oidcConfig"


def spec(**oidc: Any) -> dict[str, Any]:
    config = {"clientId": "hivegate-as", "issuerUrl": "https://idp.example.com", **oidc}
    return {
        "issuer": "https://mcp.example.com",
        "upstreamProviders": [{"name": "corp", "type": "oidc", "oidcConfig": config}],
    }


def test_accepted_audiences_are_read_in_order_without_repeats() -> None:
    audiences = ["https://api.example.com", "6e74172b-be56-4843-9ff4-e66a39bb12e3", "https://api.example.com"]
    cfg = parse_auth_server_config(spec(tokenExchange={"acceptedAudiences": audiences}), resolver=SecretResolver())
    assert cfg.upstreams[0].accepted_audiences == ("https://api.example.com", "6e74172b-be56-4843-9ff4-e66a39bb12e3")
    assert parse_auth_server_config(spec(), resolver=SecretResolver()).upstreams[0].accepted_audiences == ()


@pytest.mark.parametrize(
    ("oidc", "message"),
    [
        (
            {"tokenExchange": {"acceptedAudience": ["x"]}},
            f"{AT}.tokenExchange.acceptedAudience: unknown field (did you mean 'acceptedAudiences'?)",
        ),
        ({"tokenExchange": {"acceptedAudiences": "x"}}, f"{AT}.tokenExchange.acceptedAudiences: must be a list"),
        (
            {"tokenExchange": {"acceptedAudiences": [""]}},
            f"{AT}.tokenExchange.acceptedAudiences[0]: must be a non-empty string",
        ),
        ({"tokenExchange": ["x"]}, f"{AT}.tokenExchange: must be a mapping"),
    ],
)
def test_bad_token_exchange_settings_name_the_field(oidc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        parse_auth_server_config(spec(**oidc), resolver=SecretResolver())
    assert str(refused.value) == message


def test_an_oauth2_upstream_has_no_token_exchange_settings() -> None:
    upstream = {
        "name": "gh",
        "type": "oauth2",
        "oauth2Config": {
            "clientId": "c",
            "authorizationEndpoint": "https://gh.example.com/authorize",
            "tokenEndpoint": "https://gh.example.com/token",
            "userInfo": {"endpointUrl": "https://gh.example.com/user"},
            "tokenExchange": {"acceptedAudiences": ["x"]},
        },
    }
    with pytest.raises(ConfigError) as refused:
        parse_auth_server_config(
            {"issuer": "https://mcp.example.com", "upstreamProviders": [upstream]}, resolver=SecretResolver()
        )
    assert str(refused.value) == "embeddedAuthServer.upstreamProviders[0].oauth2Config.tokenExchange: unknown field"
