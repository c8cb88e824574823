"""The Cedar engine wrapper: entities_json merging, hierarchies, list filtering, bad input, the engine's answer."""

from __future__ import annotations

import json

import pytest
from authz_helpers import authorizer, entra, okta

from hivegate.authz import cedar as engine

ANYONE = "permit(principal, action, resource);"


def test_engine_answer_shape_is_what_we_parse() -> None:
    """We call cedarpy's extension directly for speed; pin the JSON it answers with."""
    import cedarpy

    policies = cedarpy.PolicySet.from_str(ANYONE)
    request = {
        "principal": {"type": "Client", "id": "u"},
        "action": {"type": "Action", "id": "call_tool"},
        "resource": {"type": "Tool", "id": "t"},
        "context": "{}",
    }
    (answer,) = engine._is_authorized_batch([request], policies, "[]", None, False)
    parsed = json.loads(answer)
    assert parsed["decision"] == "Allow"
    assert parsed["diagnostics"]["reason"] == ["policy0"]
    assert parsed["diagnostics"]["errors"] == []


def test_entities_json_adds_attributes_to_tools() -> None:
    entities = json.dumps(
        [
            {
                "uid": {"type": "Tool", "id": "payroll"},
                "attrs": {"sensitivity": "high", "name": "ignored"},
                "parents": [],
            },
            {"uid": {"type": "Sensitivity", "id": "high"}, "attrs": {}, "parents": []},
        ]
    )
    authz = authorizer(
        [
            ANYONE,
            'forbid(principal, action, resource) when { resource has sensitivity && resource.sensitivity == "high" '
            '&& !(principal in THVGroup::"hr") };',
            'permit(principal, action, resource) when { resource.name == "payroll" };',
        ],
        entities_json=entities,
    )
    assert authz.decide(okta("u", ["hr"]), "call_tool", "payroll").allowed
    assert not authz.decide(okta("u", ["dev"]), "call_tool", "payroll").allowed
    assert authz.decide(okta("u", ["dev"]), "call_tool", "weather").allowed
    # our standard attributes win over entities_json ones
    assert set(authz.decide(okta("u", ["hr"]), "call_tool", "payroll").reasons) == {"policy0", "policy2"}
    assert authz.filter(okta("u", ["dev"]), "call_tool", [("payroll", None), ("weather", None)]) == [False, True]


@pytest.mark.parametrize("slicing", [True, False])
def test_group_hierarchy_from_entities_json(slicing: bool) -> None:
    entities = json.dumps(
        [
            {
                "uid": {"type": "THVGroup", "id": "mcp-admin"},
                "attrs": {},
                "parents": [{"type": "THVGroup", "id": "mcp-all"}],
            }
        ]
    )
    authz = authorizer(
        ['permit(principal in THVGroup::"mcp-all", action, resource);'], slicing=slicing, entities_json=entities
    )
    assert authz.decide(okta("root", ["mcp-admin"]), "call_tool", "t").allowed
    assert not authz.decide(okta("dev", ["mcp-dev"]), "call_tool", "t").allowed


@pytest.mark.parametrize("slicing", [True, False])
def test_action_hierarchy_from_entities_json(slicing: bool) -> None:
    entities = json.dumps(
        [{"uid": {"type": "Action", "id": "call_tool"}, "attrs": {}, "parents": [{"type": "Action", "id": "use"}]}]
    )
    authz = authorizer(
        ['permit(principal, action in Action::"use", resource);'], slicing=slicing, entities_json=entities
    )
    assert authz.decide(okta("u", []), "call_tool", "t").allowed
    assert not authz.decide(okta("u", []), "get_prompt", "p").allowed


def test_resource_in_server() -> None:
    authz = authorizer(['permit(principal, action, resource in MCP::"engineering-tools");'])
    assert authz.decide(okta("u", []), "get_prompt", "p").allowed
    other = authorizer(['permit(principal, action, resource in MCP::"sales-tools");'])
    assert not other.decide(okta("u", []), "get_prompt", "p").allowed


def test_slices_evaluate_only_applicable_policies() -> None:
    authz = authorizer(
        [
            'permit(principal, action == Action::"call_tool", resource == Tool::"a");',
            'permit(principal, action == Action::"call_tool", resource == Tool::"b");',
            'permit(principal in THVGroup::"ops", action, resource);',
            'permit(principal == Client::"alice", action, resource);',
            'permit(principal, action, resource) when { principal.claim_roles.contains("admin") };',
            'permit(principal, action == Action::"get_prompt", resource);',
        ]
    )
    assert authz.policy_ids_for(okta("bob", ["dev"]), "call_tool", "a") == ("policy0", "policy4")
    assert authz.policy_ids_for(entra("bob", ["reader"]), "call_tool", "a") == ("policy0",)
    assert authz.policy_ids_for(entra("alice", ["ops", "admin"]), "call_tool", "c") == ("policy2", "policy3", "policy4")
    assert authz.policy_ids_for(entra("bob", []), "read_resource", "file:///x") == ()
    assert not authz.decide(entra("bob", []), "read_resource", "file:///x").allowed


def test_filter_handles_duplicates_and_prompts_and_resources() -> None:
    authz = authorizer(
        [
            'permit(principal, action == Action::"call_tool", resource) when { resource has readOnlyHint && '
            "resource.readOnlyHint };",
            'permit(principal, action == Action::"read_resource", resource) when { '
            'resource.uri like "file:///pub/*" };',
        ]
    )
    who = okta("u", [])
    tools = [
        ("ls", {"readOnlyHint": True}),
        ("rm", {"destructiveHint": True}),
        ("ls", None),
        ("ls", {"readOnlyHint": True}),
    ]
    assert authz.filter(who, "call_tool", tools) == [True, False, False, True]
    uris = [("file:///pub/a.txt", None), ("file:///secret/b.txt", None)]
    assert authz.filter(who, "read_resource", uris) == [True, False]
    assert authz.filter(who, "get_prompt", [("p", None)]) == [False]
    assert authz.filter(who, "call_tool", []) == []


def test_unknown_action_is_denied() -> None:
    authz = authorizer([ANYONE])
    decision = authz.decide(okta("u", []), "tools/call", "t")  # type: ignore[arg-type]
    assert not decision.allowed
    assert "unknown action" in decision.errors[0]
    assert authz.filter(okta("u", []), "tools/list", [("t", None)]) == [False]  # type: ignore[arg-type]


def test_engine_failure_is_a_deny(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> list[str]:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "_is_authorized_batch", broken)
    authz = authorizer([ANYONE])
    decision = authz.decide(okta("u", []), "call_tool", "t")
    assert not decision.allowed
    assert decision.errors == ("cedar evaluation failed: boom",)
    assert authz.filter(okta("u", []), "call_tool", [("t", None)]) == [False]


def test_odd_names_and_subjects_are_plain_ids() -> None:
    authz = authorizer(['permit(principal == Client::"a\\"b", action, resource == Tool::"x\\ny");'])
    who = okta('a"b', [])
    assert authz.decide(who, "call_tool", "x\ny").allowed
    assert not authz.decide(who, "call_tool", 'x"y').allowed


def test_caller_cache_tells_tokens_apart() -> None:
    authz = authorizer(['permit(principal in THVGroup::"ops", action, resource);'])
    assert authz.decide(okta("u", ["ops"]), "call_tool", "t").allowed
    assert not authz.decide(okta("u", ["dev"]), "call_tool", "t").allowed
    assert authz.decide(okta("u", ["ops"]), "call_tool", "t").allowed


GUARDED = [
    'permit(principal, action == Action::"call_tool", resource == Tool::"calculator");',
    'forbid(principal, action == Action::"call_tool", resource == Tool::"calculator") when { resource.arg_a > 100 };',
]


@pytest.mark.parametrize("slicing", [True, False])
@pytest.mark.parametrize(
    ("a", "allowed"),
    [
        (5, True),
        (101, False),
        (5.0, True),
        (500.0, False),
        (5.5, False),
        ("5", False),
        (2**64, False),
        (-(2**70), False),
    ],
)
def test_a_forbid_that_errors_denies_whatever_the_argument_type(slicing: bool, a: object, allowed: bool) -> None:
    authz = authorizer(GUARDED, slicing=slicing)
    decision = authz.decide(okta("u", []), "call_tool", "calculator", arguments={"a": a, "b": 1})
    assert decision.allowed is allowed
    if not allowed:
        assert decision.reasons == ("policy1",)  # the forbid decided, whether it matched or failed


def test_a_forbid_on_an_argument_left_out_denies_unless_guarded_with_has() -> None:
    bare = authorizer(GUARDED)
    assert not bare.decide(okta("u", []), "call_tool", "calculator", arguments={}).allowed
    guarded = authorizer(
        [GUARDED[0], GUARDED[1].replace("resource.arg_a > 100", "resource has arg_a && resource.arg_a > 100")]
    )
    assert guarded.decide(okta("u", []), "call_tool", "calculator", arguments={}).allowed
    assert not guarded.decide(okta("u", []), "call_tool", "calculator", arguments={"a": "500"}).allowed


def test_a_permit_that_errors_neither_grants_nor_locks_out() -> None:
    authz = authorizer(
        [
            'permit(principal, action == Action::"call_tool", resource == Tool::"weather");',
            'permit(principal, action, resource) when { principal.claim_roles.contains("premium") };',
        ]
    )
    no_roles = okta("u", [])  # no `roles` claim: the second policy errors for this caller
    assert authz.decide(no_roles, "call_tool", "weather").allowed
    denied = authz.decide(no_roles, "call_tool", "admin_tool")
    assert not denied.allowed
    assert denied.reasons == ()
    assert any("policy1" in error for error in denied.errors)


def test_list_filtering_hides_an_item_whose_forbid_errors() -> None:
    authz = authorizer(
        [
            "permit(principal, action, resource);",
            'forbid(principal, action == Action::"call_tool", resource) when { principal.claim_level < 3 };',
        ]
    )
    assert authz.filter(okta("u", [], level=5), "call_tool", [("a", None), ("b", None)]) == [True, True]
    assert authz.filter(okta("u", [], level=1), "call_tool", [("a", None)]) == [False]
    assert authz.filter(okta("u", []), "call_tool", [("a", None)]) == [False]  # no `level` claim: the forbid errors


def test_list_filtering_keeps_a_tool_whose_forbid_reads_an_argument() -> None:
    authz = authorizer(
        [
            "permit(principal, action, resource);",
            'forbid(principal, action == Action::"call_tool", resource) when { resource.arg_a > 100 };',
        ]
    )
    caller = okta("u", [])
    assert authz.filter(caller, "call_tool", [("calc", None)]) == [True]  # a list has no arguments to read
    assert authz.decide(caller, "call_tool", "calc", arguments={"a": 5}).allowed
    assert not authz.decide(caller, "call_tool", "calc", arguments={"a": "500"}).allowed  # the call stays strict
    assert not authz.decide(caller, "call_tool", "calc").allowed


def test_remembered_decisions_follow_what_the_policies_read() -> None:
    authz = authorizer(GUARDED)
    caller = okta("u", [])
    for _ in range(3):  # the second and third come from memory, and agree
        assert authz.decide(caller, "call_tool", "calculator", arguments={"a": 5, "b": 1}).allowed
        assert not authz.decide(caller, "call_tool", "calculator", arguments={"a": 500, "b": 1}).allowed
    # an argument the policies do not read does not split the memory, one they read does
    assert authz.decide(caller, "call_tool", "calculator", arguments={"a": 5, "b": 2}).allowed
    assert not authz.decide(caller, "call_tool", "calculator", arguments={"a": "5", "b": 1}).allowed
    # another caller's claims are another caller
    roles = authorizer(["permit(principal, action, resource) when { principal.claim_level > 2 };"])
    assert roles.decide(okta("u", [], level=3), "call_tool", "x").allowed
    assert not roles.decide(okta("u", [], level=1), "call_tool", "x").allowed
    assert roles.decide(okta("u", [], level=3), "call_tool", "x").allowed
