"""Policy validation against the shipped schema: never-matching policies are errors, open attributes warnings."""

from __future__ import annotations

import json

from authz_helpers import config
from test_authz_seed_policies import ADMIN, ALLOW_CLAIM, ALLOW_GROUP_ALL, ALLOW_USER, DENY_ONE, RESTRICT_ONE, SEED_001

from hivegate.authz import validate_policies
from hivegate.authz.validate import schema_text


def test_every_seed_policy_validates_without_errors() -> None:
    problems = validate_policies(
        config([*SEED_001, ALLOW_GROUP_ALL, ALLOW_USER, ALLOW_CLAIM, RESTRICT_ONE, DENY_ONE, ADMIN])
    )
    assert [p for p in problems if p.severity == "error"] == []
    # the claim/argument attributes depend on the IdP and the tool: warnings only
    assert {p.index for p in problems} <= {2, 3, 6}


def test_tools_call_action_from_toolhive_docs_is_flagged() -> None:
    (problem,) = validate_policies(config(['permit(principal, action == Action::"tools/call", resource);']))
    assert problem.severity == "error"
    assert problem.index == 0
    assert 'Action::"tools/call"' in problem.message
    assert 'did you mean Action::"call_tool"?' in problem.message
    assert str(problem).startswith("error: cedar.policies[0] (policy0): can never match")


def test_wrong_entity_types_and_impossible_scopes_are_flagged() -> None:
    problems = validate_policies(
        config(
            [
                'permit(principal == User::"alice", action == Action::"call_tool", resource);',
                'permit(principal, action == Action::"call_tool", resource == Prompt::"p");',
                'permit(principal, action == Action::"get_prompt", resource == Prompt::"p");',
            ]
        )
    )
    assert [(p.index, p.severity) for p in problems] == [(0, "error"), (1, "error")]
    assert "entity type User" in problems[0].message
    assert "no action applies" in problems[1].message


def test_entity_types_from_entities_json_are_only_warnings() -> None:
    entities = json.dumps([{"uid": {"type": "Sensitivity", "id": "high"}, "attrs": {}, "parents": []}])
    problems = validate_policies(
        config(['forbid(principal, action, resource in Sensitivity::"high");'], entities_json=entities)
    )
    assert [p.severity for p in problems] == ["warning"]


def test_custom_group_entity_type() -> None:
    assert "entity Team in [Team];" in schema_text("Team")
    cfg = config(['permit(principal in Team::"ops", action, resource);'], group_entity_type="Team")
    assert validate_policies(cfg) == []
