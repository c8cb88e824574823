"""Which MCP messages are decided, refused or filtered (the real Cedar engine behind a fixed policy source)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from authz_helpers import authorizer, okta

from hivegate.authz.cedar import CedarAuthorizer
from hivegate.authz.gate import DecisionEvent, McpGate, refusal

POLICIES = [
    'permit(principal, action == Action::"call_tool", resource == Tool::"weather");',
    'permit(principal in THVGroup::"admins", action, resource);',
    'permit(principal, action == Action::"get_prompt", resource == Prompt::"greeting");',
    'permit(principal, action == Action::"read_resource", resource == Resource::"file:///public.txt");',
    'permit(principal, action == Action::"read_resource", resource == Resource::"file:///logs/{day}.log");',
    'permit(principal, action == Action::"call_tool", resource)'
    " when { resource has readOnlyHint && resource.readOnlyHint };",
    'permit(principal, action == Action::"call_tool", resource == Tool::"calc") when { resource.arg_op == "add" };',
]

USER = okta("00u1user", ["Everyone"])
ADMIN = okta("00u2admin", ["admins"])


@dataclass
class Fixed:
    current: CedarAuthorizer


def gate(events: list[DecisionEvent] | None = None) -> McpGate:
    listeners = () if events is None else (events.append,)
    return McpGate(Fixed(authorizer(POLICIES)), listeners=listeners)


def call(method: str, params: Any = None, request_id: int = 7) -> dict[str, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return message


@pytest.mark.parametrize(
    "method",
    ["initialize", "ping", "logging/setLevel", "roots/list", "resources/unsubscribe", "tools/list", "prompts/list"],
)
def test_housekeeping_and_lists_always_pass(method: str) -> None:
    assert gate().check(USER, call(method, {})).allowed


def test_notifications_and_client_responses_pass_without_a_decision() -> None:
    events: list[DecisionEvent] = []
    g = gate(events)
    assert g.check(USER, {"jsonrpc": "2.0", "method": "notifications/initialized"}).allowed
    assert g.check(USER, {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}).allowed
    assert g.check(USER, {"jsonrpc": "2.0", "id": 3, "result": {"roots": []}}).allowed
    assert events == []


@pytest.mark.parametrize("method", ["tasks/list", "tasks/get", "elicitation/create", "sampling/createMessage", "x/y"])
def test_unknown_methods_are_denied_even_for_admins(method: str) -> None:
    verdict = gate().check(ADMIN, call(method, {}))
    assert not verdict.allowed
    assert refusal(verdict, 7) == (
        403,
        {"jsonrpc": "2.0", "id": 7, "error": {"code": 403, "message": "denied by policy"}},
    )


def test_tool_call_is_decided_with_its_name_and_arguments() -> None:
    events: list[DecisionEvent] = []
    g = gate(events)
    allowed = g.check(USER, call("tools/call", {"name": "weather", "arguments": {"city": "Oslo"}}))
    assert (allowed.allowed, allowed.action, allowed.resource) == (True, "call_tool", "weather")
    assert allowed.decision is not None
    assert allowed.decision.reasons == ("policy0",)
    denied = g.check(USER, call("tools/call", {"name": "delete_everything"}))
    assert not denied.allowed
    assert denied.invalid is None
    assert g.check(USER, call("tools/call", {"name": "calc", "arguments": {"op": "add"}})).allowed
    assert not g.check(USER, call("tools/call", {"name": "calc", "arguments": {"op": "mul"}})).allowed
    assert [(e.method, e.resource, e.allowed) for e in events] == [
        ("tools/call", "weather", True),
        ("tools/call", "delete_everything", False),
        ("tools/call", "calc", True),
        ("tools/call", "calc", False),
    ]
    assert events[0].principal is USER
    assert events[0].policies == ("policy0",)


def test_prompts_resources_and_subscribe_map_to_their_actions() -> None:
    g = gate()
    assert g.check(USER, call("prompts/get", {"name": "greeting"})).allowed
    assert not g.check(USER, call("prompts/get", {"name": "secret"})).allowed
    assert g.check(USER, call("resources/read", {"uri": "file:///public.txt"})).allowed
    assert not g.check(USER, call("resources/read", {"uri": "file:///etc/shadow"})).allowed
    subscribe = g.check(USER, call("resources/subscribe", {"uri": "file:///public.txt"}))
    assert (subscribe.allowed, subscribe.action) == (True, "read_resource")
    assert not g.check(USER, call("resources/subscribe", {"uri": "file:///etc/shadow"})).allowed


def test_completion_is_decided_on_what_it_completes() -> None:
    g = gate()
    prompt = {"ref": {"type": "ref/prompt", "name": "greeting"}, "argument": {"name": "who", "value": "a"}}
    assert g.check(USER, call("completion/complete", prompt)).allowed
    secret = {"ref": {"type": "ref/prompt", "name": "secret"}, "argument": {"name": "who", "value": "a"}}
    assert not g.check(USER, call("completion/complete", secret)).allowed
    template = {"ref": {"type": "ref/resource", "uri": "file:///logs/{day}.log"}, "argument": {"name": "day"}}
    assert g.check(USER, call("completion/complete", template)).allowed
    bad = g.check(USER, call("completion/complete", {"ref": {"type": "ref/tool"}}))
    assert refusal(bad, 7)[0] == 400


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (None, "Invalid params: tools/call needs params.name (a string)"),
        ({"name": 42}, "Invalid params: tools/call needs params.name (a string)"),
        ({"name": "weather", "arguments": [1, 2]}, "Invalid params: params.arguments must be an object, got an array"),
        ({"name": "weather", "arguments": "x"}, "Invalid params: params.arguments must be an object, got a string"),
    ],
)
def test_malformed_params_are_invalid_not_forwarded(params: Any, message: str) -> None:
    verdict = gate().check(ADMIN, call("tools/call", params))
    assert not verdict.allowed
    assert refusal(verdict, 7) == (400, {"jsonrpc": "2.0", "id": 7, "error": {"code": -32602, "message": message}})


def test_huge_arguments_are_refused_as_invalid_params() -> None:
    verdict = gate().check(ADMIN, call("tools/call", {"name": "weather", "arguments": {"xs": list(range(10_000))}}))
    status, body = refusal(verdict, 7)
    assert status == 400
    assert body["error"]["code"] == -32602
    assert "arguments too large" in body["error"]["message"]


def tools_answer(*tools: dict[str, Any], request_id: int = 7) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": {"tools": list(tools), "nextCursor": "page2"}}


def test_tools_list_is_filtered_per_caller_and_keeps_the_rest_of_the_answer() -> None:
    g = gate()
    answer = tools_answer({"name": "weather"}, {"name": "delete_everything"}, {"name": "calc"})
    user_view = g.filter_answer(USER, answer)
    assert [t["name"] for t in user_view["result"]["tools"]] == ["weather"]
    assert user_view["result"]["nextCursor"] == "page2"
    assert user_view["id"] == 7
    admin_view = g.filter_answer(ADMIN, answer)
    assert [t["name"] for t in admin_view["result"]["tools"]] == ["weather", "delete_everything", "calc"]
    assert len(answer["result"]["tools"]) == 3  # the backend's answer itself is not modified


def test_a_caller_in_no_permitted_group_sees_empty_lists() -> None:
    g = McpGate(Fixed(authorizer(['permit(principal in THVGroup::"admins", action, resource);'])))
    answer = tools_answer({"name": "weather"}, {"name": "calc"})
    assert g.filter_answer(USER, answer)["result"]["tools"] == []


def test_annotations_from_tools_list_drive_later_calls() -> None:
    g = gate()
    reader = {"name": "list_files", "annotations": {"readOnlyHint": True, "title": "List"}}
    writer = {"name": "rm_files", "annotations": {"readOnlyHint": False}}
    assert not g.check(USER, call("tools/call", {"name": "list_files"})).allowed  # unknown until listed
    view = g.filter_answer(USER, tools_answer(reader, writer))
    assert [t["name"] for t in view["result"]["tools"]] == ["list_files"]
    assert g.check(USER, call("tools/call", {"name": "list_files"})).allowed
    assert not g.check(USER, call("tools/call", {"name": "rm_files"})).allowed


def test_prompts_resources_and_templates_lists_are_filtered() -> None:
    g = gate()
    prompts = {"jsonrpc": "2.0", "id": 1, "result": {"prompts": [{"name": "greeting"}, {"name": "secret"}]}}
    assert [p["name"] for p in g.filter_answer(USER, prompts)["result"]["prompts"]] == ["greeting"]
    resources = {
        "jsonrpc": "2.0",
        "id": 2,
        "result": {
            "resources": [{"uri": "file:///public.txt", "name": "p"}, {"uri": "file:///etc/shadow", "name": "s"}]
        },
    }
    kept = g.filter_answer(USER, resources)["result"]["resources"]
    assert [r["uri"] for r in kept] == ["file:///public.txt"]
    templates = {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {
            "resourceTemplates": [
                {"uriTemplate": "file:///logs/{day}.log", "name": "logs"},
                {"uriTemplate": "db://{table}", "name": "tables"},
            ]
        },
    }
    kept = g.filter_answer(USER, templates)["result"]["resourceTemplates"]
    assert [t["name"] for t in kept] == ["logs"]


def test_malformed_list_items_are_dropped_and_errors_pass_unchanged() -> None:
    g = gate()
    weird = tools_answer({"name": "weather"}, {"title": "no name"}, "not an object", {"name": 5})  # type: ignore[arg-type]
    assert g.filter_answer(ADMIN, weird)["result"]["tools"] == [{"name": "weather"}]
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "nope"}}
    assert g.filter_answer(USER, error) is error
    no_list = {"jsonrpc": "2.0", "id": 1, "result": {"tools": "oops"}}
    assert g.filter_answer(USER, no_list) is no_list


def test_an_answer_is_filtered_by_the_lists_it_carries_whatever_request_it_names() -> None:
    """Ids are the client's: a tools list answering an id a prompts/list used, or replayed on a stream, is still a
    tools list."""
    g = gate()
    both = {"jsonrpc": "2.0", "id": 7, "result": {"tools": [{"name": "weather"}, {"name": "x"}],
                                                  "prompts": [{"name": "greeting"}, {"name": "secret"}]}}  # fmt: skip
    view = g.filter_answer(USER, both)
    assert view["result"]["tools"] == [{"name": "weather"}]
    assert view["result"]["prompts"] == [{"name": "greeting"}]
    request = call("tools/list")
    assert g.filter_answer(USER, request) is request  # a request (it has a method) is not an answer
    plain = {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": "tools"}]}}
    assert g.filter_answer(USER, plain) is plain


def test_a_failing_listener_never_changes_a_decision(caplog: pytest.LogCaptureFixture) -> None:
    def broken(_event: DecisionEvent) -> None:
        raise RuntimeError("audit sink down")

    g = McpGate(Fixed(authorizer(POLICIES)), listeners=(broken,))
    assert g.check(USER, call("tools/call", {"name": "weather"})).allowed
    assert not g.check(USER, call("tools/call", {"name": "other"})).allowed
    assert "decision listener failed" in caplog.text


def test_default_listener_logs_denials_without_claims_or_tokens(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="hivegate.authz")
    secret_claims = okta("00u1user", ["Everyone"], secret_claim="s3cr3t-value")
    McpGate(Fixed(authorizer(POLICIES))).check(secret_claims, call("tools/call", {"name": "nuke"}))
    assert "authz deny: subject='00u1user' method=tools/call action=call_tool resource='nuke'" in caplog.text
    assert "s3cr3t-value" not in caplog.text


def test_a_tool_list_is_wanted_only_when_policies_read_annotations_and_none_was_seen() -> None:
    g = gate()
    message = call("tools/call", {"name": "list_files"})
    assert g.needs_tool_list(message)
    assert not g.needs_tool_list(call("prompts/get", {"name": "p"}))
    g.learn_tool_list(tools_answer({"name": "list_files", "annotations": {"readOnlyHint": True}}))
    assert not g.needs_tool_list(message)
    assert g.check(USER, message).allowed
    plain = McpGate(Fixed(authorizer(['permit(principal, action, resource == Tool::"x");'])))
    assert not plain.needs_tool_list(message)
