"""Config errors for keys and token lifespans: one line, naming the file and the field path."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hivegate.authserver.build import build_embedded_auth_server
from hivegate.authserver.secrets import SecretResolver
from hivegate.authserver.settings import Lifespans, load_auth_server_config, parse_auth_server_config
from hivegate.errors import ConfigError

UPSTREAM = {"name": "okta", "type": "oidc", "oidcConfig": {"clientId": "c", "issuerUrl": "https://idp.example.com"}}
HMAC = "h" * 32


@functools.cache
def private_pem(kind: str) -> bytes:
    weak = kind == "rsa1024"  # on purpose: it must be refused
    key: Any = rsa.generate_private_key(65537, 1024) if weak else ec.generate_private_key(ec.SECP256R1())  # noqa: S505
    return bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def public_pem() -> bytes:
    key = serialization.load_pem_private_key(private_pem("ec"), None)
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_config(tmp_path: Path, pems: dict[str, bytes], **spec: Any) -> Path:
    """`auth.yaml` as an `MCPExternalAuthConfig` manifest, with each PEM in its own file referenced by `{file}`."""
    for name, data in pems.items():
        (tmp_path / name).write_bytes(data)
    body = {
        "issuer": "http://127.0.0.1:1",
        "upstreamProviders": [UPSTREAM],
        "storage": {"type": "memory"},
        "signingKeySecretRefs": [{"file": str(tmp_path / n)} for n in pems],
        **spec,
    }
    manifest = {"kind": "MCPExternalAuthConfig", "spec": {"type": "embeddedAuthServer", "embeddedAuthServer": body}}
    path = tmp_path / "auth.yaml"
    path.write_text(yaml.safe_dump(manifest))
    return path


KEYS = "auth.yaml.spec.embeddedAuthServer.signingKeySecretRefs"


@pytest.mark.parametrize(
    ("pems", "message"),
    [
        ({"small.pem": private_pem("rsa1024")}, f"{KEYS}[0]: RSA keys must have at least 2048 bits"),
        ({"ok.pem": private_pem("ec"), "pub.pem": public_pem()}, f"{KEYS}[1]: is a public key"),
        ({"a.pem": private_pem("ec"), "b.pem": private_pem("ec")}, f"{KEYS}[1]: the same key is already listed at [0]"),
        ({"junk.pem": b"-----BEGIN PRIVATE KEY-----\nnope\n"}, f"{KEYS}[0]: not a PEM private key"),
    ],
)
def test_bad_signing_keys_are_named_by_file_and_path(tmp_path: Path, pems: dict[str, bytes], message: str) -> None:
    path = write_config(tmp_path, pems)
    load_auth_server_config(path)  # loads (manifests with placeholder keys do); building the server refuses them
    with pytest.raises(ConfigError) as refused:
        build_embedded_auth_server(str(path), server_name="t", mcp_path="/mcp", resource_url=None)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


@pytest.mark.anyio
async def test_good_signing_keys_load_and_build(tmp_path: Path) -> None:
    path = write_config(tmp_path, {"a.pem": private_pem("ec")})
    assert load_auth_server_config(path).signing_keys == (private_pem("ec"),)
    embedded = build_embedded_auth_server(str(path), server_name="t", mcp_path="/mcp", resource_url=None)
    try:
        assert not embedded.server.keys.ephemeral
        assert embedded.server.keys.current.alg == "ES256"
    finally:
        await embedded.aclose()


def test_an_rsa_1024_key_is_one_line_on_stderr_naming_the_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"small.pem": private_pem("rsa1024")})
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HIVEGATE_STATE_DIR": str(tmp_path / "state")}
    done = subprocess.run(
        [sys.executable, "-m", "hivegate", "run", "--foreground", "--auth-server-config", str(config), "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no joserfc SecurityWarning before it
    assert f"{KEYS}[0]: RSA keys must have at least 2048 bits" in lines[0]


@pytest.mark.parametrize("index", [0, 1, 2])  # the current key and the old ones alike
def test_every_hmac_key_must_have_32_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: int) -> None:
    for i in range(3):
        monkeypatch.setenv(f"HG_TEST_HMAC_{i}", "short" if i == index else f"{i}" * 32)
    refs = [{"env": f"HG_TEST_HMAC_{i}"} for i in range(3)]
    with pytest.raises(ConfigError) as refused:
        load_auth_server_config(write_config(tmp_path, {}, hmacSecretRefs=refs))
    assert str(refused.value) == (
        f"auth.yaml.spec.embeddedAuthServer.hmacSecretRefs[{index}]: HMAC keys must be at least 32 bytes (got 5)"
    )


def test_hmac_keys_of_32_bytes_or_more_load_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HG_TEST_NEW", "n" * 32)
    monkeypatch.setenv("HG_TEST_OLD", "o" * 64)
    cfg = load_auth_server_config(
        write_config(tmp_path, {}, hmacSecretRefs=[{"env": "HG_TEST_NEW"}, {"env": "HG_TEST_OLD"}])
    )
    assert cfg.hmac_keys == (b"n" * 32, b"o" * 64)


# -- token lifespans ---------------------------------------------------------------------------------------------------


def lifespans(values: dict[str, Any] | None, tmp_path: Path) -> Lifespans:
    spec: dict[str, Any] = {"issuer": "https://as.example.com", "upstreamProviders": [UPSTREAM]}
    if values is not None:
        spec["tokenLifespans"] = values
    return parse_auth_server_config(spec, resolver=SecretResolver(base_dir=tmp_path)).lifespans


@pytest.mark.parametrize("values", [None, {}, {"accessTokenLifespan": ""}])
def test_lifespans_default_to_1h_168h_10m(tmp_path: Path, values: dict[str, Any] | None) -> None:
    got = lifespans(values, tmp_path)
    assert got == Lifespans(access=3600.0, refresh=168 * 3600.0, auth_code=600.0)
    assert (got.access, got.refresh, got.auth_code) == (3600.0, 604800.0, 600.0)


# ToolHive's bounds: access 1m..24h, refresh 1h..30d, authorization codes 30s..10m
BOUNDS = {
    "accessTokenLifespan": ("access", "1m", 60.0, "24h", 86400.0),
    "refreshTokenLifespan": ("refresh", "1h", 3600.0, "30d", 2592000.0),
    "authCodeLifespan": ("auth_code", "30s", 30.0, "10m", 600.0),
}


@pytest.mark.parametrize("key", list(BOUNDS))
def test_lifespans_accept_their_minimum_and_maximum(tmp_path: Path, key: str) -> None:
    attr, low, low_s, high, high_s = BOUNDS[key]
    assert getattr(lifespans({key: low}, tmp_path), attr) == low_s
    assert getattr(lifespans({key: high}, tmp_path), attr) == high_s
    with pytest.raises(ConfigError, match=r"give a unit"):  # a bare number: seconds? minutes? (Go says neither)
        lifespans({key: f"{high_s:g}"}, tmp_path)


def test_lifespans_take_go_style_durations(tmp_path: Path) -> None:
    got = lifespans(
        {"accessTokenLifespan": "1h30m", "refreshTokenLifespan": "720h", "authCodeLifespan": "90s"}, tmp_path
    )
    assert got == Lifespans(access=5400.0, refresh=2592000.0, auth_code=90.0)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("accessTokenLifespan", "59s", "must be between 1m and 1d, got 59s"),
        ("accessTokenLifespan", "24h1s", "must be between 1m and 1d, got 24h1s"),
        ("refreshTokenLifespan", "59m", "must be between 1h and 30d, got 59m"),
        ("refreshTokenLifespan", "721h", "must be between 1h and 30d, got 721h"),
        ("authCodeLifespan", "29s", "must be between 30s and 10m, got 29s"),
        ("authCodeLifespan", "11m", "must be between 30s and 10m, got 11m"),
        ("authCodeLifespan", "0", "must be between 30s and 10m, got 0"),
        ("accessTokenLifespan", "inf", "invalid duration 'inf'"),
        ("accessTokenLifespan", "nan", "invalid duration 'nan'"),
        ("accessTokenLifespan", "1 hour", "invalid duration '1 hour'"),
        ("refreshTokenLifespan", "1w", "invalid duration '1w'"),
        ("refreshTokenLifespan", "31d", "must be between 1h and 30d, got 31d"),
        ("authCodeLifespan", "-5m", "invalid duration '-5m'"),
        ("authCodeLifespan", "10mins", "invalid duration '10mins'"),
        ("accessTokenLifespan", 3600, "must be a string"),
    ],
)
def test_bad_lifespans_are_one_line_errors_naming_the_field(tmp_path: Path, key: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as refused:
        lifespans({key: value}, tmp_path)
    assert str(refused.value).startswith(f"embeddedAuthServer.tokenLifespans.{key}: {message}")
    assert "\n" not in str(refused.value)


def test_an_unknown_lifespan_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^embeddedAuthServer\.tokenLifespans\.idTokenLifespan: unknown field$"):
        lifespans({"idTokenLifespan": "1h"}, tmp_path)


def test_a_yaml_syntax_error_names_the_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "auth.yaml"
    config.write_text("issuer: https://mcp.example.com\nupstreamProviders: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_auth_server_config(config)
    assert str(info.value).startswith(f"auth server config {config}:3:1: not valid YAML: ")
