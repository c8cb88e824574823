"""Backend-scoped policies: behind a virtual MCP server every tool, prompt and resource is a child of the backend it
comes from (`MCP::"<backend>"`), `resource.name` is the advertised name and `resource.backendName` the backend's own;
decisions, list filtering, the audit input, replay and policy test cases all carry it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from audit_trail import Trail
from authz_helpers import authorizer, config, okta

from hivegate.authz import validate_policies
from hivegate.authz.cases import parse_case_file
from hivegate.authz.entities import Origin, resource_entity
from hivegate.authz.gate import McpGate
from hivegate.authz.replay import Replayer
from hivegate.authz.suite import run_case
from hivegate.cli.main import main
from hivegate.errors import ConfigError

pytestmark = pytest.mark.anyio

GITHUB_FOR_ENG = (
    '@id("github-eng")\npermit(principal in THVGroup::"eng", action == Action::"call_tool", resource in MCP::"github");'
)
NO_DELETES = '@id("no-deletes")\nforbid(principal, action, resource) when { resource.backendName == "delete_repo" };'
ORIGINS = {
    "github_create_issue": Origin("github", "create_issue"),
    "github_delete_repo": Origin("github", "delete_repo"),
    "jira_create_issue": Origin("jira", "create_issue"),
    "file:///README.md": Origin("github", "file:///README.md"),
}
ALICE = okta("alice", ["eng"])


def locate(action: str, name: str) -> Origin | None:
    return ORIGINS.get(name)


class _Fixed:
    def __init__(self, policies: list[str]) -> None:
        self.current = authorizer(policies)


def test_the_resource_is_a_child_of_its_backend_and_knows_its_own_name() -> None:
    entity = resource_entity("call_tool", "github_create_issue", "github", backend_name="create_issue")
    assert entity["parents"] == [{"type": "MCP", "id": "github"}]
    assert entity["attrs"]["name"] == "github_create_issue"
    assert entity["attrs"]["backendName"] == "create_issue"
    # `hivegate run`: the workload is the parent and the name is the server's own
    plain = resource_entity("get_prompt", "review", "weather")
    assert plain["parents"] == [{"type": "MCP", "id": "weather"}]
    assert plain["attrs"]["backendName"] == "review"


def test_a_backend_scoped_permit_follows_the_origin_not_the_name() -> None:
    authz = authorizer([GITHUB_FOR_ENG])
    assert authz.decide(ALICE, "call_tool", "github_create_issue", origin=ORIGINS["github_create_issue"]).allowed
    assert not authz.decide(ALICE, "call_tool", "jira_create_issue", origin=ORIGINS["jira_create_issue"]).allowed
    # a bare name (priority, manual) is placed by its origin too
    assert authz.decide(ALICE, "call_tool", "create_issue", origin=Origin("github", "create_issue")).allowed
    assert not authz.decide(ALICE, "call_tool", "create_issue", origin=Origin("jira", "create_issue")).allowed
    # without an origin the resource is in the server the authorizer is for
    assert not authz.decide(ALICE, "call_tool", "create_issue").allowed
    assert not authz.decide(okta("bob", ["sales"]), "call_tool", "x", origin=Origin("github", "x")).allowed


def test_the_virtual_server_still_holds_everything_its_backends_serve() -> None:
    """Each backend is itself a child of the virtual server: policies written for `MCP::"<virtual server>"` (the
    parent before backends were) keep matching; another server's do not."""
    authz = authorizer(['permit(principal, action, resource in MCP::"engineering-tools");'])
    assert authz.decide(ALICE, "call_tool", "github_create_issue", origin=ORIGINS["github_create_issue"]).allowed
    assert authz.filter(ALICE, "call_tool", [("github_create_issue", None)], [ORIGINS["github_create_issue"]]) == [True]
    other = authorizer(['permit(principal, action, resource in MCP::"elsewhere");'])
    assert not other.decide(ALICE, "call_tool", "github_create_issue", origin=ORIGINS["github_create_issue"]).allowed
    entities = authz.entity_set(ALICE, "call_tool", "github_create_issue", origin=ORIGINS["github_create_issue"])
    assert {"uid": {"type": "MCP", "id": "github"}, "attrs": {},
            "parents": [{"type": "MCP", "id": "engineering-tools"}]} in entities["entities"]  # fmt: skip


def test_remembered_decisions_tell_backends_apart() -> None:
    """The same advertised name decided for two backends (a name that moved between catalogs, two callers'
    sessions) is two decisions: what is remembered per caller includes the parent."""
    authz = authorizer([GITHUB_FOR_ENG])
    for _ in range(2):
        assert authz.decide(ALICE, "call_tool", "create_issue", origin=Origin("github", "create_issue")).allowed
        assert not authz.decide(ALICE, "call_tool", "create_issue", origin=Origin("jira", "create_issue")).allowed


def test_policies_read_the_backends_own_name() -> None:
    authz = authorizer([GITHUB_FOR_ENG, NO_DELETES])
    assert not authz.decide(ALICE, "call_tool", "github_delete_repo", origin=ORIGINS["github_delete_repo"]).allowed
    assert authz.decide(ALICE, "call_tool", "github_create_issue", origin=ORIGINS["github_create_issue"]).allowed


def test_list_filtering_places_each_item_by_its_origin() -> None:
    authz = authorizer([GITHUB_FOR_ENG, NO_DELETES])
    names = ["github_create_issue", "github_delete_repo", "jira_create_issue", "unknown"]
    allowed = authz.filter(ALICE, "call_tool", [(n, None) for n in names], [ORIGINS.get(n) for n in names])
    assert allowed == [True, False, False, False]


async def test_the_gate_decides_and_filters_with_its_locator_and_records_the_backend() -> None:
    gate = McpGate(_Fixed([GITHUB_FOR_ENG]), listeners=(lambda _: None,), locate=locate)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "github_create_issue"}}
    verdict = gate.check(ALICE, call)
    assert verdict.allowed
    assert verdict.input is not None
    assert verdict.input.server == "engineering-tools"
    assert (verdict.input.backend, verdict.input.backend_name) == ("github", "create_issue")
    assert not gate.check(ALICE, {**call, "params": {"name": "jira_create_issue"}}).allowed
    tools = [{"name": n, "inputSchema": {}} for n in ("github_create_issue", "jira_create_issue", "unknown")]
    answer = gate.filter_answer(ALICE, {"jsonrpc": "2.0", "id": 2, "result": {"tools": tools}})
    assert [t["name"] for t in answer["result"]["tools"]] == ["github_create_issue"]


async def test_a_virtual_servers_audit_trail_replays_with_its_backends() -> None:
    trail = Trail(authorizer([GITHUB_FOR_ENG]), locate=locate)
    await trail.call_tool(ALICE, "github_create_issue", title="x")
    await trail.call_tool(ALICE, "jira_create_issue", title="x")
    await trail.request(ALICE, "resources/read", {"uri": "file:///README.md"})
    inputs = [orjson.loads(line)["metadata"]["extra"]["authorization"]["input"] for line in trail.lines]
    assert {i["server"] for i in inputs} == {"engineering-tools"}
    assert [(i["backend"], i.get("backend_name")) for i in inputs] == [
        ("github", "create_issue"),
        ("jira", "create_issue"),
        ("github", None),  # a URI is the backend's own: not recorded twice
    ]
    same = Replayer(config([GITHUB_FOR_ENG])).feed(trail.lines)
    assert (same.replayed, same.changed) == (3, 0)
    # a policy on the backend's own name changes exactly the calls of that name, on either backend
    jira = 'permit(principal, action, resource) when { resource.backendName == "create_issue" };'
    changed = Replayer(config([GITHUB_FOR_ENG, jira])).feed(trail.lines)
    assert (changed.changed, changed.newly_allowed) == (1, 1)
    assert changed.changes[0].event.resource == "jira_create_issue"


def test_policy_test_cases_carry_the_backend(tmp_path: Path) -> None:
    doc: dict[str, Any] = {
        "server": "vmcp",
        "cases": [
            {"principal": {"claims": {"sub": "alice", "groups": ["eng"]}}, "action": "call_tool",
             "resource": "github_create_issue", "backend": "github", "backend_name": "create_issue",
             "expect": "allow", "reason": "github-eng"},
            {"principal": {"claims": {"sub": "alice", "groups": ["eng"]}}, "action": "call_tool",
             "resource": "create_issue", "expect": "deny"},
        ],
    }  # fmt: skip
    cases = parse_case_file(doc, tmp_path / "cases.yaml")
    first, second = cases.cases
    assert first.origin(cases.server) == Origin("github", "create_issue")
    assert second.origin(cases.server) is None
    authz = authorizer([GITHUB_FOR_ENG])
    assert [run_case(authz, cases, c).problem for c in cases.cases] == [None, None]
    doc["cases"][0]["backend"] = ["github"]
    with pytest.raises(ConfigError, match=r"cases\[0\]\.backend: must be a string"):
        parse_case_file(doc, tmp_path / "cases.yaml")


def test_the_schema_knows_backend_name_and_the_backend_parent() -> None:
    prefixed = 'permit(principal, action, resource) when { resource.backendName like "get_*" };'
    assert validate_policies(config([GITHUB_FOR_ENG, NO_DELETES, prefixed])) == []
    misspelt = validate_policies(config(['permit(principal, action, resource) when { resource.backend == "x" };']))
    assert {p.severity for p in misspelt} == {"warning"}
    assert all("attribute `backend` on entity type" in p.message for p in misspelt)


def test_authz_check_decides_for_a_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "authz.json"
    path.write_text(json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": [GITHUB_FOR_ENG]}}))

    def check(*args: str) -> int:
        claims = '{"sub": "alice", "groups": ["eng"]}'
        with pytest.raises(SystemExit) as exited:
            main(["authz", "check", str(path), "--claims", claims, "--tool", "create_issue", "--server", "v", *args])
        return int(exited.value.code or 0)

    assert check("--backend", "github") == 0
    assert check("--backend", "jira", "--backend-name", "create_issue") == 3
    assert check() == 3
    capsys.readouterr()
    assert check("--backend-name", "x") == 2
    assert "--backend-name goes with --backend" in capsys.readouterr().err
