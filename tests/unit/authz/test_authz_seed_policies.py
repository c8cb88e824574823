"""Every Cedar example in the seeds, verbatim, against realistic Okta (`groups`) and Entra ID (`roles`) tokens."""

from __future__ import annotations

import pytest
from authz_helpers import authorizer, entra, okta

# seeds/001, "Set up authorization", step 1 (JSON-escaped in the doc; the same text here)
SEED_001 = [
    'permit(principal, action == Action::"call_tool", resource == Tool::"weather");',
    'permit(principal == Client::"alice123", action == Action::"call_tool", resource == Tool::"admin_tool");',
    'permit(principal, action == Action::"call_tool", resource) when { principal.claim_roles.contains("premium") };',
    'permit(principal, action == Action::"call_tool", resource == Tool::"calculator") when { resource.arg_operation'
    ' == "add" || resource.arg_operation == "subtract" };',
]

# seeds/002, "Cedar quick reference", the six rows
ALLOW_GROUP_ALL = 'permit(principal in THVGroup::"mcp-developers", action, resource);'
ALLOW_USER = 'permit(principal == Client::"user@example.com", action == Action::"call_tool", resource);'
ALLOW_CLAIM = (
    'permit(principal, action == Action::"call_tool", resource) when { principal.claim_roles.contains("admin") };'
)
RESTRICT_ONE = (
    'permit(principal in THVGroup::"mcp-platform", action == Action::"call_tool", resource == Tool::"get_pods");'
)
DENY_ONE = 'forbid(principal in THVGroup::"mcp-developers", action == Action::"call_tool", resource == Tool::"delete_namespace");'  # noqa: E501 (verbatim)
ADMIN = 'permit(principal in THVGroup::"mcp-admin", action, resource);'


@pytest.mark.parametrize("slicing", [True, False])
def test_seed_001_weather_is_open_to_everyone(slicing: bool) -> None:
    authz = authorizer(SEED_001, slicing=slicing)
    decision = authz.decide(okta("00u9bob", ["Everyone"]), "call_tool", "weather")
    assert decision.allowed
    assert decision.reasons == ("policy0",)
    assert not authz.decide(okta("00u9bob", ["Everyone"]), "call_tool", "forecast").allowed


@pytest.mark.parametrize("slicing", [True, False])
def test_seed_001_admin_tool_only_for_alice(slicing: bool) -> None:
    authz = authorizer(SEED_001, slicing=slicing)
    assert authz.decide(okta("alice123", []), "call_tool", "admin_tool").reasons == ("policy1",)
    assert not authz.decide(okta("bob", []), "call_tool", "admin_tool").allowed
    assert not authz.decide(okta("alice123", []), "call_tool", "other_tool").allowed


@pytest.mark.parametrize("slicing", [True, False])
def test_seed_001_premium_role_calls_any_tool(slicing: bool) -> None:
    authz = authorizer(SEED_001, slicing=slicing)
    premium = entra("dana", ["premium"])
    assert authz.decide(premium, "call_tool", "anything").reasons == ("policy2",)
    assert not authz.decide(entra("dana", ["basic"]), "call_tool", "anything").allowed
    # Okta token without a `roles` claim: the premium policy errors and is skipped, weather still allowed
    no_roles = authz.decide(okta("bob", ["Everyone"]), "call_tool", "weather")
    assert no_roles.allowed
    assert any("claim_roles" in e for e in no_roles.errors)
    # only call_tool
    assert not authz.decide(premium, "get_prompt", "anything").allowed


@pytest.mark.parametrize("slicing", [True, False])
def test_seed_001_calculator_add_and_subtract_only(slicing: bool) -> None:
    authz = authorizer(SEED_001, slicing=slicing)
    who = okta("bob", ["Everyone"])
    assert authz.decide(who, "call_tool", "calculator", arguments={"operation": "add", "a": 1, "b": 2}).allowed
    assert authz.decide(who, "call_tool", "calculator", arguments={"operation": "subtract"}).allowed
    assert not authz.decide(who, "call_tool", "calculator", arguments={"operation": "multiply"}).allowed
    assert not authz.decide(who, "call_tool", "calculator").allowed


@pytest.mark.parametrize("slicing", [True, False])
def test_seed_002_allow_a_group_all_tools(slicing: bool) -> None:
    authz = authorizer([ALLOW_GROUP_ALL], slicing=slicing)
    for dev in (okta("00u1dev", ["mcp-developers", "Everyone"]), entra("dev", ["mcp-developers"])):
        assert authz.decide(dev, "call_tool", "get_pods").allowed
        assert authz.decide(dev, "get_prompt", "review").allowed
        assert authz.decide(dev, "read_resource", "file:///etc/motd").allowed
    assert not authz.decide(okta("00u1sales", ["mcp-sales"]), "call_tool", "get_pods").allowed


@pytest.mark.parametrize("slicing", [True, False])
def test_seed_002_allow_a_specific_user(slicing: bool) -> None:
    authz = authorizer([ALLOW_USER], slicing=slicing)
    assert authz.decide(okta("user@example.com", []), "call_tool", "get_pods").allowed
    assert not authz.decide(okta("user@example.com", []), "get_prompt", "p").allowed
    assert not authz.decide(okta("other@example.com", []), "call_tool", "get_pods").allowed


@pytest.mark.parametrize("slicing", [True, False])
def test_seed_002_allow_by_claim_value(slicing: bool) -> None:
    authz = authorizer([ALLOW_CLAIM], slicing=slicing)
    assert authz.decide(entra("ops", ["admin", "reader"]), "call_tool", "delete_namespace").allowed
    assert not authz.decide(entra("dev", ["reader"]), "call_tool", "delete_namespace").allowed
    assert not authz.decide(okta("dev", ["admin"]), "call_tool", "x").allowed  # Okta puts it in groups, not roles


@pytest.mark.parametrize("slicing", [True, False])
def test_seed_002_restrict_to_one_tool(slicing: bool) -> None:
    authz = authorizer([RESTRICT_ONE], slicing=slicing)
    platform = okta("p1", ["mcp-platform"])
    assert authz.decide(platform, "call_tool", "get_pods").allowed
    assert not authz.decide(platform, "call_tool", "delete_namespace").allowed
    assert not authz.decide(okta("d1", ["mcp-developers"]), "call_tool", "get_pods").allowed


@pytest.mark.parametrize("slicing", [True, False])
def test_seed_002_deny_a_group_one_tool_wins_over_permits(slicing: bool) -> None:
    authz = authorizer([ALLOW_GROUP_ALL, DENY_ONE, ADMIN], slicing=slicing)
    dev = entra("dev", ["mcp-developers"])
    assert authz.decide(dev, "call_tool", "get_pods").allowed
    denied = authz.decide(dev, "call_tool", "delete_namespace")
    assert not denied.allowed
    assert denied.reasons == ("policy1",)
    # developer who is also admin: forbid still wins
    assert not authz.decide(okta("both", ["mcp-developers", "mcp-admin"]), "call_tool", "delete_namespace").allowed


@pytest.mark.parametrize("slicing", [True, False])
def test_seed_002_admin_escape_hatch(slicing: bool) -> None:
    authz = authorizer([ALLOW_GROUP_ALL, DENY_ONE, RESTRICT_ONE, ADMIN], slicing=slicing)
    admin = okta("root", ["mcp-admin"])
    assert authz.decide(admin, "call_tool", "delete_namespace").reasons == ("policy3",)
    assert authz.decide(admin, "read_resource", "k8s://pods").allowed


@pytest.mark.parametrize("slicing", [True, False])
def test_user_in_no_group_sees_empty_list(slicing: bool) -> None:
    authz = authorizer([ALLOW_GROUP_ALL, DENY_ONE, RESTRICT_ONE, ADMIN], slicing=slicing)
    tools = [("get_pods", None), ("delete_namespace", {"destructiveHint": True}), ("list_ns", {"readOnlyHint": True})]
    assert authz.filter(okta("nobody", ["Everyone"]), "call_tool", tools) == [False, False, False]
    assert authz.filter(okta("dev", ["mcp-developers"]), "call_tool", tools) == [True, False, True]
    assert authz.filter(okta("plat", ["mcp-platform"]), "call_tool", tools) == [True, False, False]
