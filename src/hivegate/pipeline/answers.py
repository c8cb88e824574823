"""Pipeline stage "filter the answer": every answer a caller receives, on every stream, shows only what it may use.

POST answers, GET streams and streams replayed with `Last-Event-ID` alike. The filter goes by what an answer carries
(`McpGate.filter_answer`: a result holding a `tools` list is cut down to the tools the caller may call), not by the
method of the request its id names: ids are the client's to choose and may be reused, and a replayed stream holds
answers to requests the gateway may never have seen (another process, a restart). The principal is the one the
session is bound to (`Sessions are never authentication`: every request on it is that principal's), so a stream
carries nothing another caller could not see as well.

`might_carry_list` lets a front that relays bytes skip decoding answers that cannot hold a list.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from hivegate.authz.gate import McpGate
from hivegate.core.jsonrpc import Message, RequestId
from hivegate.core.principal import Principal
from hivegate.observe.exchange import McpCall

__all__ = ["AnswerFilter", "answer_filter", "might_carry_list"]

AnswerFilter = Callable[[Message], Message]

# The result keys of the four list answers, as an honest serializer writes them (a key spelled with escapes, which
# no MCP SDK emits, is caught by the escape check).
_LIST_KEYS: Final = (b'"tools"', b'"prompts"', b'"resources"', b'"resourceTemplates"')


def answer_filter(
    gate: McpGate, principal: Principal, calls: Mapping[RequestId, McpCall] | McpCall | None = None
) -> AnswerFilter:
    """What cuts each answer down for `principal`; a filtered list is summarised on the call it answers (`calls`: by
    id, or the one call a per-request stream carries) for the audit trail."""
    if calls is None or isinstance(calls, McpCall):
        counted = None if calls is None else calls.filtered_list
        return lambda answer: gate.filter_answer(principal, answer, counted)
    by_id = calls

    def apply(answer: Message) -> Message:
        call = by_id.get(answer.get("id"))  # type: ignore[arg-type]
        return gate.filter_answer(principal, answer, None if call is None else call.filtered_list)

    return apply


def might_carry_list(payload: bytes) -> bool:
    """False when `payload` (JSON) cannot hold a list answer, so it need not be decoded to be filtered."""
    return b"\\u" in payload or any(key in payload for key in _LIST_KEYS)
