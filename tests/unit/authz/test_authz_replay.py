"""`hivegate authz replay`: audit lines written by the real gate and auditor, decided again under the same and
under changed policies; the diff, its counts and examples, bad lines, and the CLI's exit codes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from audit_trail import Trail
from authz_helpers import authorizer, config, okta

from hivegate.authz.replay import Replayer
from hivegate.cli.main import main
from hivegate.observe.audit import AuditConfig

pytestmark = pytest.mark.anyio

POLICIES = [
    '@id("weather-for-all")\npermit(principal, action == Action::"call_tool", resource == Tool::"weather");',
    '@id("eng-all")\npermit(principal in THVGroup::"eng", action, resource);',
    '@id("no-prod-deletes")\nforbid(principal, action == Action::"call_tool", resource == Tool::"delete")'
    ' when { resource has arg_env && resource.arg_env == "prod" };',
]
# eng may no longer deploy; everyone may read the runbook prompt
CHANGED = [
    *POLICIES,
    '@id("freeze")\nforbid(principal, action == Action::"call_tool", resource == Tool::"deploy");',
    '@id("runbook")\npermit(principal, action == Action::"get_prompt", resource == Prompt::"runbook");',
]
ALICE = okta("alice", ["eng"])
BOB = okta("bob", ["sales"])


async def trail(audit: AuditConfig | None = None) -> Trail:
    t = Trail(authorizer(POLICIES), audit)
    for _ in range(3):
        await t.call_tool(ALICE, "deploy", env="staging")
        await t.call_tool(BOB, "weather", city="Oslo")
    await t.call_tool(BOB, "deploy", env="staging")
    await t.call_tool(ALICE, "delete", env="prod")
    await t.call_tool(ALICE, "delete", env="dev")
    await t.request(BOB, "prompts/get", {"name": "runbook"})
    await t.request(ALICE, "prompts/get", {"name": "runbook"})
    await t.request(BOB, "tasks/list", {})
    return t


async def test_the_audit_line_carries_what_decided_it_and_what_it_was_decided_on() -> None:
    t = Trail(authorizer(POLICIES), AuditConfig(authorization_arguments="read"))
    deny = await t.call_tool(ALICE, "delete", env="prod", note="big secret text")
    record = deny["metadata"]["extra"]["authorization"]
    assert record["decision"] == "deny"
    assert record["policies"] == ["policy2"]
    assert record["names"] == ["no-prod-deletes"]
    assert record["why"] == "forbid"
    found = record["input"]
    assert {k: found[k] for k in ("server", "action", "resource")} == {
        "server": "engineering-tools", "action": "call_tool", "resource": "delete"}  # fmt: skip
    assert found["arguments"] == {"env": "prod"}  # only what a policy reads: `note` is not recorded
    assert found["arguments_complete"] is False
    assert found["principal"]["sub"] == "alice"
    assert found["principal"]["claims"]["groups"] == ["eng"]
    assert "jti" not in found["principal"]["claims"]  # a token's own id is not recorded
    nobody = await t.call_tool(BOB, "deploy")
    assert nobody["metadata"]["extra"]["authorization"]["why"] == "no_policy"
    assert "names" not in nobody["metadata"]["extra"]["authorization"]
    never = await t.request(BOB, "tasks/list", {})
    assert never["metadata"]["extra"]["authorization"] == {"decision": "deny", "policies": [], "why": "method"}


async def test_arguments_are_recorded_only_as_configured() -> None:
    def arguments(event: dict[str, Any]) -> Any:
        return event["metadata"]["extra"]["authorization"]["input"].get("arguments")

    default = Trail(authorizer(POLICIES))
    assert arguments(await default.call_tool(ALICE, "delete", env="prod")) is None
    with_data = Trail(authorizer(POLICIES), AuditConfig(include_request_data=True, max_data_size=64))
    assert arguments(await with_data.call_tool(ALICE, "delete", env="prod", n=1)) == {"env": "prod", "n": 1}
    # larger than maxDataSize: only what the policies read
    assert arguments(await with_data.call_tool(ALICE, "delete", env="prod", text="x" * 100)) == {"env": "prod"}
    off = Trail(authorizer(POLICIES), AuditConfig(include_request_data=True, authorization_arguments="none"))
    assert arguments(await off.call_tool(ALICE, "delete", env="prod")) is None


async def test_claims_that_hold_a_token_are_never_recorded() -> None:
    jwt_like = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLXZhbHVl"
    who = okta("alice", ["eng"], upstream_access_token="opaque-upstream-secret", act_as=jwt_like, nonce="n-1")
    line = (await Trail(authorizer(POLICIES)).call_tool(who, "weather")).__repr__()
    assert "opaque-upstream-secret" not in line
    assert jwt_like not in line
    assert "n-1" not in line
    assert "'groups': ['eng']" in line


async def test_replay_under_the_same_policies_changes_nothing() -> None:
    t = await trail()
    report = Replayer(config(POLICIES)).feed(t.lines)
    assert (report.lines, report.events, report.replayed, report.never_allowed) == (12, 12, 11, 1)
    # without the argument values (not recorded by default) the forbid on `env` cannot see prod: the one change,
    # and the warning that says why
    assert [(c.event.line, c.event.resource, c.after.allowed) for c in report.changes] == [(8, "delete", True)]
    assert report.missing_arguments == 11  # the default audit config records no argument values; policies read env
    full = await trail(AuditConfig(authorization_arguments="read"))
    again = Replayer(config(POLICIES), config(POLICIES)).feed(full.lines)
    assert (again.replayed, again.changed, again.missing_arguments) == (11, 0, 0)


async def test_replay_under_changed_policies_reports_exactly_the_decisions_that_change() -> None:
    t = await trail(AuditConfig(authorization_arguments="read"))
    replayer = Replayer(config(CHANGED), examples=2)
    report = replayer.feed(t.lines)
    assert (report.changed, report.newly_allowed, report.newly_denied) == (4, 1, 3)
    assert dict(report.by_target) == {'Tool::"deploy"': 3, 'Prompt::"runbook"': 1}
    assert dict(report.by_principal) == {"alice": 3, "bob": 1}
    first, second = report.changes
    assert (first.event.line, first.event.subject, first.event.resource) == (1, "alice", "deploy")
    assert (first.before.allowed, first.before.policies) == (True, ("eng-all",))
    assert (first.after.allowed, first.after.policies, first.after.explanation) == (
        False, ("freeze",), "denied by freeze")  # fmt: skip
    assert second.event.line == 3
    # identical inputs are decided once: alice's three deploys (and bob's three weathers) share one decision
    assert len(replayer._new._memo) == 7


def test_bad_lines_are_counted_never_raised() -> None:
    good = {"msg": "audit_event", "metadata": {"extra": {"authorization": {"decision": "filter"}}}}
    lines = [
        b"not json at all",
        json.dumps({"msg": "something else"}).encode(),
        json.dumps(good).encode(),
        b"",
        json.dumps({"msg": "audit_event", "metadata": {"extra": {"authorization": {"decision": "maybe"}}}}).encode(),
        json.dumps({"msg": "audit_event", "metadata": {"extra": {"authorization": {
            "decision": "allow", "input": {"action": "call_tool", "resource": "x", "server": "s", "principal": 3}}}}}),
        json.dumps({"msg": "audit_event", "metadata": {"extra": {"authorization": {
            "decision": "allow", "policies": ["policy0"]}}}}),
        json.dumps({"msg": "audit_event", "metadata": {"extra": {}}}),
    ]  # fmt: skip
    report = Replayer(config(POLICIES)).feed(lines)
    assert report.bad_lines == 3
    assert [n for n, _ in report.bad] == [1, 5, 6]
    assert report.bad[0][1].startswith("not JSON")
    assert report.bad[1][1] == "authorization.decision must be allow, deny or filter, got 'maybe'"
    assert report.bad[2][1] == "authorization.input.principal must be an object"
    assert (report.other_lines, report.lists, report.no_input, report.not_decided, report.replayed) == (1, 1, 1, 1, 0)


async def test_the_cli_exit_codes_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t = await trail(AuditConfig(authorization_arguments="read"))
    audit = tmp_path / "audit.jsonl"
    audit.write_bytes(b"\n".join(t.lines) + b"\n")
    for name, policies in (("old.json", POLICIES), ("new.json", CHANGED)):
        (tmp_path / name).write_text(json.dumps({"version": "1", "type": "cedarv1", "cedar": {"policies": policies}}))

    def replay(*args: str) -> tuple[int, str, str]:
        with pytest.raises(SystemExit) as exited:
            main(["authz", "replay", "--audit", str(audit), *args])
        out, err = capsys.readouterr()
        return int(exited.value.code or 0), out, err

    code, out, _ = replay("--config", str(tmp_path / "old.json"))
    assert code == 0
    assert out.splitlines()[1] == "changed: 0 (newly allowed 0, newly denied 0)"
    code, out, _ = replay("--config", str(tmp_path / "new.json"), "--config", str(tmp_path / "old.json"))
    assert code == 1
    lines = out.splitlines()
    assert lines[1] == "changed: 4 (newly allowed 1, newly denied 3)"
    assert lines[2:5] == ["by target:", '  Tool::"deploy"     3', '  Prompt::"runbook"  1']
    assert '  line 1: alice call_tool Tool::"deploy"' in lines
    at = lines.index('  line 1: alice call_tool Tool::"deploy"')
    assert lines[at + 1 : at + 3] == [
        "    before: allow by eng-all (allowed by eng-all)",
        "    after:  deny by freeze (denied by freeze)",
    ]
    code, out, _ = replay("--config", str(tmp_path / "new.json"), "--format", "json", "--examples", "1")
    report = json.loads(out)
    assert (code, report["changed"], len(report["examples"])) == (1, 4, 1)
    assert report["examples"][0]["before"] == {"decision": "allow", "policies": ["eng-all"]}
    with audit.open("a") as f:
        f.write("{truncated\n")
    code, out, _ = replay("--config", str(tmp_path / "old.json"))
    assert code == 2
    assert "error: 1 bad lines" in out
    assert "  line 13: not JSON" in out
    code, out, err = replay("--config", str(tmp_path / "missing.json"))
    assert (code, out) == (2, "")
    assert "missing.json: cannot read" in err
