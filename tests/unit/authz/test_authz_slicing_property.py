"""The sliced evaluator (scope index, principal index, claim guards, attribute pruning, caches) decides exactly as the
plain full policy set: same allow/deny, same deciding policies, same errors, on random policies and requests."""

from __future__ import annotations

import json
from typing import Any

from authz_helpers import authorizer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hivegate.authz import ActionName
from hivegate.core.principal import Principal

ACTIONS: tuple[ActionName, ...] = ("call_tool", "get_prompt", "read_resource")

TOOLS = ["weather", "calculator", "get_pods", "delete_namespace"]
GROUPS = ["mcp-developers", "mcp-platform", "mcp-admin"]
USERS = ["alice", "bob"]

principal_scopes = st.sampled_from(
    [
        "principal",
        *(f'principal == Client::"{u}"' for u in USERS),
        *(f'principal in THVGroup::"{g}"' for g in GROUPS),
        'principal in Client::"alice"',
        'principal == User::"alice"',
        'principal in Team::"x"',
        "principal is Client",
    ]
)
action_scopes = st.sampled_from(
    [
        "action",
        'action == Action::"call_tool"',
        'action == Action::"get_prompt"',
        'action == Action::"read_resource"',
        'action in [Action::"call_tool", Action::"get_prompt"]',
        'action in Action::"call_tool"',
        'action == Action::"tools/call"',
    ]
)
resource_scopes = st.sampled_from(
    [
        "resource",
        *(f'resource == Tool::"{t}"' for t in TOOLS),
        'resource == Prompt::"weather"',
        "resource is Tool",
        "resource is Prompt",
        'resource in MCP::"engineering-tools"',
        'resource in MCP::"other"',
        'resource == Resource::"file:///a"',
        'resource is Tool in MCP::"engineering-tools"',
    ]
)
conditions = st.sampled_from(
    [
        "",
        'when { principal.claim_roles.contains("admin") }',
        'when { principal.claim_groups.contains("mcp-admin") }',
        'when { principal.claim_roles.contains("admin") && resource.arg_n > 1 }',
        'when { resource.arg_operation == "add" || resource.arg_operation == "subtract" }',
        "when { resource has readOnlyHint && resource.readOnlyHint }",
        "when { context.arg_n > 2 }",
        'when { context has claim_email && context.claim_email like "*@example.com" }',
        "when { context == {} }",
        "when { resource.arg_n + 9223372036854775807 > 0 }",
        'unless { principal.claim_level == "low" }',
        'when { principal.team.name == "x" }',
        "when { resource.owner == principal }",
    ]
)
policies = st.lists(
    st.builds(
        lambda effect, p, a, r, c: f"{effect}({p}, {a}, {r}) {c};",
        st.sampled_from(["permit", "permit", "forbid"]),
        principal_scopes,
        action_scopes,
        resource_scopes,
        conditions,
    ),
    min_size=1,
    max_size=12,
)
claims = st.fixed_dictionaries(
    {"sub": st.sampled_from(USERS)},
    optional={
        "groups": st.lists(st.sampled_from([*GROUPS, "Everyone"]), max_size=3),
        "roles": st.one_of(
            st.lists(st.sampled_from(["admin", "reader", "mcp-platform"]), max_size=2), st.just("admin")
        ),
        "email": st.sampled_from(["a@example.com", "b@corp.test"]),
        "level": st.sampled_from(["low", "high"]),
    },
)
arguments = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {}, optional={"operation": st.sampled_from(["add", "multiply"]), "n": st.integers(-3, 5), "x": st.floats()}
    ),
)
requests = st.lists(
    st.tuples(
        st.sampled_from(ACTIONS),
        st.sampled_from([*TOOLS, "file:///a", "other"]),
        arguments,
        st.sampled_from([None, {"readOnlyHint": True}, {"readOnlyHint": False, "destructiveHint": True}]),
    ),
    min_size=1,
    max_size=6,
)
entities_json = st.sampled_from(
    [
        "[]",
        json.dumps(
            [
                {
                    "uid": {"type": "Tool", "id": "weather"},
                    "attrs": {"owner": {"__entity": {"type": "Client", "id": "bob"}}},
                    "parents": [],
                }
            ]
        ),
        json.dumps(
            [
                {
                    "uid": {"type": "THVGroup", "id": "mcp-admin"},
                    "attrs": {},
                    "parents": [{"type": "THVGroup", "id": "mcp-platform"}],
                }
            ]
        ),
        json.dumps(
            [
                {
                    "uid": {"type": "Action", "id": "call_tool"},
                    "attrs": {},
                    "parents": [{"type": "Action", "id": "get_prompt"}],
                }
            ]
        ),
        json.dumps(
            [
                {
                    "uid": {"type": "Client", "id": "alice"},
                    "attrs": {"team": {"name": "x"}},
                    "parents": [{"type": "Team", "id": "x"}],
                }
            ]
        ),
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies, st.lists(claims, min_size=1, max_size=3), requests, entities_json)
def test_sliced_decisions_equal_full_set(
    texts: list[str], callers: list[dict[str, Any]], reqs: list[tuple[Any, ...]], entities: str
) -> None:
    sliced = authorizer(texts, entities_json=entities)
    full = authorizer(texts, slicing=False, entities_json=entities)
    for caller in callers:
        who = Principal(caller["sub"], "https://idp", "jwt", caller)
        for action, name, args, hints in reqs:
            expected = full.decide(who, action, name, arguments=args, annotations=hints)
            got = sliced.decide(who, action, name, arguments=args, annotations=hints)
            assert (got.allowed, sorted(got.reasons), sorted(got.errors)) == (
                expected.allowed,
                sorted(expected.reasons),
                sorted(expected.errors),
            ), (texts, caller, action, name, args)
        for list_action in ACTIONS:
            items = [(name, hints) for _, name, _, hints in reqs]
            want = [full.decide(who, list_action, n, annotations=h, listing=True).allowed for n, h in items]
            assert sliced.filter(who, list_action, items) == want
            assert full.filter(who, list_action, items) == want
