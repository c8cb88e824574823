"""Every flag of `thv run` (ToolHive's CLI reference, docs/toolhive/reference/cli/thv_run.md) is known to
`hivegate run`: it works, or it is refused in one line that names it and says why, never with argparse's
"unrecognized arguments"."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hivegate.cli.goflags import go_style
from hivegate.cli.main import build_parser
from hivegate.cli.run import config_from_args
from hivegate.cli.run_thv import REFUSED
from hivegate.config.run import RunConfig
from hivegate.errors import ConfigError

THV_RUN_FLAGS = """
--audit-config --authz-config --ca-cert --enable-audit -e --env --env-file --env-file-dir -f --foreground
--from-config --group -h --help --host --ignore-globally --image-verification --isolate-network
--jwks-allow-private-ip --jwks-auth-token-file -l --label --name --oidc-audience --oidc-client-id
--oidc-client-secret --oidc-introspection-url --oidc-issuer --oidc-jwks-url --otel-enable-prometheus-metrics-path
--otel-endpoint --otel-env-vars --otel-headers --otel-insecure --otel-metrics-enabled --otel-sampling-rate
--otel-service-name --otel-tracing-enabled --permission-profile --print-resolved-overlays --proxy-mode --proxy-port
--remote-auth --remote-auth-authorize-url --remote-auth-callback-port --remote-auth-client-id
--remote-auth-client-secret --remote-auth-client-secret-file --remote-auth-issuer --remote-auth-scopes
--remote-auth-skip-browser --remote-auth-timeout --remote-auth-token-url --resource-url --secret --target-host
--target-port --thv-ca-bundle --tools --tools-override --transport --trust-proxy-headers -v --volume
""".split()  # noqa: SIM905 - the reference's list, as written


def run_parser() -> argparse.ArgumentParser:
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    parser = sub.choices["run"]
    assert isinstance(parser, argparse.ArgumentParser)
    return parser


def config(*argv: str) -> RunConfig:
    parser = build_parser()
    return config_from_args(parser.parse_args(go_style(parser, ["run", *argv])))


def test_every_thv_run_flag_is_known_to_hivegate_run() -> None:
    known = run_parser()._option_string_actions
    assert [flag for flag in THV_RUN_FLAGS if flag not in known] == []


@pytest.mark.parametrize("flag", sorted(REFUSED))
def test_a_refused_flag_is_named_with_its_reason(flag: str) -> None:
    action = run_parser()._option_string_actions[flag]
    given = [flag] if action.nargs == 0 else [flag, "x"]
    with pytest.raises(ConfigError) as info:
        config(*given, "--", "server")
    assert str(info.value).startswith(f"{flag} (a thv run flag): ")


def test_every_refusal_says_why() -> None:
    assert all(len(why) > 40 for _, why in REFUSED.values())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--image-verification", "enabled"], "--image-verification enabled: hivegate does not verify image"),
        (["--target-host", "10.0.0.5"], "--target-host 10.0.0.5: a container's HTTP server is reached on its port"),
        (["--otel-metrics-enabled"], "--otel-metrics-enabled: hivegate exports traces over OTLP, not metrics"),
        (["--otel-tracing-enabled=maybe"], "--otel-tracing-enabled: expected true or false, got 'maybe'"),
        (["--otel-insecure"], "--otel-insecure needs --otel-endpoint"),
        (["--otel-insecure", "--otel-endpoint", "https://c:4318"], "--otel-insecure asks for http, and"),
        (["--isolate-network"], "--isolate-network is for a container image, and the command 'server' is not one"),
    ],
)
def test_the_thv_spellings_refuse_what_they_cannot_mean(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(*argv, "--", "server")
    assert str(info.value).startswith(message)


def test_the_thv_spellings_that_work() -> None:
    cfg = config("--otel-endpoint", "collector:4318", "--otel-insecure", "--otel-metrics-enabled=false",
                 "--image-verification", "warn", "--target-host", "127.0.0.1", "--debug", "--", "server")  # fmt: skip
    assert (cfg.otel_endpoint, cfg.log_level) == ("http://collector:4318", "debug")
    assert config("--otel-endpoint", "collector:4318", "--", "server").otel_endpoint == "https://collector:4318"
    assert config("--otel-endpoint", "http://c:4318", "--otel-tracing-enabled=false", "--", "s").otel_endpoint is None
    assert config("--ignore-globally=false", "--trust-proxy-headers=false", "--", "server").command == ("server",)


def test_env_files_and_folders_set_the_servers_environment(tmp_path: Path) -> None:
    one = tmp_path / "one.env"
    one.write_text("# a comment\nA=1\nexport B='two words'\n\nC=\"3\"\n")
    folder = tmp_path / "vault"
    folder.mkdir()
    (folder / "b").write_text("B=from-folder\nD=4\n")
    (folder / ".hidden").write_text("E=5\n")
    cfg = config("--env-file", str(one), "--env-file-dir", str(folder), "-e", "D=flag", "--", "server")
    assert cfg.env == {"A": "1", "B": "from-folder", "C": "3", "D": "flag"}
    (folder / "bad").write_text("just words\n")
    with pytest.raises(ConfigError) as info:
        config("--env-file-dir", str(folder), "--", "server")
    assert str(info.value) == f"--env-file {folder / 'bad'}:1: expected KEY=VALUE"
    with pytest.raises(ConfigError, match="--env-file sets the stdio server's environment"):
        config("--env-file", str(one), "https://mcp.example.com/mcp")


def test_isolate_network_leaves_a_stdio_container_without_network(fake_path_docker: None) -> None:
    cfg = config("--isolate-network", "docker.io/mcp/everything")
    assert cfg.container is not None
    assert cfg.container.network == "none"
    with pytest.raises(ConfigError, match="--isolate-network: here an isolated container has no network at all"):
        config("--isolate-network", "--permission-profile", "network", "docker.io/mcp/everything")


def test_thvs_dash_f_is_foreground_and_here_it_names_a_file() -> None:
    parser = build_parser()
    from hivegate.cli.run_file import file_configs

    args = parser.parse_args(["run", "-f", "fetch"])
    with pytest.raises(ConfigError) as info:
        file_configs(args, ["-f", "fetch"], foreground=True)
    assert str(info.value) == "-f/--file: no such file fetch (ToolHive's -f is --foreground here)"
