"""The shared config reader: what its errors name, as both config files report them."""

from __future__ import annotations

from typing import Any

import pytest

from hivegate.authserver.secrets import SecretResolver
from hivegate.authserver.settings import parse_auth_server_config
from hivegate.config.reader import Reader
from hivegate.errors import ConfigError


def test_unknown_keys_first_written_or_first_sorted() -> None:
    data = {"zeta": 1, "alpha": 2}
    with pytest.raises(ConfigError, match=r"^spec\.zeta: unknown field$"):
        Reader(data, "spec").done()
    with pytest.raises(ConfigError, match=r"^spec\.alpha: unknown field$"):
        Reader(data, "spec", sort_unknown=True).done()


def test_known_reports_a_misspelt_key_before_a_missing_one() -> None:
    with pytest.raises(ConfigError, match=r"^nmae: unknown field \(did you mean 'name'\?\)$"):
        Reader({"nmae": "x"}, "", known=("name",))
    r = Reader({"name": "x"}, "", known=("name",))
    assert r.text("name", required=True) == "x"
    r.done()


@pytest.mark.parametrize(
    ("where", "data", "read", "message"),
    [
        ("", [], lambda r: None, "config: must be a mapping"),
        ("", {}, lambda r: r.text("name", required=True), "name: required"),
        ("a.b", {"n": 5}, lambda r: r.text("n"), "a.b.n: must be a string"),
        ("a", {"l": []}, lambda r: r.items("l", required=True), "a.l: at least one entry is required"),
        ("a", {"l": [1, 2]}, lambda r: r.items("l", max_items=1), "a.l: at most 1 entries"),
        ("a", {"l": ["x", ""]}, lambda r: r.strings("l"), "a.l[1]: must be a non-empty string"),
        ("a", {"d": "5x"}, lambda r: r.duration("d", default=1.0), "a.d: invalid duration '5x'"),
        ("a", {"m": {"k": 1}}, lambda r: r.string_map("m"), "a.m.k: must be a string (quote numbers and booleans)"),
    ],
)
def test_errors_name_the_path(where: str, data: Any, read: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        read(Reader(data, where))
    assert str(info.value).startswith(message)


def test_auth_server_config_names_the_alphabetically_first_unknown_key(tmp_path: Any) -> None:
    upstream = {"name": "idp", "type": "oidc", "oidcConfig": {"clientId": "c", "issuerUrl": "https://idp.example.com"}}
    spec = {"issuer": "https://as.example.com", "upstreamProviders": [upstream], "zz": 1, "aa": 2}
    with pytest.raises(ConfigError, match=r"^embeddedAuthServer\.aa: unknown field$"):
        parse_auth_server_config(spec, resolver=SecretResolver(base_dir=tmp_path))


def test_a_misspelt_key_suggests_the_key_meant_and_only_a_close_one() -> None:
    def unknown(key: str, *valid: str) -> str:
        r = Reader({key: 1}, "spec")
        for name in valid:
            r.get(name)
        with pytest.raises(ConfigError) as info:
            r.done()
        return str(info.value)

    assert unknown("issuerURL", "issuerUrl", "clientId") == "spec.issuerURL: unknown field (did you mean 'issuerUrl'?)"
    assert unknown("cleintId", "issuerUrl", "clientId") == "spec.cleintId: unknown field (did you mean 'clientId'?)"
    assert unknown("audiance", "audience") == "spec.audiance: unknown field (did you mean 'audience'?)"
    assert unknown("idTokenLifespan", "accessTokenLifespan") == "spec.idTokenLifespan: unknown field"
    assert unknown("x", "y") == "spec.x: unknown field"
