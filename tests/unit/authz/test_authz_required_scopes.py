"""`requiredScopes` beside the Cedar policies: strict decoding (errors name the field), the gate's verdict on tools,
prompts, resources and completions, and the authorization stage turning scope refusals into `InsufficientScope`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from hivegate.authz import AuthzConfig, CedarAuthorizer, parse_authz_config
from hivegate.authz.gate import McpGate
from hivegate.core.jsonrpc import Message
from hivegate.core.principal import Principal, held_scopes
from hivegate.errors import ConfigError, InsufficientScope
from hivegate.pipeline.authorize import admit
from hivegate.pipeline.messages import parse_body

POLICIES = ["permit(principal, action, resource);", 'forbid(principal, action, resource == Prompt::"secret");']


def config(required: Any) -> AuthzConfig:
    doc = {"version": "1.0", "type": "cedarv1", "cedar": {"policies": POLICIES}, "requiredScopes": required}
    return parse_authz_config(doc, source="authz.json")


def test_required_scopes_are_keyed_by_cedar_entity() -> None:
    cfg = config({
        'Tool::"delete_namespace"': ["mcp:admin", "mcp:write", "mcp:admin"],
        'Prompt::"say \\"hi\\""': ["prompts:read"],
        'Resource::"file:///etc/app.conf"': ["files:read"],
    })  # fmt: skip
    assert cfg.required_scopes == {
        ("Tool", "delete_namespace"): ("mcp:admin", "mcp:write"),
        ("Prompt", 'say "hi"'): ("prompts:read",),
        ("Resource", "file:///etc/app.conf"): ("files:read",),
    }
    assert (
        parse_authz_config({"version": "1", "type": "cedarv1", "cedar": {"policies": POLICIES}}).required_scopes == {}
    )


@pytest.mark.parametrize(
    ("required", "message"),
    [
        (["mcp:admin"], 'authz.json: requiredScopes must be an object like {"Tool::\\"name\\"": ["scope"]}'),
        ({"delete_namespace": ["mcp:admin"]},
         'authz.json: requiredScopes["delete_namespace"]: the key must be Tool::"<name>", Prompt::"<name>" or '
         'Resource::"<uri>"'),
        ({'Action::"call_tool"': ["a"]}, 'authz.json: requiredScopes["Action::\\"call_tool\\""]: the key must be'),
        ({"Tool::x": ["a"]}, 'authz.json: requiredScopes["Tool::x"]: the key must be'),
        ({'Tool::""': ["a"]}, 'authz.json: requiredScopes["Tool::\\"\\""]: the name must not be empty'),
        ({'Tool::"x"': "mcp:admin"}, 'authz.json: requiredScopes["Tool::\\"x\\""] must be a non-empty list of scopes'),
        ({'Tool::"x"': []}, 'authz.json: requiredScopes["Tool::\\"x\\""] must be a non-empty list of scopes'),
        ({'Tool::"x"': ["ok", "two words"]},
         "authz.json: requiredScopes[\"Tool::\\\"x\\\"\"][1] must be a scope (RFC 6749 section 3.3), got 'two words'"),
        ({'Tool::"x"': ['quo"te']}, 'authz.json: requiredScopes["Tool::\\"x\\""][0] must be a scope'),
        ({'Tool::"x"': [7]}, 'authz.json: requiredScopes["Tool::\\"x\\""][0] must be a scope'),
        ({'Tool::"x"': ["a"], 'Tool::"\\x"': ["b"]}, "Tool 'x' is listed twice"),
    ],
)  # fmt: skip
def test_a_bad_required_scopes_section_is_refused_naming_the_field(required: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(required)
    assert message in str(caught.value), caught.value


def test_a_misspelt_top_level_key_is_still_refused() -> None:
    with pytest.raises(ConfigError, match="unknown key requiredScope "):
        parse_authz_config({"version": "1", "type": "cedarv1", "cedar": {"policies": POLICIES}, "requiredScope": {}})


# -- the gate --------------------------------------------------------------------------------------------------------


@dataclass
class Fixed:
    current: CedarAuthorizer


def gate() -> McpGate:
    cfg = config({
        'Tool::"delete_namespace"': ["mcp:admin"],
        'Prompt::"deploy"': ["mcp:deploy"],
        'Prompt::"secret"': ["mcp:admin"],
        'Resource::"file:///prod.env"': ["files:read", "mcp:admin"],
    })  # fmt: skip
    return McpGate(Fixed(CedarAuthorizer.from_config(cfg, "srv")), listeners=())


def who(**claims: Any) -> Principal:
    return Principal("alice", "https://as.example", "jwt", {"sub": "alice", **claims})


def request(method: str, request_id: int = 1, **params: Any) -> Message:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}


def test_scopes_are_read_from_scope_and_scp() -> None:
    assert held_scopes({"scope": "openid  mcp:read", "scp": ["mcp:read", "mcp:admin", 7]}) == (
        "openid",
        "mcp:read",
        "mcp:admin",
    )
    assert held_scopes({"scp": "access_as_user mcp:admin"}) == ("access_as_user", "mcp:admin")
    assert held_scopes({"scope": 5}) == ()


def test_the_gate_refuses_a_call_lacking_a_required_scope_naming_them_all() -> None:
    g = gate()
    lacking = who(scope="openid files:read")
    cases = [
        (request("tools/call", name="delete_namespace", arguments={}), ("mcp:admin",)),
        (request("prompts/get", name="deploy"), ("mcp:deploy",)),
        (request("resources/read", uri="file:///prod.env"), ("files:read", "mcp:admin")),
        (request("resources/subscribe", uri="file:///prod.env"), ("files:read", "mcp:admin")),
        (request("completion/complete", ref={"type": "ref/prompt", "name": "deploy"}), ("mcp:deploy",)),
    ]
    for message, needed in cases:
        verdict = g.check(lacking, message)
        assert not verdict.allowed, message
        assert verdict.scopes == needed
        assert verdict.decision is not None
        assert verdict.decision.errors[-1] == f"insufficient scope: needs {' '.join(needed)}"
    holder = who(scope="openid", scp=["mcp:admin", "mcp:deploy", "files:read"])  # Okta/Entra write `scp`
    for message, _ in cases:
        assert g.check(holder, message).allowed, message
    assert g.check(lacking, request("tools/call", name="echo", arguments={})).allowed  # nothing required


def test_a_cedar_denial_is_not_a_scope_refusal() -> None:
    verdict = gate().check(who(scope="openid"), request("prompts/get", name="secret"))
    assert not verdict.allowed
    assert verdict.scopes == ()


def test_lists_keep_the_items_a_caller_lacks_scopes_for() -> None:
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"prompts": [{"name": "deploy"}, {"name": "secret"}]}}
    kept = gate().filter_answer(who(scope="openid"), answer)
    assert [p["name"] for p in kept["result"]["prompts"]] == ["deploy"]


# -- the authorization stage -------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_stage_raises_the_challenge_only_when_scopes_would_lift_every_refusal() -> None:
    g = gate()
    alice = who(scope="openid offline_access")
    single = parse_body(
        b'{"jsonrpc":"2.0","id":4,"method":"prompts/get","params":{"name":"deploy"}}', revision="2025-06-18"
    )
    with pytest.raises(InsufficientScope) as caught:
        await admit(g, alice, single, {})
    assert caught.value.scope == "mcp:deploy openid offline_access"
    assert caught.value.answer["id"] == 4
    assert caught.value.answer["error"]["code"] == 403

    both = parse_body(
        b'[{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"deploy"}},'
        b'{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_namespace","arguments":{}}}]',
        revision="2025-03-26",
    )
    with pytest.raises(InsufficientScope) as caught:
        await admit(g, alice, both, {})
    assert caught.value.scope == "mcp:deploy mcp:admin openid offline_access"
    assert [reply["id"] for reply in caught.value.answer] == [1, 2]

    mixed = parse_body(
        b'[{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"secret"}},'
        b'{"jsonrpc":"2.0","id":2,"method":"prompts/get","params":{"name":"deploy"}}]',
        revision="2025-03-26",
    )
    admission = await admit(g, alice, mixed, {})  # Cedar refuses one: no scope lifts it, a plain 403
    assert not admission.allowed
    assert admission.answer(mixed)[0] == 403
