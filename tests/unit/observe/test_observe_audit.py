"""Audit config parsing, event shape and filtering, and what a failing audit sink does (nothing to the request)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from hivegate.core.principal import Principal
from hivegate.errors import ConfigError
from hivegate.observe.audit import AuditConfig, Auditor, event_type, load_audit_config
from hivegate.observe.exchange import Exchange


def exchange_with_call(method: str = "tools/call", **params: object) -> Exchange:
    ex = Exchange.open("/mcp", "POST", "10.0.0.7", "agent/1.0")
    ex.principal = Principal("sub-1", "https://idp", "jwt", {"sub": "sub-1", "email": "a@example.com"})
    call = ex.call({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
    call.decided(True, ("policy3",))
    call.answered({"jsonrpc": "2.0", "id": 1, "result": {"content": [], "isError": False}})
    return ex


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus: 1\n", "bogus: unknown field"),
        ("maxDataSize: -1\n", "maxDataSize"),
        ("includeRequestData: yes please\n", "includeRequestData"),
        ("eventTypes: mcp_tool_call\n", "eventTypes"),
        ("- a list\n", "must be a mapping"),
    ],
)
def test_bad_audit_configs_name_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "audit.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_audit_config(path)


def test_event_types_and_filters() -> None:
    assert event_type("tools/call") == "mcp_tool_call"
    assert event_type("notifications/initialized") == "mcp_notification"
    assert event_type("tasks/list") == "mcp_request"
    cfg = AuditConfig(event_types=frozenset({"mcp_tool_call", "mcp_ping"}), exclude_event_types=frozenset({"mcp_ping"}))
    assert cfg.wants("mcp_tool_call")
    assert not cfg.wants("mcp_ping")
    assert not cfg.wants("mcp_tools_list")


def test_an_event_carries_who_what_and_the_deciding_policies() -> None:
    auditor = Auditor(AuditConfig(include_request_data=True), component="srv", transport="streamable-http")
    ex = exchange_with_call(name="echo", arguments={"text": "hi"})
    event = auditor.event(ex, ex.calls[0], "mcp_tool_call")
    assert event["outcome"] == "success"
    assert event["subjects"] == {"user_id": "sub-1", "user": "a@example.com"}
    assert event["target"] == {"endpoint": "/mcp", "method": "tools/call", "type": "tool", "name": "echo"}
    assert event["source"] == {"type": "network", "value": "10.0.0.7",
                               "extra": {"request_id": ex.request_id, "user_agent": "agent/1.0"}}  # fmt: skip
    assert event["metadata"]["extra"]["authorization"] == {"decision": "allow", "policies": ["policy3"]}
    assert event["data"] == {"request": {"name": "echo", "arguments": {"text": "hi"}}}


def test_a_failing_sink_loses_lines_not_requests(caplog: pytest.LogCaptureFixture) -> None:
    auditor = Auditor(AuditConfig(), component="srv", transport="sse")
    broken = io.StringIO()
    broken.close()  # writing raises ValueError, like a closed or full file
    auditor._out = broken
    for _ in range(3):
        auditor.exchange_done(exchange_with_call(name="echo"))
    assert auditor.failures == 3
    assert caplog.text.count("cannot write the audit log") == 1


def test_an_unwritable_log_file_fails_at_open(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    auditor = Auditor(AuditConfig(log_file=str(blocker / "audit.log")), component="srv", transport="sse")
    with pytest.raises(ConfigError, match="cannot open for writing"):
        auditor.open()
