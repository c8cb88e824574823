"""Backend-scoped Cedar policies through a real `hivegate vmcp serve` over two backends, under `prefix`, `priority`
and `manual`: `resource in MCP::"alpha"` lets a group call and see alpha's tools whatever they are advertised as, and
none of beta's; `resource.backendName` names beta's `getenv` under its own name, whichever name clients see; a denial
says "denied by policy"; a policy naming a tool that is not advertised is a start-up warning with the nearest name. One
gateway per strategy; both backends are the stdio fixture (each with one tool of its own, `FIXTURE_TOOL_ALIAS`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from e2e.test_vmcp_aggregation import connect, oidc_incoming, stdio_backend, write_config
from support.gateway import hivegate_vmcp
from support.issuer import local_issuer

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AUDIENCE = "vmcp-backend-scope"
POLICIES = [
    '@id("alpha-for-eng")\n'
    'permit(principal in THVGroup::"eng", action == Action::"call_tool", resource in MCP::"alpha");',
    '@id("beta-getenv")\npermit(principal in THVGroup::"eng", action == Action::"call_tool", resource in MCP::"beta")'
    ' when { resource.backendName == "getenv" };',
    # names a tool by its own name: advertised so only under priority and manual (a start-up warning under prefix)
    '@id("ops-alpha-only")\npermit(principal in THVGroup::"ops", action, resource == Tool::"alpha_only");',
]
MANUAL = {  # no clash left: alpha shows three tools, beta three (its getenv as beta_env)
    "conflictResolution": "manual",
    "tools": [
        {"workload": "alpha", "filter": ["echo", "getenv", "alpha_only"]},
        {"workload": "beta", "filter": ["weather", "beta_only", "getenv"],
         "overrides": {"getenv": {"name": "beta_env"}}},
    ],
}  # fmt: skip
# strategy → (aggregation, alpha's names clients see, beta's names they must not see or call, beta's getenv)
STRATEGIES: dict[str, tuple[dict[str, Any], set[str], set[str], str]] = {
    "prefix": ({}, {"alpha_echo", "alpha_getenv", "alpha_alpha_only"}, {"beta_echo", "beta_beta_only"}, "beta_getenv"),
    "priority": (  # beta wins the clashing names bare; alpha keeps them under its prefix
        {"conflictResolution": "priority", "conflictResolutionConfig": {"priorityOrder": ["beta"]}},
        {"alpha_echo", "alpha_getenv", "alpha_only"},
        {"echo", "beta_only", "weather"},
        "getenv",
    ),
    "manual": (MANUAL, {"echo", "getenv", "alpha_only"}, {"weather", "beta_only"}, "beta_env"),
}


@pytest.mark.parametrize("strategy", list(STRATEGIES))
async def test_a_policy_on_a_backend_follows_its_tools_under_every_naming_strategy(
    tmp_path: Path, strategy: str
) -> None:
    aggregation, alphas, betas, beta_getenv = STRATEGIES[strategy]
    async with local_issuer() as issuer:
        incoming = oidc_incoming(issuer, AUDIENCE, POLICIES)
        backends = [
            stdio_backend("alpha", FIXTURE_TOOL_ALIAS="alpha_only"),
            stdio_backend("beta", FIXTURE_TOOL_ALIAS="beta_only"),
        ]
        path = write_config(tmp_path, backends, incomingAuth=incoming, aggregation=aggregation)
        eng = issuer.token(AUDIENCE, sub="erin", groups=["eng"])
        sales = issuer.token(AUDIENCE, sub="sal", groups=["sales"])
        async with hivegate_vmcp(["--config", path, "--port", "0"]) as gateway, httpx.AsyncClient(timeout=30) as http:
            erin = await connect(http, gateway, eng)
            listed = set(await erin.tools())
            assert alphas <= listed
            assert beta_getenv in listed
            assert not listed & betas
            if strategy == "manual":
                assert listed == alphas | {beta_getenv}
            assert await erin.text(sorted(n for n in alphas if "echo" in n)[0], text="hi") == "hi"
            assert await erin.text(sorted(n for n in alphas if "getenv" in n)[0], name="WHO") == "alpha"
            assert await erin.text(beta_getenv, name="WHO") == "beta"  # decided on beta's own name
            for name in sorted(betas):
                denied = await erin.call(name, text="x")
                assert denied.status_code == 403, (name, denied.text)
                assert denied.json()["error"] == {"code": 403, "message": "denied by policy"}

            sal = await connect(http, gateway, sales)
            assert await sal.tools() == {}
            assert (await sal.call(sorted(alphas)[0], text="x")).status_code == 403
        warned = [line for line in gateway.stderr if "incomingAuth.authz.policies" in line]
        if strategy == "prefix":
            assert len(warned) == 1, gateway.stderr
            assert 'Tool::"alpha_only": no backend advertises this tool' in warned[0]
            assert 'did you mean Tool::"alpha_alpha_only"?' in warned[0]
        else:
            assert warned == []
