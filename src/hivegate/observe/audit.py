"""The audit trail: one JSON line per MCP request, in ToolHive's audit event shape.

Config (`--audit-config FILE`, ToolHive's keys; `--enable-audit` alone uses the defaults): `component` (default: the
server name), `eventTypes` / `excludeEventTypes` (e.g. `mcp_tool_call`), `includeRequestData`,
`includeResponseData`, `maxDataSize` (bytes of request/response data kept, default 1024), `logFile` (default:
standard output), and hivegate's `authorizationClaims` (default true) and `authorizationArguments` (`none`, `read`
or `all`; default `all` with `includeRequestData`, else `none`): what a decision's `input` records
(`decision_record`). An audit file that cannot be opened is a start-up error; a write that fails later (full disk) is
counted and logged once, never raised into a request.

A line: `{"time", "level": "INFO", "msg": "audit_event", "audit_id", "type", "logged_at", "outcome", "component",
"source": {"type": "network", "value": <address>, "extra": {"request_id", "session_id", "user_agent"}}, "subjects":
{"user", "user_id", "client_name", "client_version"}, "target": {"endpoint", "method", "type", "name"}, "metadata":
{"extra": {"duration_ms", "transport", "authorization": {"decision", "policies", "names", "why", "input"}, "error"}},
"data": {"request", "response"}}`. `authorization.decision` is `allow` or `deny` with the deciding policy ids (none for
a method the gateway never lets through), and what it was decided on (`decision_record`); a list answer filtered per
caller has `{"decision": "filter", "allowed": <items kept>, "denied": <items withheld>}` instead. Tokens never appear:
the principal is named by its claims (never one holding a token), and request data is the JSON-RPC `params` only
(headers are never recorded).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson
import yaml

from hivegate.config.reader import did_you_mean
from hivegate.config.syntax import syntax_error
from hivegate.errors import ConfigError
from hivegate.observe.decision_record import ArgumentsKept, authorization_record
from hivegate.observe.exchange import Exchange, McpCall

__all__ = ["AuditConfig", "Auditor", "event_type", "load_audit_config"]

logger = logging.getLogger("hivegate.audit")

EVENT_TYPES: Mapping[str, str] = {
    "initialize": "mcp_initialize",
    "tools/call": "mcp_tool_call",
    "tools/list": "mcp_tools_list",
    "resources/read": "mcp_resource_read",
    "resources/list": "mcp_resources_list",
    "resources/templates/list": "mcp_resource_templates_list",
    "resources/subscribe": "mcp_resource_subscribe",
    "resources/unsubscribe": "mcp_resource_unsubscribe",
    "prompts/get": "mcp_prompt_get",
    "prompts/list": "mcp_prompts_list",
    "ping": "mcp_ping",
    "logging/setLevel": "mcp_logging",
    "completion/complete": "mcp_completion",
    "notifications/roots/list_changed": "mcp_roots_list_changed",
}
_KEYS = frozenset(
    {"component", "eventTypes", "excludeEventTypes", "includeRequestData", "includeResponseData", "maxDataSize",
     "logFile", "authorizationClaims", "authorizationArguments"}
)  # fmt: skip
_ARGUMENTS_KEPT: tuple[ArgumentsKept, ...] = ("none", "read", "all")


def event_type(method: str) -> str:
    if method in EVENT_TYPES:
        return EVENT_TYPES[method]
    if method.startswith("notifications/"):
        return "mcp_notification"
    return "mcp_request"


@dataclass(frozen=True, slots=True)
class AuditConfig:
    component: str = ""
    event_types: frozenset[str] = field(default_factory=frozenset)  # empty: all
    exclude_event_types: frozenset[str] = field(default_factory=frozenset)
    include_request_data: bool = False
    include_response_data: bool = False
    max_data_size: int = 1024
    log_file: str | None = None
    authorization_claims: bool = True
    authorization_arguments: ArgumentsKept | None = None  # None: `all` with request data, else `none`

    @property
    def arguments_kept(self) -> ArgumentsKept:
        """Which argument values a decision's `input` records."""
        if self.authorization_arguments is not None:
            return self.authorization_arguments
        return "all" if self.include_request_data else "none"

    def wants(self, kind: str) -> bool:
        return (not self.event_types or kind in self.event_types) and kind not in self.exclude_event_types


def load_audit_config(path: str | Path) -> AuditConfig:
    """Read an audit config (JSON, or YAML by extension); `ConfigError` names the field."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if p.suffix.lower() in (".yaml", ".yml") else json.loads(text)
    except OSError as exc:
        raise ConfigError(f"audit config {p}: cannot read: {exc.strerror or exc}") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise syntax_error(f"audit config {p}", exc) from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"audit config {p}: must be a mapping")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ConfigError(f"audit config {p}: {unknown[0]}: unknown field{did_you_mean(str(unknown[0]), _KEYS)}")

    def strings(key: str) -> frozenset[str]:
        value = data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"audit config {p}: {key}: must be a list of event types")
        return frozenset(value)

    def flag(key: str, default: bool = False) -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"audit config {p}: {key}: must be true or false")
        return value

    size = data.get("maxDataSize", 1024)
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ConfigError(f"audit config {p}: maxDataSize: must be a number of bytes (>= 0)")
    component = data.get("component") or ""
    log_file = data.get("logFile") or None
    if not isinstance(component, str) or (log_file is not None and not isinstance(log_file, str)):
        raise ConfigError(f"audit config {p}: component and logFile must be strings")
    kept = data.get("authorizationArguments")
    if kept is not None and kept not in _ARGUMENTS_KEPT:
        raise ConfigError(f"audit config {p}: authorizationArguments: must be one of none, read, all, got {kept!r}")
    return AuditConfig(
        authorization_claims=flag("authorizationClaims", default=True),
        authorization_arguments=kept,
        component=component,
        event_types=strings("eventTypes"),
        exclude_event_types=strings("excludeEventTypes"),
        include_request_data=flag("includeRequestData"),
        include_response_data=flag("includeResponseData"),
        max_data_size=size,
        log_file=log_file,
    )


class Auditor:
    """An `Observer` writing audit lines. `open()` fails loudly (start-up); writing never raises."""

    def __init__(self, config: AuditConfig, *, component: str, transport: str) -> None:
        self._config = config
        self._component = config.component or component
        self._transport = transport
        self._out: IO[str] | None = None
        self._lock = threading.Lock()
        self.failures = 0

    def open(self) -> None:
        if self._config.log_file is None:
            self._out = sys.stdout
            return
        path = Path(self._config.log_file)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.fchmod(fd, 0o600)  # a regular file only: never a device or pipe someone pointed us at
            self._out = open(fd, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise ConfigError(f"audit logFile {path}: cannot open for writing: {exc.strerror or exc}") from None

    def close(self) -> None:
        out, self._out = self._out, None
        if out is not None and out is not sys.stdout:
            try:
                out.close()  # flushes: can fail as any write can
            except OSError as exc:
                self._failed(exc)

    def exchange_done(self, exchange: Exchange) -> None:
        for call in exchange.calls:
            kind = event_type(call.method)
            if self._config.wants(kind):
                self._write(self.event(exchange, call, kind))

    def event(self, exchange: Exchange, call: McpCall, kind: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        principal = exchange.principal
        subjects: dict[str, str] = {}
        if principal is not None:
            claims = principal.claims
            subjects["user_id"] = principal.subject
            subjects["user"] = str(claims.get("name") or claims.get("preferred_username") or claims.get("email")
                                   or principal.subject)  # fmt: skip
        if exchange.client_info:
            subjects["client_name"] = str(exchange.client_info.get("name", ""))
            subjects["client_version"] = str(exchange.client_info.get("version", ""))
        target: dict[str, str] = {"endpoint": exchange.path, "method": call.method, "type": call.target_type}
        if call.target is not None:
            target["uri" if call.target_type == "resource" else "name"] = call.target
        extra: dict[str, Any] = {"transport": self._transport}
        if call.duration is not None:
            extra["duration_ms"] = round(call.duration * 1000, 3)
        if call.decision is not None:
            extra["authorization"] = authorization_record(
                call,
                principal,
                claims=self._config.authorization_claims,
                arguments=self._config.arguments_kept,
                max_size=self._config.max_data_size,
            )
        elif call.filtered is not None:  # a list answer decided item by item: counted, the items never logged
            extra["authorization"] = {"decision": "filter", "allowed": call.filtered[0], "denied": call.filtered[1]}
        if call.error_code is not None or call.error_message:
            extra["error"] = {"code": call.error_code, "message": call.error_message}
        source_extra: dict[str, Any] = {"request_id": exchange.request_id}
        if exchange.session_id:
            source_extra["session_id"] = exchange.session_id
        if exchange.user_agent:
            source_extra["user_agent"] = exchange.user_agent[:200]
        event: dict[str, Any] = {
            "time": now.isoformat(),
            "level": "INFO",
            "msg": "audit_event",
            "audit_id": str(uuid.uuid4()),
            "type": kind,
            "logged_at": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
            "outcome": call.outcome or "error",
            "component": self._component,
            "source": {"type": "network", "value": exchange.source, "extra": source_extra},
            "subjects": subjects,
            "target": target,
            "metadata": {"extra": extra},
        }
        data: dict[str, Any] = {}
        if self._config.include_request_data and call.params is not None:
            data["request"] = self._bounded(call.params)
        if self._config.include_response_data and call.response is not None:
            data["response"] = self._bounded(call.response)
        if data:
            event["data"] = data
        return event

    def _bounded(self, value: Any) -> Any:
        try:
            encoded = orjson.dumps(value)
        except TypeError:
            return {"omitted": "not JSON"}
        if len(encoded) <= self._config.max_data_size:
            return value
        return {"truncated": True, "size": len(encoded), "prefix": encoded[: self._config.max_data_size].decode(
            "utf-8", "ignore")}  # fmt: skip

    def _write(self, event: dict[str, Any]) -> None:
        out = self._out
        if out is None:
            return
        line = orjson.dumps(event).decode() + "\n"
        try:
            with self._lock:
                out.write(line)
        except (OSError, ValueError) as exc:  # a full disk or closed file loses the line, never the request
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        if self.failures == 1:
            logger.error("audit: cannot write the audit log (%s); further failures are counted only", exc)
