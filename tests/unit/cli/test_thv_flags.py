"""`thv run` flags: what they set, and a one-line error naming the flag for what they cannot mean."""

from __future__ import annotations

import pytest

from hivegate.authz.tool_filter import TOOLS_POLICY_ID, tool_filter_source
from hivegate.cli.main import build_parser
from hivegate.cli.run import config_from_args
from hivegate.config.run import RunConfig
from hivegate.errors import ConfigError


def config(*argv: str) -> RunConfig:
    return config_from_args(build_parser().parse_args(["run", *argv]))


def refusal(*argv: str) -> str:
    with pytest.raises(ConfigError) as info:
        config(*argv)
    return str(info.value)


def test_what_the_flags_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVEGATE_SECRET_GITHUB_TOKEN", "ghp_x")
    cfg = config("--proxy-port", "8080", "--tools", "a, b", "--tools", "a", "--secret", "github-token,target=GH",
                 "--group", "team-a", "-l", "env=dev", "--", "server")  # fmt: skip
    assert (cfg.port, cfg.tools, cfg.group, cfg.labels) == (8080, ("a", "b"), "team-a", (("env", "dev"),))
    assert cfg.env == {"GH": "ghp_x"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--secret", "token", "--", "s"], "--secret 'token': expected NAME,target=ENV_VARIABLE"),
        (["--secret", "token,target=1BAD", "--", "s"], "--secret token: target '1BAD' is not an environment variable"),
        (["--secret", "nothing-here,target=X", "--", "s"], "--secret nothing-here: "),
        (["--secret", "t,target=X", "https://mcp.example.com/mcp"], "--secret sets the stdio server's environment"),
        (["--tools", "echo;rm", "--", "s"], "--tools: 'echo;rm' is not a tool name"),
        (["--group", "Team A", "--", "s"], "--group: 'Team A' is not a group name"),
        (["--label", "novalue", "--", "s"], "--label 'novalue': expected KEY=VALUE"),
    ],
)
def test_misuse_is_one_line_naming_the_flag(argv: list[str], message: str) -> None:
    assert refusal(*argv).startswith(message)


def test_the_tools_filter_is_one_forbid_added_to_the_policies() -> None:
    raw, cfg = tool_filter_source(None, ("echo", "get/pods")).load()
    *others, policy = cfg.cedar.policies
    assert others == ['@id("hivegate-permit-others")\npermit(principal, action, resource);']
    assert policy == (
        f'@id("{TOOLS_POLICY_ID}")\nforbid(principal, action == Action::"call_tool", resource) unless '
        '{ resource in [Tool::"echo", Tool::"get/pods"] };'
    )
    assert raw.endswith(policy.encode())
