"""ToolHive command lines (Go flags) parse the same here: `--flag=true|false` for booleans, and a flag quoted
together with its value is a one-line error, not a silent positional."""

from __future__ import annotations

import argparse

import pytest

from hivegate.cli.goflags import go_style
from hivegate.cli.main import build_parser, main


def parse(*argv: str) -> argparse.Namespace:
    parser = build_parser()
    return parser.parse_args(go_style(parser, argv))


@pytest.mark.parametrize("value", ["true", "True", "TRUE", "t", "T", "1"])
def test_a_true_boolean_value_sets_the_flag(value: str) -> None:
    args = parse("run", f"--foreground={value}", "--anonymous", "--", "server")
    assert args.foreground is True
    assert args.target == ["server"]


@pytest.mark.parametrize("value", ["false", "False", "FALSE", "f", "F", "0"])
def test_a_false_boolean_value_leaves_the_flag_off(value: str) -> None:
    args = parse("run", f"--foreground={value}", "--", "server")
    assert args.foreground is False


def test_the_seed_pod_spec_args_parse_up_to_the_quoted_pair() -> None:
    seed = ["--foreground=true", "--port=8080", "--transport=stdio", "--name=mcp-everything"]
    args = parse("run", *seed, "--oidc-audience=toolhive", "--oidc-issuer=https://kubernetes.default.svc", "--", "s")
    assert (args.foreground, args.port, args.name, args.oidc_audience) == (True, 8080, "mcp-everything", "toolhive")


def test_booleans_of_other_subcommands_and_server_arguments() -> None:
    assert parse("list", "--all=true").all is True
    args = parse("run", "--", "server", "--verbose=maybe", "--x y")
    assert args.target == ["server", "--verbose=maybe", "--x y"]
    args = parse("run", "--env=GREETING=hello world", "--", "server")
    assert args.env == ["GREETING=hello world"]


def test_a_valued_flag_is_not_taken_for_a_boolean() -> None:
    assert parse("run", "--name=true", "--", "server").name == "true"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["run", "--foreground=yes", "--", "s"],
         "hivegate run: error: argument --foreground: expected true or false, got 'yes'"),
        (["run", '--oidc-audience "toolhive"', "server"],
         "hivegate run: error: argument '--oidc-audience \"toolhive\"' is a flag and its value in one argument; "
         "did you mean --oidc-audience=toolhive?"),
        (["list", "--all=2"], "hivegate list: error: argument --all: expected true or false, got '2'"),
    ],
)  # fmt: skip
def test_what_cannot_mean_what_it_says_is_one_line_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert capsys.readouterr().err == message + "\n"
