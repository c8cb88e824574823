"""`--log-output stderr|stdout` of every command that takes `--log-format`: what it accepts, the one-line error
otherwise, and where `configure_logging` then writes."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from hivegate.cli.main import build_parser
from hivegate.cli.run import config_from_args
from hivegate.observe.logs import configure_logging

COMMANDS = [["run", "--", "true"], ["vmcp", "serve", "--config", "x.yaml"], ["operator"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_stderr_by_default_and_stdout_when_asked(command: list[str]) -> None:
    parser = build_parser()
    at = command.index("--") if "--" in command else len(command)
    assert parser.parse_args(command).log_output == "stderr"
    assert parser.parse_args([*command[:at], "--log-output", "stdout", *command[at:]]).log_output == "stdout"


def test_run_carries_it_into_its_config() -> None:
    parser = build_parser()
    assert config_from_args(parser.parse_args(["run", "--", "true"])).log_output == "stderr"
    assert config_from_args(parser.parse_args(["run", "--log-output", "stdout", "--", "true"])).log_output == "stdout"


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--log-output", "file", "--", "true"],
        ["vmcp", "serve", "--log-output", "file", "--config", "x.yaml"],
        ["operator", "--log-output", "file"],
    ],
    ids=lambda argv: argv[0],
)
def test_anything_else_is_refused_naming_the_flag(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.endswith("error: argument --log-output: invalid choice: 'file' (choose from 'stderr', 'stdout')")


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    yield
    root.handlers[:] = saved
    root.setLevel(level)


@pytest.mark.usefixtures("root_handlers")
@pytest.mark.parametrize("output", ["stderr", "stdout"])
def test_log_lines_go_to_the_output_asked_for_and_only_there(output: str, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json", output)
    logging.getLogger("hivegate").warning("one line")
    captured = capsys.readouterr()
    written, other = (captured.out, captured.err) if output == "stdout" else (captured.err, captured.out)
    assert '"msg":"one line"' in written
    assert other == ""
