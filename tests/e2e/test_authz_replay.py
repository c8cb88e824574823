"""`hivegate authz replay` and `authz test` end to end: a real `hivegate run` (signed tokens from a local issuer,
callers with groups, the stdio fixture server) writes its audit trail to a file; replaying that trail under the same
policies changes nothing (exit 0), under a changed policy exactly the expected decisions change (exit 1); and
`authz test` passes on the seed's policies (seeds/001's authz ConfigMap)."""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from support.gateway import REPO, fixture_command, hivegate_run
from support.issuer import local_issuer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

ACCEPT = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
AUDIENCE = "replay-e2e"
POLICIES = [
    '@id("weather-for-all")\npermit(principal, action == Action::"call_tool", resource == Tool::"weather");',
    '@id("eng-all")\npermit(principal in THVGroup::"eng", action, resource);',
    '@id("no-prod-deletes")\nforbid(principal, action == Action::"call_tool", resource == Tool::"delete_namespace")'
    ' when { resource has arg_namespace && resource.arg_namespace == "prod" };',
]
CHANGED = [
    *POLICIES,
    '@id("freeze-echo")\nforbid(principal in THVGroup::"eng", action == Action::"call_tool", '
    'resource == Tool::"echo");',
    '@id("sales-calc")\npermit(principal in THVGroup::"sales", action == Action::"call_tool", '
    'resource == Tool::"calculator");',
]


def authz_file(path: Path, policies: list[str]) -> Path:
    path.write_text(json.dumps({"version": "1.0", "type": "cedarv1", "cedar": {"policies": policies}}))
    return path


async def hivegate(*argv: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hivegate", *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    return int(proc.returncode or 0), out.decode(), err.decode()


class Session:
    def __init__(self, http: httpx.AsyncClient, url: str, token: str) -> None:
        self.http, self.url = http, url
        self.headers = {**ACCEPT, "authorization": f"Bearer {token}"}
        self.ids = itertools.count(1)

    async def open(self) -> Session:
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "replay", "version": "1"}}
        answer = await self.rpc("initialize", init)
        assert answer.status_code == 200, answer.text
        self.headers["mcp-session-id"] = answer.headers["mcp-session-id"]
        await self.http.post(self.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                             headers=self.headers)  # fmt: skip
        return self

    async def rpc(self, method: str, params: dict[str, Any]) -> httpx.Response:
        body = {"jsonrpc": "2.0", "id": next(self.ids), "method": method, "params": params}
        return await self.http.post(self.url, json=body, headers=self.headers)

    async def tool(self, name: str, **arguments: Any) -> int:
        return (await self.rpc("tools/call", {"name": name, "arguments": arguments})).status_code


async def audit_lines(path: Path, count: int) -> list[dict[str, Any]]:
    async with asyncio.timeout(10):
        while True:
            text = path.read_text() if path.exists() else ""
            found = [json.loads(line) for line in text.splitlines() if line.strip()]
            decided = [line for line in found if "authorization" in line["metadata"]["extra"]]
            if len(decided) >= count:
                return decided
            await asyncio.sleep(0.05)


async def test_replaying_a_real_gateways_audit_trail(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    audit_config = tmp_path / "audit.yaml"
    audit_config.write_text(f"logFile: {audit}\nauthorizationArguments: read\n")
    current = authz_file(tmp_path / "authz.json", POLICIES)
    async with local_issuer() as issuer:
        args = ["--oidc-issuer", issuer.url, "--oidc-audience", AUDIENCE, "--oidc-jwks-url", issuer.jwks_url,
                "--oidc-insecure-allow-http", "--jwks-allow-private-ip", "--authz-config", str(current),
                "--audit-config", str(audit_config), "--name", "tools", *fixture_command()]  # fmt: skip
        alice_token = issuer.token(AUDIENCE, sub="alice", groups=["eng"], email="alice@example.com")
        bob_token = issuer.token(AUDIENCE, sub="bob", groups=["sales"])
        async with hivegate_run(args) as gw, httpx.AsyncClient(timeout=30) as http:
            alice = await Session(http, gw.url, alice_token).open()
            bob = await Session(http, gw.url, bob_token).open()
            assert await alice.tool("echo", text="hi") == 200
            assert await alice.tool("echo", text="again") == 200
            assert await alice.tool("delete_namespace", namespace="prod") == 403
            assert await alice.tool("delete_namespace", namespace="dev") == 200
            assert await bob.tool("weather", city="Oslo") == 200
            assert await bob.tool("echo", text="no") == 403
            assert await bob.tool("calculator", operation="add", a=1, b=2) == 403
            assert (await alice.rpc("prompts/get", {"name": "review", "arguments": {"code": "x"}})).status_code == 200
            assert (await bob.rpc("prompts/get", {"name": "review"})).status_code == 403
            lines = await audit_lines(audit, 9)

    assert alice_token not in audit.read_text()
    assert bob_token not in audit.read_text()
    deny = next(line for line in lines if line["target"].get("name") == "delete_namespace" and
                line["outcome"] == "denied")  # fmt: skip
    record = deny["metadata"]["extra"]["authorization"]
    assert (record["names"], record["why"]) == (["no-prod-deletes"], "forbid")
    assert record["input"]["arguments"] == {"namespace": "prod"}
    assert record["input"]["server"] == "tools"

    code, out, err = await hivegate("authz", "replay", "--audit", str(audit), "--config", str(current))
    assert (code, err) == (0, ""), out
    assert out.splitlines()[:2] == [
        f"replayed 9 decisions under {current}, against the decisions recorded ({len(audit.read_text().splitlines())}"
        f" lines, {len(audit.read_text().splitlines())} audit events)",
        "changed: 0 (newly allowed 0, newly denied 0)",
    ]

    changed = authz_file(tmp_path / "changed.json", CHANGED)
    code, out, err = await hivegate(
        "authz", "replay", "--audit", str(audit), "--config", str(changed), "--config", str(current), "--format", "json"
    )
    assert code == 1, err
    report = json.loads(out)
    assert (report["replayed"], report["changed"], report["newly_allowed"], report["newly_denied"]) == (9, 3, 1, 2)
    assert report["by_target"] == {'Tool::"echo"': 2, 'Tool::"calculator"': 1}
    assert report["by_principal"] == {"alice": 2, "bob": 1}
    assert [(e["principal"], e["target"], e["before"]["policies"], e["after"]["policies"])
            for e in report["examples"]] == [
        ("alice", 'Tool::"echo"', ["eng-all"], ["freeze-echo"]),
        ("alice", 'Tool::"echo"', ["eng-all"], ["freeze-echo"]),
        ("bob", 'Tool::"calculator"', [], ["sales-calc"]),
    ]  # fmt: skip
    assert report["missing_arguments"] == 0

    # the same change checked with `authz test` cases kept next to the policies
    cases = tmp_path / "authz.test.yaml"
    cases.write_text(yaml.safe_dump({"config": "changed.json", "server": "tools", "cases": [
        {"name": "echo is frozen for eng", "principal": {"token": alice_token}, "action": "tools/call",
         "resource": "echo", "expect": "deny", "reason": "freeze-echo"},
        {"name": "sales may calculate", "principal": {"claims": {"sub": "bob", "groups": ["sales"]}},
         "action": "call_tool", "resource": "calculator", "arguments": {"operation": "add"}, "expect": "allow"},
    ]}))  # fmt: skip
    code, out, err = await hivegate("authz", "test", str(cases))
    assert (code, out, err) == (0, "2 cases in 1 file: 2 passed, 0 failed\n", "")
    assert alice_token not in out + err


async def test_authz_test_on_the_seeds_policies(tmp_path: Path) -> None:
    seed = Path(REPO) / "tests" / "unit" / "vmcp_config" / "data" / "seed_001.yaml"
    config_map = next(d for d in yaml.safe_load_all(seed.read_text()) if d and "authz-config.json" in d.get("data", {}))
    (tmp_path / "authz-config.json").write_text(config_map["data"]["authz-config.json"])
    cases = tmp_path / "seed.test.yaml"
    cases.write_text(yaml.safe_dump({"config": "authz-config.json", "server": "weather-server-with-authz", "cases": [
        {"name": "weather for everyone", "principal": {"claims": {"sub": "bob"}}, "action": "call_tool",
         "resource": "weather", "expect": "allow", "reason": "policy0"},
        {"name": "admin_tool for alice123", "principal": {"claims": {"sub": "alice123"}}, "action": "call_tool",
         "resource": "admin_tool", "expect": "allow", "reason": "policy1"},
        {"name": "admin_tool not for bob", "principal": {"claims": {"sub": "bob"}}, "action": "call_tool",
         "resource": "admin_tool", "expect": "deny"},
        {"name": "premium calls anything", "principal": {"claims": {"sub": "dana", "roles": ["premium"]}},
         "action": "call_tool", "resource": "anything", "expect": "allow", "reason": "policy2"},
        {"name": "premium gets no prompts", "principal": {"claims": {"sub": "dana", "roles": ["premium"]}},
         "action": "get_prompt", "resource": "anything", "expect": "deny"},
        {"name": "a deliberately wrong expectation", "principal": {"claims": {"sub": "bob"}}, "action": "call_tool",
         "resource": "forecast", "expect": "allow"},
    ]}))  # fmt: skip
    junit = tmp_path / "junit.xml"
    code, out, err = await hivegate("authz", "test", str(cases), "--junit", str(junit))
    assert (code, err) == (1, "")
    lines = out.splitlines()
    assert len(lines) == 4  # the header, the one failure, the error Cedar skipped in it, the summary
    assert "cases[5] (a deliberately wrong expectation)" in lines[1]
    assert lines[1].endswith("denied: no policy permits it (default deny)")
    assert lines[2].startswith(
        "  cases[5] (a deliberately wrong expectation): error: error while evaluating policy `policy2`"
    )  # bob has no roles claim: the premium permit errors, granting nothing
    assert lines[3] == "6 cases in 1 file: 5 passed, 1 failed"
    assert 'failures="1"' in junit.read_text()
