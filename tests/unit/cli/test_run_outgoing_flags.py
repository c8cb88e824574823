"""`hivegate run`'s outgoing-authentication flags: `--remote-forward-headers` / `--remote-forward-headers-secret`
(header injection), `--upstream-inject`, `--token-exchange-subject-provider`; one strategy at a time, remote
backends only, one-line errors naming the flag and never a header's value."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hivegate.authserver.upstream.base import UpstreamTokens
from hivegate.cli.main import build_parser
from hivegate.cli.run import config_from_args
from hivegate.compose.lifecycle import Lifecycle
from hivegate.compose.run_gateway import _credentials
from hivegate.config.run import RunConfig
from hivegate.core.principal import Principal
from hivegate.errors import ConfigError
from hivegate.outgoing import Caller, StaticHeader, UpstreamToken
from hivegate.outgoing.credentials import ExchangedToken

REMOTE = "https://mcp.example.com/mcp"
OIDC = ("--oidc-issuer", "https://idp.example.com", "--oidc-audience", "mcp")


def config(*flags: str, target: tuple[str, ...] = (REMOTE,)) -> RunConfig:
    args = build_parser().parse_args(["run", *flags, *target])
    return config_from_args(args)


def error(*flags: str, target: tuple[str, ...] = (REMOTE,)) -> str:
    with pytest.raises(ConfigError) as caught:
        config(*flags, target=target)
    message = str(caught.value)
    assert "\n" not in message
    return message


# -- header injection ------------------------------------------------------------------------------------------------


def test_no_outgoing_flags_no_credential() -> None:
    cfg = config()
    assert (cfg.forward_headers, cfg.upstream_inject, cfg.token_exchange) == ((), None, None)
    assert _credentials(cfg, None, Lifecycle()) is None


def test_forward_headers_from_the_command_line_a_variable_a_file_and_a_secret_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("from-a-file\n")
    monkeypatch.setenv("E2E_TENANT_KEY", " from-a-variable ")
    monkeypatch.setenv("HIVEGATE_SECRET_MY_API_KEY", "from-a-secret")
    cfg = config(
        "--remote-forward-headers", "X-Env=production=blue",
        "--remote-forward-headers", "X-Empty=",
        "--remote-forward-headers-secret", "X-Tenant-Key=env:E2E_TENANT_KEY",
        "--remote-forward-headers-secret", f"X-File-Key=file:{key_file}",
        "--remote-forward-headers-secret", "Authorization=my-api-key",
    )  # fmt: skip
    assert cfg.forward_headers == (
        ("X-Env", "production=blue"),
        ("X-Empty", ""),
        ("X-Tenant-Key", "from-a-variable"),
        ("X-File-Key", "from-a-file"),
        ("Authorization", "from-a-secret"),
    )
    assert "from-a" not in repr(cfg)
    credential = _credentials(cfg, None, Lifecycle())
    assert isinstance(credential, StaticHeader)
    assert not credential.needs_caller
    assert asyncio.run(credential.headers(None)) == dict(cfg.forward_headers)
    assert "from-a" not in repr(credential)


def test_a_relative_secret_file_is_read_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text("k-1")
    monkeypatch.chdir(tmp_path)
    assert config("--remote-forward-headers-secret", "X-Key=file:key").forward_headers == (("X-Key", "k-1"),)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--remote-forward-headers", "X-Key"), "--remote-forward-headers: expected NAME=VALUE"),
        (("--remote-forward-headers", "=v"), "--remote-forward-headers: expected NAME=VALUE"),
        (("--remote-forward-headers-secret", "X-Key"), "--remote-forward-headers-secret: expected NAME=SECRET"),
        (("--remote-forward-headers", "X Key=v"), "--remote-forward-headers: 'X Key' is not a valid header name"),
        (("--remote-forward-headers", "Host=evil"), "--remote-forward-headers: the Host header cannot be set"),
        (
            ("--remote-forward-headers", "mcp-session-id=1"),
            "--remote-forward-headers: the mcp-session-id header cannot be set",
        ),
        (
            ("--remote-forward-headers-secret", "Content-Length=env:HOME"),
            "--remote-forward-headers-secret: the Content-Length header cannot be set",
        ),
        (
            ("--remote-forward-headers", "X-Key=a", "--remote-forward-headers-secret", "x-key=env:HOME"),
            "--remote-forward-headers-secret: the x-key header is given twice",
        ),
        (
            ("--remote-forward-headers", "X-Key=caf\u00e9"),
            "--remote-forward-headers: the value of X-Key must be printable ASCII on one line",
        ),
        (
            ("--remote-forward-headers-secret", "X-Key="),
            "--remote-forward-headers-secret X-Key: needs env:VARIABLE, file:PATH or a secret name",
        ),
        (
            ("--remote-forward-headers-secret", "X-Key=env:"),
            "--remote-forward-headers-secret X-Key: env: needs a variable",
        ),
        (
            ("--remote-forward-headers-secret", "X-Key=env:E2E_NOT_SET_ANYWHERE"),
            "--remote-forward-headers-secret X-Key: environment variable E2E_NOT_SET_ANYWHERE is not set",
        ),
        (
            ("--remote-forward-headers-secret", "X-Key=no-such-secret"),
            "--remote-forward-headers-secret X-Key: environment variable HIVEGATE_SECRET_NO_SUCH_SECRET is not set",
        ),
        (
            ("--remote-forward-headers-secret", "X-Key=file:/no/such/key"),
            "--remote-forward-headers-secret X-Key: cannot read /no/such/key",
        ),
    ],
)
def test_bad_forward_headers_name_the_flag(flags: tuple[str, ...], message: str) -> None:
    assert message in error(*flags)


def test_a_secret_value_is_never_in_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2E_MULTILINE", "s3cret-one\ns3cret-two")
    monkeypatch.setenv("E2E_BLANK", "   ")
    message = error("--remote-forward-headers-secret", "X-Key=env:E2E_MULTILINE")
    assert message == "--remote-forward-headers-secret: the value of X-Key must be printable ASCII on one line"
    assert "s3cret" not in message
    assert error("--remote-forward-headers-secret", "X-Key=env:E2E_BLANK") == (
        "--remote-forward-headers-secret X-Key: $E2E_BLANK is empty"
    )
    assert "s3cret" not in error("--remote-forward-headers", "X Key=s3cret")


# -- one strategy, remote backends only -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "first", "second"),
    [
        (("--remote-forward-headers", "X=1", "--upstream-inject", "corp"), "--remote-forward-headers",
         "--upstream-inject"),
        (("--remote-forward-headers-secret", "X=env:HOME", "--token-exchange-url", "https://sts.example.com"),
         "--remote-forward-headers-secret", "--token-exchange-url"),
        (("--upstream-inject", "corp", "--token-exchange-url", "https://sts.example.com"), "--upstream-inject",
         "--token-exchange-url"),
    ],
)  # fmt: skip
def test_one_outgoing_strategy_at_a_time(flags: tuple[str, ...], first: str, second: str) -> None:
    assert error(*flags) == f"{second} cannot be combined with {first}: the remote server gets one outgoing credential"


@pytest.mark.parametrize("strategy", [("--upstream-inject", "corp"), ("--remote-forward-headers", "X=1")])
def test_a_stray_token_exchange_flag_is_never_ignored(strategy: tuple[str, ...]) -> None:
    flags = (*strategy, "--auth-server-config", "as.yaml", "--token-exchange-audience", "backend")
    assert error(*flags) == "--token-exchange-audience needs --token-exchange-url"


def test_both_header_flags_are_one_strategy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("E2E_KEY", "k")
    cfg = config("--remote-forward-headers", "X-A=1", "--remote-forward-headers-secret", "X-B=env:E2E_KEY")
    assert cfg.forward_headers == (("X-A", "1"), ("X-B", "k"))


@pytest.mark.parametrize(
    "flags",
    [
        ("--remote-forward-headers", "X=1"),
        ("--remote-forward-headers-secret", "X=env:HOME"),
        ("--upstream-inject", "corp"),
    ],
)
def test_a_stdio_server_or_a_legacy_sse_backend_takes_no_outgoing_credential(flags: tuple[str, ...]) -> None:
    assert error(*flags, target=("--", "server-bin")) == (
        f"{flags[0]}: a stdio server has no HTTP requests to authenticate"
    )
    assert error(*flags, "--transport", "sse") == (
        f"{flags[0]}: a legacy SSE backend is not supported; use streamable-http"
    )


# -- upstream inject ---------------------------------------------------------------------------------------------------


def test_upstream_inject_needs_the_embedded_authorization_server() -> None:
    assert error("--upstream-inject", "corp") == (
        "--upstream-inject needs --auth-server-config: the embedded authorization server keeps the callers' "
        "upstream tokens"
    )
    assert error("--upstream-inject", " ", "--auth-server-config", "as.yaml").startswith("--upstream-inject: give")
    cfg = config("--upstream-inject", "corp", "--auth-server-config", "as.yaml")
    assert cfg.upstream_inject == "corp"


def _embedded(tokens: dict[tuple[str, str], UpstreamTokens]) -> Any:
    async def lookup(session: str, provider: str) -> UpstreamTokens | None:
        return tokens.get((session, provider))

    return SimpleNamespace(server=SimpleNamespace(upstream_names=("corp", "github"), upstream_tokens=lookup))


def test_upstream_inject_sends_the_callers_upstream_token() -> None:
    cfg = config("--upstream-inject", "github", "--auth-server-config", "as.yaml")
    embedded = _embedded({("s-1", "github"): UpstreamTokens(access_token="gh-token")})
    credential = _credentials(cfg, embedded, Lifecycle())
    assert isinstance(credential, UpstreamToken)
    caller = Caller(Principal("alice", "https://as.example", "jwt", {"tsid": "s-1"}), "own-token")
    assert asyncio.run(credential.headers(caller)) == {"Authorization": "Bearer gh-token"}


def test_an_upstream_provider_the_authorization_server_lacks_is_an_error_naming_the_flag() -> None:
    cfg = config("--upstream-inject", "entra", "--auth-server-config", "as.yaml")
    with pytest.raises(ConfigError) as caught:
        _credentials(cfg, _embedded({}), Lifecycle())
    assert str(caught.value) == (
        "--upstream-inject: --auth-server-config has no upstream provider 'entra' (configured: corp, github)"
    )


# -- token exchange: the subject ---------------------------------------------------------------------------------------


def test_token_exchange_subject_provider() -> None:
    flags = ("--token-exchange-url", "https://sts.example.com/token", "--token-exchange-audience", "backend")
    assert error(*flags, "--token-exchange-subject-provider", "corp", *OIDC) == (
        "--token-exchange-subject-provider needs --auth-server-config: the embedded authorization server keeps the "
        "callers' upstream tokens"
    )
    assert error("--token-exchange-subject-provider", "corp") == (
        "--token-exchange-subject-provider needs --token-exchange-url"
    )
    cfg = config(*flags, "--token-exchange-subject-provider", "github", "--auth-server-config", "as.yaml")
    assert cfg.token_exchange is not None
    assert cfg.token_exchange.subject_provider_name == "github"
    lifecycle = Lifecycle()
    assert isinstance(_credentials(cfg, _embedded({}), lifecycle), ExchangedToken)
    asyncio.run(lifecycle.shutdown())  # closes the STS client
    unknown = config(*flags, "--token-exchange-subject-provider", "entra", "--auth-server-config", "as.yaml")
    with pytest.raises(ConfigError) as caught:
        _credentials(unknown, _embedded({}), Lifecycle())
    assert str(caught.value).startswith("--token-exchange-subject-provider: upstream provider 'entra'")


def test_without_oidc_or_an_authorization_server_there_is_no_token_to_exchange() -> None:
    flags = ("--token-exchange-url", "https://sts.example.com/token")
    assert error(*flags, "--anonymous") == (
        "--token-exchange-url: the caller's token is the subject of the exchange, and --anonymous accepts callers "
        "without one; configure --oidc-issuer or --auth-server-config"
    )
    assert error(*flags).startswith("--token-exchange-url: the caller's token is the subject of the exchange, and "
                                     "the local user presents none")  # fmt: skip
    assert config(*flags, *OIDC).token_exchange is not None
    assert config(*flags, "--auth-server-config", "as.yaml").token_exchange is not None
