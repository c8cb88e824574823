"""Requests as Cedar entities: ToolHive's shape, plus typed values (Long, decimal, records, sets)."""

from __future__ import annotations

from typing import Any

import pytest
from authz_helpers import authorizer, entra, okta

from hivegate.authz.entities import (
    MAX_ARGUMENT_VALUES,
    EntityError,
    argument_attrs,
    group_names,
    principal_entity,
    resource_entity,
    to_cedar_value,
)
from hivegate.core.principal import Principal


def test_principal_entity_carries_every_claim_and_groups_as_parents() -> None:
    entity = principal_entity(okta("00u1", ["mcp-dev", "Everyone", "mcp-dev"]))
    assert entity["uid"] == {"type": "Client", "id": "00u1"}
    assert entity["attrs"]["claim_groups"] == ["mcp-dev", "Everyone", "mcp-dev"]
    assert entity["attrs"]["claim_exp"] == 1_763_003_600
    assert entity["parents"] == [{"type": "THVGroup", "id": "mcp-dev"}, {"type": "THVGroup", "id": "Everyone"}]


@pytest.mark.parametrize(
    ("claims", "kwargs", "expected"),
    [
        ({"groups": ["a"], "roles": ["b"]}, {}, ["a"]),
        ({"roles": ["b"], "cognito:groups": ["c"]}, {}, ["b"]),
        ({"cognito:groups": ["c", "c"]}, {}, ["c"]),
        ({"groups": "not-an-array", "roles": ["b"]}, {}, ["b"]),
        ({"groups": [1, "a", None]}, {}, ["a"]),
        ({"realm_access": {"roles": ["kc"]}}, {"group_claim_name": "realm_access.roles"}, ["kc"]),
        (
            {"realm_access.roles": ["exact"], "realm_access": {"roles": ["dotted"]}},
            {"group_claim_name": "realm_access.roles"},
            ["exact"],
        ),
        ({"groups": ["a"], "custom": ["x"]}, {"group_claim_name": "custom"}, ["x"]),
        ({"groups": ["a"]}, {"group_claim_name": "missing"}, []),
        ({"groups": ["a", "r"], "app_roles": ["r", "s"]}, {"role_claim_name": "app_roles"}, ["a", "r", "s"]),
        ({}, {}, []),
    ],
)
def test_group_extraction(claims: dict[str, Any], kwargs: dict[str, str], expected: list[str]) -> None:
    assert group_names(claims, **kwargs) == expected


def test_group_entity_type_is_configurable() -> None:
    authz = authorizer(['permit(principal in Team::"ops", action, resource);'], group_entity_type="Team")
    assert authz.decide(entra("u", ["ops"]), "call_tool", "t").allowed
    assert not authz.decide(entra("u", ["dev"]), "call_tool", "t").allowed


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s", "s"),
        (True, True),
        (42, 42),
        (-(2**63), -(2**63)),
        (1.5, {"__extn": {"fn": "decimal", "arg": "1.5"}}),
        (-0.0001, {"__extn": {"fn": "decimal", "arg": "-0.0001"}}),
        (0.12345, "0.12345"),
        (1e300, "1e+300"),
        (500.0, 500),  # JSON does not tell 500.0 from 500: a number a guard can compare
        (-(2**63) - 1, "-9223372036854775809"),  # beyond Long: kept, as digits, never dropped
        (2**64, "18446744073709551616"),
        ([1, "a", None], [1, "a"]),
        ({"a": {"b": 1}, "n": None}, {"a": {"b": 1}}),
        ({"__entity": {"type": "THVGroup", "id": "admin"}, "x": 1}, {"x": 1}),
    ],
)
def test_json_to_cedar_values(value: Any, expected: Any) -> None:
    assert to_cedar_value(value) == expected


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), object()])
def test_unrepresentable_values_are_dropped(value: Any) -> None:
    assert to_cedar_value({"v": value}) == {}


def test_nesting_beyond_ten_levels_is_dropped() -> None:
    deep: Any = "leaf"
    for _ in range(15):
        deep = {"k": deep}
    converted = to_cedar_value(deep)
    depth = 0
    while isinstance(converted, dict) and "k" in converted:
        converted = converted["k"]
        depth += 1
    assert depth == 10


def test_unrepresentable_claims_never_crash_a_decision() -> None:
    who = Principal("u", "i", "jwt", {"big": 2**80, "nan": float("nan"), "nested": {"x": [None, {"y": 1.25}]}})
    authz = authorizer(
        ['permit(principal, action, resource) when { principal.claim_nested.x.contains({"y": decimal("1.25")}) };']
    )
    assert authz.decide(who, "call_tool", "t").allowed


def test_tool_resource_attributes_and_their_precedence() -> None:
    args = argument_attrs({"name": "spoof", "operation": "x", "count": 3, "opts": {"dry": True}, "tags": ["a", "b"]})
    entity = resource_entity(
        "call_tool", "deploy", "srv", args=args, annotations={"readOnlyHint": False, "destructiveHint": True, "x": 1}
    )
    assert entity["uid"] == {"type": "Tool", "id": "deploy"}
    assert entity["parents"] == [{"type": "MCP", "id": "srv"}]
    attrs = entity["attrs"]
    assert attrs["name"] == "deploy"
    assert attrs["operation"] == "call"
    assert attrs["feature"] == "tool"
    assert attrs["arg_name"] == "spoof"
    assert attrs["arg_count"] == 3
    assert attrs["arg_opts"] == {"dry": True}
    assert attrs["arg_tags"] == ["a", "b"]
    assert attrs["readOnlyHint"] is False
    assert attrs["destructiveHint"] is True
    assert "x" not in attrs


def test_annotation_hints_are_overridden_by_arguments_and_standard_attrs() -> None:
    entity = resource_entity("call_tool", "t", "s", args={"readOnlyHint": "arg"}, annotations={"readOnlyHint": True})
    assert entity["attrs"]["readOnlyHint"] == "arg"


def test_resource_and_prompt_entities() -> None:
    uri = "file:///srv/data/report.csv?v=2#top"
    res = resource_entity("read_resource", uri, "srv")
    assert res["uid"] == {"type": "Resource", "id": uri}
    assert res["attrs"] == {"name": uri, "uri": uri, "operation": "read", "feature": "resource", "backendName": uri}
    prompt = resource_entity("get_prompt", "review", "srv")
    assert prompt["uid"] == {"type": "Prompt", "id": "review"}
    assert prompt["parents"] == [{"type": "MCP", "id": "srv"}]


def test_integers_are_longs_and_records_are_navigable_in_policies() -> None:
    authz = authorizer(
        [
            'permit(principal, action == Action::"call_tool", resource == Tool::"scale") when { '
            'resource.arg_replicas <= 5 && resource.arg_target.namespace == "dev" '
            '&& resource.arg_labels.contains("safe") && context.arg_replicas > 0 };',
        ]
    )
    who = okta("u", [])
    ok = {"replicas": 3, "target": {"namespace": "dev"}, "labels": ["safe", "x"]}
    assert authz.decide(who, "call_tool", "scale", arguments=ok).allowed
    assert not authz.decide(who, "call_tool", "scale", arguments={**ok, "replicas": 9}).allowed
    assert not authz.decide(who, "call_tool", "scale", arguments={**ok, "target": {"namespace": "prod"}}).allowed


def test_decimal_arguments_compare_as_decimals() -> None:
    authz = authorizer(['permit(principal, action, resource) when { resource.arg_ratio.lessThan(decimal("0.5")) };'])
    assert authz.decide(okta("u", []), "call_tool", "t", arguments={"ratio": 0.25}).allowed
    assert not authz.decide(okta("u", []), "call_tool", "t", arguments={"ratio": 0.75}).allowed


def test_claims_are_in_context_too() -> None:
    authz = authorizer(['permit(principal, action, resource) when { context.claim_roles.contains("admin") };'])
    assert authz.decide(entra("u", ["admin"]), "call_tool", "t").allowed
    assert not authz.decide(entra("u", ["dev"]), "call_tool", "t").allowed


@pytest.mark.parametrize("arguments", [[1, 2], "text", 3])
def test_non_object_arguments_are_a_clear_error_and_a_deny(arguments: Any) -> None:
    with pytest.raises(EntityError, match="arguments must be a JSON object"):
        argument_attrs(arguments)
    decision = authorizer(["permit(principal, action, resource);"]).decide(
        okta("u", []), "call_tool", "t", arguments=arguments
    )
    assert not decision.allowed
    assert decision.errors == (f"arguments must be a JSON object, got {type(arguments).__name__}",)


def test_huge_arguments_are_refused_not_crashed() -> None:
    huge = {f"k{i}": i for i in range(10_000)}
    decision = authorizer(["permit(principal, action, resource);"]).decide(
        okta("u", []), "call_tool", "t", arguments=huge
    )
    assert not decision.allowed
    assert decision.errors == (f"arguments too large (more than {MAX_ARGUMENT_VALUES} values)",)
    deep_list = {"x": [[i] for i in range(5000)]}
    assert (
        not authorizer(["permit(principal, action, resource);"])
        .decide(okta("u", []), "call_tool", "t", arguments=deep_list)
        .allowed
    )


def test_an_argument_cannot_smuggle_an_entity_reference() -> None:
    authz = authorizer(['permit(principal, action, resource) when { resource.arg_who == THVGroup::"admin" };'])
    spoof = {"who": {"__entity": {"type": "THVGroup", "id": "admin"}}}
    assert not authz.decide(okta("u", []), "call_tool", "t", arguments=spoof).allowed
