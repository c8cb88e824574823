"""Static clients' `grantTypes`: a machine client that only exchanges tokens needs no redirect URI but a secret."""

from __future__ import annotations

from typing import Any

import pytest

from hivegate.authserver.secrets import SecretResolver
from hivegate.authserver.settings import TOKEN_EXCHANGE_GRANT, parse_auth_server_config
from hivegate.errors import ConfigError

UPSTREAM = {"name": "corp", "type": "oidc", "oidcConfig": {"issuerUrl": "https://idp.example.com", "clientId": "c"}}


def spec(client: dict[str, Any]) -> dict[str, Any]:
    return {"issuer": "https://sts.example.com", "upstreamProviders": [UPSTREAM], "clients": [client]}


def resolver() -> SecretResolver:
    return SecretResolver(manifests={"gw": {"secret": b"a-long-client-secret"}})


def test_a_token_exchange_client_needs_no_redirect_uri() -> None:
    client = {"clientId": "gateway-a", "grantTypes": ["token_exchange"],
              "clientSecretRef": {"name": "gw", "key": "secret"}}  # fmt: skip
    cfg = parse_auth_server_config(spec(client), resolver=resolver())
    assert cfg.clients[0].grant_types == (TOKEN_EXCHANGE_GRANT,)
    assert cfg.clients[0].redirect_uris == ()


def test_clients_default_to_the_code_and_refresh_grants() -> None:
    cfg = parse_auth_server_config(spec({"clientId": "app", "redirectUris": ["http://127.0.0.1/cb"]}),
                                   resolver=resolver())  # fmt: skip
    assert cfg.clients[0].grant_types == ("authorization_code", "refresh_token")


@pytest.mark.parametrize(
    ("client", "message"),
    [
        ({"clientId": "x", "grantTypes": ["token_exchange"]}, "token_exchange needs a confidential client"),
        ({"clientId": "x", "grantTypes": ["password"]}, "clients[0].grantTypes[0]: 'password' is not one of"),
        ({"clientId": "x"}, "redirectUris"),
    ],
)
def test_bad_static_clients_name_the_field(client: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_auth_server_config(spec(client), resolver=resolver())
