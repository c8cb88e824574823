"""Replay and `authz test` at size: 500 generated policies, 10,000 decisions recorded by the gateway's own path
(`McpGate`, `pipeline.authorize.admit`, the real `Auditor`; in process, since 10,000 calls through a real gateway
and stdio server take minutes on this machine). The same policies change nothing; one added forbid changes exactly
the recorded allows of its tool; cases built from recorded decisions all pass."""

from __future__ import annotations

import json
import random
from pathlib import Path

import orjson
import pytest
import yaml
from audit_trail import Trail
from authz_helpers import authorizer, config, okta

from hivegate.authz.replay import Replayer
from hivegate.cli.main import main
from hivegate.observe.audit import AuditConfig

pytestmark = pytest.mark.anyio

TOOLS = [f"tool_{i}" for i in range(100)]
TEAMS = [f"team-{i}" for i in range(20)]


def policies(n: int, rng: random.Random) -> list[str]:
    call = 'action == Action::"call_tool"'
    out = ['@id("admins")\npermit(principal in THVGroup::"admins", action, resource);']
    while len(out) < n:
        tool, team, kind = rng.choice(TOOLS), rng.choice(TEAMS), rng.random()
        if kind < 0.75:
            out.append(f'permit(principal in THVGroup::"{team}", {call}, resource == Tool::"{tool}");')
        elif kind < 0.85:
            out.append(f'forbid(principal in THVGroup::"{team}", {call}, resource == Tool::"{tool}");')
        else:
            out.append(f'permit(principal in THVGroup::"{team}", {call}, resource == Tool::"{tool}") '
                       'when { resource has arg_mode && resource.arg_mode == "safe" };')  # fmt: skip
    return out


async def test_500_policies_and_10000_recorded_decisions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(5)  # noqa: S311 (a reproducible test set, not a secret)
    texts = policies(500, rng)
    trail = Trail(authorizer(texts), AuditConfig(authorization_arguments="read"))
    users = [okta(f"user{i}", [rng.choice(TEAMS), rng.choice(TEAMS)]) for i in range(300)]
    for _ in range(10_000):
        await trail.call_tool(rng.choice(users), rng.choice(TOOLS), mode=rng.choice(["safe", "fast"]))
    records = [orjson.loads(line)["metadata"]["extra"]["authorization"] for line in trail.lines]
    allowed = sum(r["decision"] == "allow" for r in records)
    assert 1_000 < allowed < 9_000  # both outcomes well represented

    same = Replayer(config(texts)).feed(trail.lines)
    assert (same.replayed, same.changed, same.missing_arguments, same.bad_lines) == (10_000, 0, 0, 0)

    frozen = [*texts, '@id("freeze")\nforbid(principal, action == Action::"call_tool", resource == Tool::"tool_7");']
    changed = Replayer(config(frozen), config(texts), examples=10_000).feed(trail.lines)
    expected = [n for n, r in enumerate(records, 1) if r["input"]["resource"] == "tool_7" and r["decision"] == "allow"]
    assert expected
    assert [c.event.line for c in changed.changes] == expected
    assert (changed.changed, changed.newly_denied, changed.newly_allowed) == (len(expected), len(expected), 0)
    assert dict(changed.by_target) == {'Tool::"tool_7"': len(expected)}
    assert all(c.after.policies == ("freeze",) for c in changed.changes)

    # `authz test` with 200 cases taken from the recorded decisions, against the same 500 policies
    (tmp_path / "authz.json").write_text(json.dumps({"version": "1", "type": "cedarv1", "cedar": {"policies": texts}}))
    cases = [
        {"name": f"line {n}", "principal": {"claims": dict(r["input"]["principal"]["claims"])}, "action": "call_tool",
         "resource": r["input"]["resource"], "arguments": r["input"]["arguments"], "expect": r["decision"],
         **({"reason": r["policies"]} if r["policies"] else {})}
        for n, r in enumerate(records[:200], 1)
    ]  # fmt: skip
    path = tmp_path / "recorded.test.yaml"
    path.write_text(yaml.safe_dump({"config": "authz.json", "server": "engineering-tools", "cases": cases}))
    with pytest.raises(SystemExit) as exited:
        main(["authz", "test", str(path)])
    assert (exited.value.code, capsys.readouterr().out) == (0, "200 cases in 1 file: 200 passed, 0 failed\n")
