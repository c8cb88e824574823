"""Every authorization decision reaches the audit line: a method the gateway never lets through is a deny by no
policy, and a list answer filtered per caller carries a summary (counts, never the items)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from authz_helpers import authorizer, okta

from hivegate.authz.cedar import CedarAuthorizer
from hivegate.authz.gate import DecisionEvent, McpGate
from hivegate.observe.audit import AuditConfig, Auditor, event_type
from hivegate.observe.exchange import Exchange, McpCall
from hivegate.pipeline.answers import answer_filter

POLICIES = [
    'permit(principal, action == Action::"call_tool", resource == Tool::"weather");',
    'permit(principal, action == Action::"get_prompt", resource == Prompt::"greeting");',
    'permit(principal in THVGroup::"admins", action, resource);',
]
USER = okta("00u1user", ["Everyone"])
ADMIN = okta("00u2admin", ["admins"])


@dataclass
class Fixed:
    current: CedarAuthorizer


def gate(events: list[DecisionEvent] | None = None) -> McpGate:
    return McpGate(Fixed(authorizer(POLICIES)), listeners=() if events is None else (events.append,))


def request(method: str, params: Any = None, request_id: int = 1) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "method": method, "params": {} if params is None else params}


def tools(*names: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": n} for n in names], "nextCursor": "c2"}}


def audited(method: str) -> tuple[Exchange, McpCall]:
    ex = Exchange.open("/mcp", "POST", "10.0.0.7", "agent/1.0")
    ex.principal = USER
    return ex, ex.call(request(method))


def authorization(ex: Exchange, call: McpCall) -> Any:
    event = Auditor(AuditConfig(), component="srv", transport="streamable-http").event(
        ex, call, event_type(call.method)
    )
    return event["metadata"]["extra"].get("authorization")


# -- the gate ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["tasks/list", "elicitation/create", "x/y"])
def test_an_unknown_method_is_a_deny_decided_by_no_policy(method: str) -> None:
    events: list[DecisionEvent] = []
    verdict = gate(events).check(ADMIN, request(method))
    assert not verdict.allowed
    assert verdict.invalid is None
    assert verdict.decision is not None
    assert (verdict.decision.allowed, verdict.decision.reasons) == (False, ())
    assert (verdict.action, verdict.resource) == (None, None)
    assert [(e.method, e.allowed, e.policies) for e in events] == [(method, False, ())]


def test_a_malformed_request_is_invalid_not_a_decision() -> None:
    verdict = gate().check(USER, request("tools/call", {"arguments": {}}))
    assert verdict.invalid is not None
    assert verdict.decision is None


def test_a_filtered_list_reports_kept_and_withheld_counts() -> None:
    counted: list[tuple[int, int]] = []
    g = gate()
    user_view = g.filter_answer(USER, tools("weather", "nuke", "calc"), lambda *c: counted.append(c))
    assert [t["name"] for t in user_view["result"]["tools"]] == ["weather"]
    assert user_view["result"]["nextCursor"] == "c2"
    g.filter_answer(ADMIN, tools("weather", "nuke"), lambda *c: counted.append(c))
    assert counted == [(1, 2), (2, 0)]


def test_the_summary_counts_malformed_items_as_withheld() -> None:
    counted: list[tuple[int, int]] = []
    answer = {"jsonrpc": "2.0", "id": 1, "result": {"prompts": [{"name": "greeting"}, {"title": "no name"}, "x"]}}
    view = gate().filter_answer(USER, answer, lambda *c: counted.append(c))
    assert view["result"]["prompts"] == [{"name": "greeting"}]
    assert counted == [(1, 2)]


def test_no_summary_for_an_error_or_a_result_without_the_list() -> None:
    counted: list[tuple[int, int]] = []
    g = gate()
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "nope"}}
    assert g.filter_answer(USER, error, lambda *c: counted.append(c)) is error
    odd = {"jsonrpc": "2.0", "id": 1, "result": {"tools": "oops"}}
    assert g.filter_answer(USER, odd, lambda *c: counted.append(c)) is odd
    assert counted == []


def test_a_failing_summary_never_changes_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    def broken(_kept: int, _withheld: int) -> None:
        raise RuntimeError("audit down")

    view = gate().filter_answer(USER, tools("weather", "nuke"), broken)
    assert [t["name"] for t in view["result"]["tools"]] == ["weather"]
    assert "list filter summary failed" in caplog.text


# -- the audit event ---------------------------------------------------------------------------------------------------


def test_an_unknown_method_is_audited_as_a_deny_without_policies() -> None:
    ex, call = audited("tasks/list")
    verdict = gate().check(USER, request("tasks/list"))
    assert verdict.decision is not None
    call.decided(verdict.allowed, verdict.decision.reasons)  # as every front does
    call.answered({"jsonrpc": "2.0", "id": 1, "error": {"code": 403, "message": "Unauthorized"}})
    event = Auditor(AuditConfig(), component="srv", transport="sse").event(ex, call, "mcp_request")
    assert event["outcome"] == "denied"
    assert event["target"]["method"] == "tasks/list"
    assert event["metadata"]["extra"]["authorization"] == {"decision": "deny", "policies": []}
    assert event["metadata"]["extra"]["error"] == {"code": 403, "message": "Unauthorized"}


@pytest.mark.parametrize(
    ("method", "answer", "summary"),
    [
        ("tools/list", tools("weather", "nuke", "calc"), (1, 2)),
        ("prompts/list", {"jsonrpc": "2.0", "id": 1, "result": {"prompts": [{"name": "greeting"}]}}, (1, 0)),
        ("resources/list", {"jsonrpc": "2.0", "id": 1, "result": {"resources": [{"uri": "file:///a"}]}}, (0, 1)),
        ("resources/templates/list", {"jsonrpc": "2.0", "id": 1, "result": {"resourceTemplates": []}}, (0, 0)),
    ],
)
def test_a_filtered_list_is_audited_with_its_summary_not_its_items(
    method: str, answer: dict[str, Any], summary: tuple[int, int]
) -> None:
    ex, call = audited(method)
    call.answered(answer_filter(gate(), USER, call)(answer))
    assert call.filtered == summary
    assert authorization(ex, call) == {"decision": "filter", "allowed": summary[0], "denied": summary[1]}
    event = Auditor(AuditConfig(), component="srv", transport="sse").event(ex, call, event_type(method))
    assert "nuke" not in str(event)
    assert event["type"] == event_type(method)
    assert event["outcome"] == "success"


def test_a_list_never_filtered_and_a_plain_call_carry_no_authorization() -> None:
    ex, listed = audited("tools/list")  # authorization off: no filter ran
    listed.answered(tools("weather"))
    assert authorization(ex, listed) is None
    ex, ping = audited("ping")
    ping.answered({"jsonrpc": "2.0", "id": 1, "result": {}})
    assert authorization(ex, ping) is None


def test_an_errored_list_carries_no_summary() -> None:
    ex, call = audited("tools/list")
    call.answered(
        answer_filter(gate(), USER, call)({"jsonrpc": "2.0", "id": 1, "error": {"code": -32603, "message": "boom"}})
    )
    assert authorization(ex, call) is None
    assert call.outcome == "error"
