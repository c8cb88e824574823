"""`--workers N|auto` of `hivegate run` and `hivegate vmcp serve`: what it accepts, and the one-line error otherwise."""

from __future__ import annotations

import os

import pytest

from hivegate.asgi.prefork import parse_workers
from hivegate.cli.main import build_parser
from hivegate.cli.run import config_from_args
from hivegate.cli.workers import check_auth_server
from hivegate.errors import ConfigError


@pytest.mark.parametrize(("given", "expected"), [("1", 1), ("2", 2), (" 4 ", 4), ("16", 16)])
def test_a_positive_integer_is_that_many_workers(given: str, expected: int) -> None:
    assert parse_workers(given) == expected


def test_auto_is_one_worker_per_core_this_process_may_use() -> None:
    assert parse_workers("auto") == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("given", ["0", "-1", "x", "1.5", "", "two", "+2"])
def test_anything_else_is_refused_naming_the_flag(given: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_workers(given)
    assert str(caught.value) == f"--workers: expected a positive integer or auto, got {given!r}"


def test_run_defaults_to_one_worker_and_takes_the_flag() -> None:
    parser = build_parser()
    assert config_from_args(parser.parse_args(["run", "--", "true"])).workers == 1
    assert config_from_args(parser.parse_args(["run", "--workers", "3", "--", "true"])).workers == 3
    with pytest.raises(ConfigError) as caught:
        config_from_args(parser.parse_args(["run", "--workers", "x", "--", "true"]))
    assert str(caught.value) == "--workers: expected a positive integer or auto, got 'x'"


def test_vmcp_serve_takes_the_flag() -> None:
    assert build_parser().parse_args(["vmcp", "serve", "--config", "x.yaml", "--workers", "auto"]).workers == "auto"


def test_the_embedded_authorization_server_needs_shared_storage_and_keys_with_workers() -> None:
    from hivegate.authserver.settings import AuthServerConfig, StorageConfig

    memory = AuthServerConfig(issuer="https://as.example", upstreams=(), storage=StorageConfig(type="memory"))
    check_auth_server(1, memory)  # one process: as before
    with pytest.raises(ConfigError, match=r"^--workers: the embedded authorization server's storage\.type memory"):
        check_auth_server(2, memory)
    keyless = AuthServerConfig(issuer="https://as.example", upstreams=())
    with pytest.raises(ConfigError, match=r"signingKeySecretRefs and hmacSecretRefs$"):
        check_auth_server(2, keyless)
    keyed = AuthServerConfig(issuer="https://as.example", upstreams=(), signing_keys=(b"pem",), hmac_keys=(b"k",))
    check_auth_server(2, keyed)


@pytest.mark.usefixtures("fake_path_docker")
def test_a_container_image_is_served_by_one_process() -> None:
    args = build_parser().parse_args(["run", "--workers", "2", "docker.io/mcp/everything"])
    with pytest.raises(ConfigError) as caught:
        config_from_args(args)
    assert str(caught.value) == "--workers: a container image is served by one process; give --workers 1"
