"""Policies that name what does not exist, and Cedar's messages with what to do about them: the nearest advertised
name, a missing `;` or bracket, an unguarded `claim_*`/`arg_*`, and the runtime check of a virtual MCP server's
catalog (once per name) and the offline one of `authz validate --config VMCP.yaml`."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from authz_helpers import authorizer, config

from hivegate.authserver.secrets import SecretResolver
from hivegate.authz import validate_policies
from hivegate.authz.cedar import compile_policies
from hivegate.authz.gate import McpGate
from hivegate.authz.names import nearest, unknown_names
from hivegate.cli.main import main
from hivegate.errors import ConfigError
from hivegate.vmcp.catalog import BackendLists
from hivegate.vmcp.policy_names import PolicyNames, configured_problems
from hivegate.vmcp.pool import BackendPool
from hivegate.vmcp.spec import parse_vmcp_config

DEPLOY = 'permit(principal, action == Action::"call_tool", resource == Tool::"deploy");'


def test_the_nearest_name_is_the_same_but_for_case_a_prefixed_form_or_a_close_spelling() -> None:
    tools = {"team_deploy", "github_search", "k8s_search", "get_pods", "Review"}
    assert nearest("deploy", tools) == ("team_deploy",)
    assert nearest("search", tools) == ("k8s_search", "github_search")
    assert nearest("team_get_pods", tools) == ("get_pods",)
    assert nearest("review", tools) == ("Review",)
    assert nearest("get_pod", tools) == ("get_pods",)
    assert nearest("weather", tools) == ()


def test_every_kind_of_name_a_policy_uses_is_checked() -> None:
    policies = compile_policies([
        DEPLOY,
        'permit(principal, action, resource in MCP::"githb") when { resource.name == "serch" };',
        'forbid(principal, action, resource) when { resource in [Prompt::"reveiw", Resource::"file:///a"] '
        '|| resource.backendName != "delete" };',
        'permit(principal, action, resource == Tool::"team_deploy");',  # advertised: nothing to say
    ])  # fmt: skip
    known = {"Tool": {"team_deploy", "search"}, "Prompt": {"review"}, "Resource": {"file:///a"},
             "MCP": {"github"}, "backendName": {"deploy", "search", "review"}}  # fmt: skip
    found = [(p.index, p.kind, p.name, p.suggestions) for p in unknown_names(policies, known)]
    assert found == [
        (0, "Tool", "deploy", ("team_deploy",)),
        (1, "MCP", "githb", ("github",)),
        (1, "name", "serch", ("search",)),
        (2, "Prompt", "reveiw", ("review",)),
        (2, "backendName", "delete", ()),
    ]
    (first, *_) = unknown_names(policies, known)
    assert str(first) == (
        'warning: cedar.policies[0] (policy0): Tool::"deploy": no backend advertises this tool; '
        'did you mean Tool::"team_deploy"?'
    )


def vmcp_config(**aggregation: Any) -> Any:
    return parse_vmcp_config(
        {"name": "v", "backends": [{"name": "team", "url": "http://127.0.0.1:1/mcp"},
                                    {"name": "github", "url": "http://127.0.0.1:2/mcp"}],
         "incomingAuth": {"type": "anonymous", "authz": {"type": "cedar", "policies": [DEPLOY]}},
         **({"aggregation": aggregation} if aggregation else {})},
        resolver=SecretResolver(),
    )  # fmt: skip


class _Fixed:
    def __init__(self, policies: list[str]) -> None:
        self.current = authorizer(policies)


def test_a_virtual_server_warns_once_per_name_its_backends_do_not_advertise(caplog: pytest.LogCaptureFixture) -> None:
    pool = BackendPool(vmcp_config(), {})
    tools = BackendLists(tools=({"name": "deploy", "inputSchema": {}},))
    pool.statuses["team"].lists = tools
    pool.statuses["github"].lists = BackendLists()
    pool.catalog = pool.build(pool.shared_lists())
    policies = [DEPLOY, 'permit(principal, action, resource in MCP::"gitlab");', "permit(principal, action, resource);"]
    names = PolicyNames(McpGate(_Fixed(policies)), pool, "v")
    with caplog.at_level(logging.WARNING, "hivegate.authz"):
        names.check()
        names.check()  # a catalog change that changes nothing for these names: said once
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        'authz: incomingAuth.authz.policies[0] (policy0): Tool::"deploy": no backend advertises this tool; '
        'did you mean Tool::"team_deploy"?',
        'authz: incomingAuth.authz.policies[1] (policy1): MCP::"gitlab": not a backend of this virtual MCP server '
        "(team, github)",
    ]


def test_a_backend_not_listed_yet_is_named_in_the_warning() -> None:
    pool = BackendPool(vmcp_config(), {})
    pool.statuses["team"].lists = BackendLists()
    (problem,) = PolicyNames(McpGate(_Fixed([DEPLOY])), pool, "v").problems()
    assert problem.message == 'Tool::"deploy": no backend advertises this tool (not known here: what github offers)'


def test_offline_the_configuration_tells_backends_and_under_prefix_the_shape_of_names() -> None:
    policies = compile_policies([
        DEPLOY, 'permit(principal, action, resource == Tool::"team_deploy");',
        'permit(principal, action, resource in MCP::"githb");', 'permit(principal, action, resource in MCP::"v");',
        'permit(principal, action, resource) when { resource.name == "anything" };',
    ])  # fmt: skip
    found = [str(p) for p in configured_problems(vmcp_config(), policies)]
    assert found == [
        'warning: cedar.policies[0] (policy0): Tool::"deploy": under conflictResolution prefix every tool is '
        'advertised as {workload}_<name>; did you mean Tool::"team_deploy" or Tool::"github_deploy"?',
        'warning: cedar.policies[2] (policy2): MCP::"githb": not a backend of this virtual MCP server (team, github); '
        'did you mean MCP::"github"?',
    ]
    manual = vmcp_config(conflictResolution="manual")  # bare names are possible: left to the start-up check
    assert [p.kind for p in configured_problems(manual, policies)] == ["MCP"]


def test_authz_validate_with_a_vmcp_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "vmcp.yaml"
    path.write_text(yaml.safe_dump({
        "name": "v", "backends": [{"name": "team", "url": "http://127.0.0.1:1/mcp"}],
        "incomingAuth": {"type": "anonymous", "authz": {"type": "cedar", "policies": [DEPLOY]}},
    }))  # fmt: skip

    def validate(*args: str) -> tuple[int, list[str]]:
        with pytest.raises(SystemExit) as exited:
            main(["authz", "validate", *args])
        captured = capsys.readouterr()
        return int(exited.value.code or 0), (captured.out + captured.err).splitlines()

    code, out = validate("--config", str(path))
    assert code == 0  # a warning: what is advertised can change while the policies stay
    assert out == [
        'warning: cedar.policies[0] (policy0): Tool::"deploy": under conflictResolution prefix every tool is '
        'advertised as {workload}_<name>; did you mean Tool::"team_deploy"?',
        "1 policy: 0 errors, 1 warning",
    ]
    other = tmp_path / "authz.json"
    other.write_text(json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": [
        'permit(principal, action, resource == Tool::"team_deploy");']}}))  # fmt: skip
    code, out = validate(str(other), "--config", str(path), "--format", "json")
    assert (code, json.loads("\n".join(out))["warnings"]) == (0, 0)
    code, out = validate()
    assert (code, out) == (2, ["hivegate authz validate: error: give FILE, or --config VMCP.yaml"])


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('permit(principal, action, resource)', "line 1, column 36: unexpected end of input: is the `;` missing at "
         "the end of the policy? (every policy ends with `;`)"),
        ('permit(principal, action, resource)\n  when { principal.x == "}" ', "line 2, column 28: unexpected end of "
         "input: is a `}` missing? (`{` is never closed)"),
    ],
)  # fmt: skip
def test_a_policy_that_stops_early_says_what_is_missing(text: str, said: str) -> None:
    with pytest.raises(ConfigError) as raised:
        compile_policies([text])
    assert str(raised.value) == f"cedar.policies[0], {said}"


def test_an_unguarded_claim_or_argument_says_how_to_guard_it() -> None:
    problems = validate_policies(config([
        'permit(principal, action, resource) when { principal.claim_email like "*@example.com" };',
        'forbid(principal, action, resource) when { resource.arg_env == "prod" };',
        'permit(principal, action, resource) when { principal has claim_email && principal.claim_email == "a" };',
        'permit(principal, action, resource) when { resource.backend == "x" };',
    ]))  # fmt: skip
    messages = [(p.index, p.message) for p in problems]
    assert messages[:2] == [
        (0, "principal.claim_email depends on the identity provider's tokens, so the schema cannot declare it; a "
            "request without it makes this policy error (a permit then grants nothing, a forbid denies): guard it "
            "with `principal has claim_email && …`"),
        (1, "resource.arg_env depends on each tool's arguments, so the schema cannot declare it; a request without "
            "it makes this policy error (a permit then grants nothing, a forbid denies): guard it with "
            "`resource has arg_env && …`"),  # one warning, not one per resource type
    ]  # fmt: skip
    assert {i for i, _ in messages} == {0, 1, 3}
    assert all("(did you mean 'backendName'?)" in m for i, m in messages if i == 3)


def test_authz_check_says_how_to_guard_an_attribute_the_caller_lacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "authz.json"
    path.write_text(json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": [
        'permit(principal, action, resource) when { principal.claim_email like "*@example.com" };']}}))  # fmt: skip
    with pytest.raises(SystemExit) as exited:
        main(["authz", "check", str(path), "--claims", '{"sub": "bob"}', "--tool", "x"])
    assert exited.value.code == 3
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("error: error while evaluating policy `policy0`")
    assert last.endswith("(guard it: `principal has claim_email && …`)")
