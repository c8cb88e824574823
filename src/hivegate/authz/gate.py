"""Which MCP messages need which Cedar decision, what a denial looks like, and which list results are filtered.

Transport-free: the gateway's fronts hand it parsed JSON-RPC messages.

- Protocol housekeeping always passes: `initialize`, `ping`, `logging/setLevel`, `roots/list`,
  `resources/unsubscribe`, every notification, and the client's responses to server requests.
- `tools/call` → `call_tool`, `prompts/get` → `get_prompt`, `resources/read` and `resources/subscribe` →
  `read_resource`; `completion/complete` is decided on what it completes (ToolHive lets every completion through,
  which leaks a prompt's or template's argument values to callers who may not use it).
- The four list methods pass and their results are filtered item by item with the same decision a call would get;
  `resources/templates/list` too (ToolHive leaves it unfiltered), deciding `read_resource` on the URI template. An
  answer is filtered by the lists it carries (`filter_answer`), not by the method of the request it names, so an
  answer replayed on a stream, or one whose id was reused, is never shown whole.
- Anything else (e.g. `tasks/*`, or a client sending `elicitation/create`) is denied: its verdict carries a deny
  `Decision` that no policy made (no reasons), so the audit trail records the denial.
- A call the policies allow on a tool, prompt or resource that has `requiredScopes` (`policy_config`) is refused
  when the token lacks any of them: the verdict's `scopes` name them all, for the `insufficient_scope` challenge
  (MCP authorization, step-up). Lists still show the item: the caller can ask for the scopes.

A filtered list answer can be summarised for the audit trail (`filter_answer(…, on_filtered)`): how many items were
kept and how many withheld, never the items themselves.

Tool annotation hints (`readOnlyHint` …) are learnt from every `tools/list` result, so a `tools/call` decision can
read `resource.readOnlyHint`.

Behind a virtual MCP server the gate has a `Locator`: each advertised name is decided (and each list item filtered)
as a child of `MCP::"<backend>"` it comes from, with `backendName` the backend's own name (`entities.Origin`); a
name the locator does not know is decided as a child of the virtual server itself.

A decided verdict carries its `DecisionInput` (server, backend name, annotations, the arguments the policies read)
for the audit trail, so `hivegate authz replay` can decide the same call again. With `hivegate.authz` at debug
level, each decision is logged with its whole entity set (claims and arguments, never a token).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, Protocol

from hivegate.authz.decision import Decision, DecisionInput
from hivegate.authz.entities import ACTION_RESOURCE_TYPE, ANNOTATION_HINTS, ActionName, Locator, Origin
from hivegate.authz.explain import SCOPE_ERROR, describe
from hivegate.core.jsonrpc import INVALID_PARAMS, Message, RequestId
from hivegate.core.principal import Principal

if TYPE_CHECKING:
    from hivegate.authz.cedar import CedarAuthorizer

__all__ = [
    "DENIED_CODE",
    "DENIED_MESSAGE",
    "LIST_METHODS",
    "AuthorizerSource",
    "DecisionEvent",
    "ListFiltered",
    "McpGate",
    "Verdict",
    "decide_call",
    "denial",
    "refusal",
]

logger = logging.getLogger("hivegate.authz")

DENIED_CODE: Final = 403  # ToolHive's JSON-RPC error code for a denial, kept so its clients' handling carries over
DENIED_MESSAGE: Final = "denied by policy"
ALWAYS_ALLOWED = frozenset({"initialize", "ping", "logging/setLevel", "roots/list", "resources/unsubscribe"})
# list method → (action deciding each item, result key of the items, item key naming the resource)
LIST_METHODS: Mapping[str, tuple[ActionName, str, str]] = {
    "tools/list": ("call_tool", "tools", "name"),
    "prompts/list": ("get_prompt", "prompts", "name"),
    "resources/list": ("read_resource", "resources", "uri"),
    "resources/templates/list": ("read_resource", "resourceTemplates", "uriTemplate"),
}
_DECIDED: Mapping[str, tuple[ActionName, str]] = {
    "tools/call": ("call_tool", "name"),
    "prompts/get": ("get_prompt", "name"),
    "resources/read": ("read_resource", "uri"),
    "resources/subscribe": ("read_resource", "uri"),
}
_COMPLETION_REFS: Mapping[str, tuple[ActionName, str]] = {
    "ref/prompt": ("get_prompt", "name"),
    "ref/resource": ("read_resource", "uri"),
}
_MAX_LEARNT_TOOLS = 10_000


class AuthorizerSource(Protocol):
    """Where the live authorizer comes from (a reloadable policy store, or a fixed one in tests)."""

    @property
    def current(self) -> CedarAuthorizer: ...


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome for one client message.

    `action`/`resource` are set when a Cedar decision was made (`decision`); a method the gateway never lets
    through has a deny `decision` with no reasons and no action. `invalid` is a JSON-RPC "Invalid params" message
    when the request is too malformed to decide (answered -32602, never forwarded). `scopes` are the scopes the call
    needs when it is refused only because the token lacks some of them (`insufficient_scope`). `input` is what the
    decision read beyond the caller and the message (for the audit trail).
    """

    allowed: bool
    action: ActionName | None = None
    resource: str | None = None
    decision: Decision | None = None
    invalid: str | None = None
    scopes: tuple[str, ...] = ()
    input: DecisionInput | None = None


@dataclass(frozen=True, slots=True)
class DecisionEvent:
    """One authorization decision, for logs and the audit trail."""

    principal: Principal
    method: str
    action: str | None
    resource: str | None
    allowed: bool
    policies: tuple[str, ...]
    errors: tuple[str, ...]
    names: tuple[str, ...] = ()  # the deciding policies' `@id` annotations (or ids), when any has one


DecisionListener = Callable[[DecisionEvent], None]
ListFiltered = Callable[[int, int], None]  # a list answer was filtered: (items kept, items withheld)

PASS: Final = Verdict(True)


def decide_call(
    authorizer: CedarAuthorizer,
    principal: Principal,
    action: ActionName,
    name: str,
    *,
    arguments: Mapping[str, Any] | None = None,
    annotations: Mapping[str, Any] | None = None,
    origin: Origin | None = None,
) -> tuple[Decision, tuple[str, ...]]:
    """Decide a call as the gateway does: Cedar's decision, then the `requiredScopes` check when Cedar allows it.
    Returns the decision and the scopes the call needs when it is refused only for lacking them."""
    decision = authorizer.decide(principal, action, name, arguments=arguments, annotations=annotations, origin=origin)
    required = authorizer.required_scopes.get((ACTION_RESOURCE_TYPE[action], name)) if decision.allowed else None
    if required and not set(required) <= set(principal.scopes):
        lacking = f"{SCOPE_ERROR}needs {' '.join(required)}"
        return replace(decision, allowed=False, errors=(*decision.errors, lacking)), required
    return decision, ()


def denial(request_id: RequestId | None, message: str = DENIED_MESSAGE) -> Message:
    """The JSON-RPC error a denied request gets: ToolHive's code 403 (its clients' handling carries over), and a
    message that says what happened ("denied by policy", where ToolHive says "Unauthorized", which reads as a login
    problem). Which policies decided it is for the audit trail and the log, not for the caller."""
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": DENIED_CODE, "message": message}}


def refusal(verdict: Verdict, request_id: RequestId | None) -> tuple[int, Message]:
    """The HTTP status and JSON-RPC error for a request `verdict` refuses: 400 Invalid params, else 403."""
    if verdict.invalid is not None:
        return 400, {"jsonrpc": "2.0", "id": request_id, "error": {"code": INVALID_PARAMS, "message": verdict.invalid}}
    if verdict.scopes:
        return 403, denial(request_id, f"Insufficient scope: this call needs {' '.join(verdict.scopes)}")
    return 403, denial(request_id)


class McpGate:
    """Authorizes client messages and filters list results for one MCP server."""

    def __init__(
        self,
        source: AuthorizerSource,
        *,
        listeners: tuple[DecisionListener, ...] = (),
        locate: Locator | None = None,
    ) -> None:
        self._source = source
        self._locate = locate
        self._listeners = listeners or (_log_decision,)
        self._annotations: dict[str, dict[str, bool]] = {}
        self._listed = False

    @property
    def policy_count(self) -> int:
        return self._source.current.policy_count

    @property
    def authorizer(self) -> CedarAuthorizer:
        """The policies in force."""
        return self._source.current

    def needs_tool_list(self, message: Message) -> bool:
        """Whether deciding this `tools/call` needs tool annotations not learnt yet (policies read them, and no
        `tools/list` answer has been seen): the front then asks the backend for its tool list first."""
        return message.get("method") == "tools/call" and not self._listed and self._source.current.reads_annotations

    def learn_tool_list(self, response: Message) -> None:
        """Learn annotation hints from a `tools/list` answer the gateway asked for itself."""
        result = response.get("result")
        tools = result.get("tools") if isinstance(result, dict) else None
        if isinstance(tools, list):
            self._learn([t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)])

    def check(self, principal: Principal, message: Message) -> Verdict:
        """Whether `message` may go to the backend; notifications and responses always may."""
        method = message.get("method")
        if method is None or "id" not in message or method in ALWAYS_ALLOWED or method in LIST_METHODS:
            return PASS
        decided = _DECIDED.get(method)
        params = message.get("params")
        if decided is None:
            if method == "completion/complete":
                return self._completion(principal, params)
            unknown = Decision(False, errors=(f"method {method!r} is not allowed",))
            self._emit(principal, method, None, None, unknown)
            return Verdict(False, decision=unknown)
        action, key = decided
        if not isinstance(params, dict) or not isinstance(params.get(key), str):
            return Verdict(False, invalid=f"Invalid params: {method} needs params.{key} (a string)")
        name: str = params[key]
        arguments = params.get("arguments") if action != "read_resource" else None
        if arguments is not None and not isinstance(arguments, dict):
            return Verdict(False, invalid=f"Invalid params: params.arguments must be an object, got {_kind(arguments)}")
        annotations = self._annotations.get(name) if action == "call_tool" else None
        authorizer = self._source.current
        origin = self._origin(action, name)
        decision, scopes = decide_call(
            authorizer, principal, action, name, arguments=arguments, annotations=annotations, origin=origin
        )
        if logger.isEnabledFor(logging.DEBUG):
            _log_entities(authorizer, principal, action, name, arguments, annotations, origin)
        seen = _input(authorizer, name, origin, annotations)
        self._emit(principal, method, action, name, decision)
        if not decision.allowed and any(e.startswith("arguments too large") for e in decision.errors):
            return Verdict(False, action, name, decision, invalid=f"Invalid params: {decision.errors[0]}", input=seen)
        return Verdict(decision.allowed, action, name, decision, scopes=scopes, input=seen)

    def _completion(self, principal: Principal, params: Any) -> Verdict:
        ref = params.get("ref") if isinstance(params, dict) else None
        kind = ref.get("type") if isinstance(ref, dict) else None
        target = _COMPLETION_REFS.get(kind) if isinstance(kind, str) else None
        if target is None or not isinstance(ref, dict) or not isinstance(ref.get(target[1]), str):
            return Verdict(False, invalid="Invalid params: completion/complete needs params.ref (a prompt or resource)")
        action, key = target
        authorizer = self._source.current
        origin = self._origin(action, ref[key])
        decision, scopes = decide_call(authorizer, principal, action, ref[key], origin=origin)
        if logger.isEnabledFor(logging.DEBUG):
            _log_entities(authorizer, principal, action, ref[key], None, None, origin)
        self._emit(principal, "completion/complete", action, ref[key], decision)
        seen = _input(authorizer, ref[key], origin, None)
        return Verdict(decision.allowed, action, ref[key], decision, scopes=scopes, input=seen)

    def _origin(self, action: ActionName, name: str) -> Origin | None:
        if self._locate is None:
            return None
        try:
            return self._locate(action, name)
        except Exception:  # a broken locator decides as the virtual server itself, never crashes a decision
            logger.exception("authz: cannot tell which backend %r comes from", name)
            return None

    # -- lists -----------------------------------------------------------------------------------------------------

    def filter_answer(self, principal: Principal, answer: Message, on_filtered: ListFiltered | None = None) -> Message:
        """`answer` with every list it carries cut down to the items `principal` may use, decided by what the result
        holds (a `tools` list is filtered as tools, whichever request it claims to answer); anything else passes
        unchanged. `on_filtered(kept, withheld)` is called for each list filtered (withheld: denied by the policies,
        or an item too malformed to decide); not for an error, a request or a result without a list."""
        result = answer.get("result")
        if "method" in answer or not isinstance(result, dict):
            return answer
        for action, items_key, name_key in LIST_METHODS.values():
            items = result.get(items_key)
            if isinstance(items, list):
                result = {**result, items_key: self._allowed_items(principal, action, items, name_key, on_filtered)}
                answer = {**answer, "result": result}
        return answer

    def _allowed_items(
        self,
        principal: Principal,
        action: ActionName,
        items: list[Any],
        name_key: str,
        on_filtered: ListFiltered | None,
    ) -> list[Any]:
        named = [item for item in items if isinstance(item, dict) and isinstance(item.get(name_key), str)]
        if action == "call_tool":
            self._learn(named)
        allowed = self._source.current.filter(
            principal,
            action,
            [(item[name_key], item.get("annotations") if action == "call_tool" else None) for item in named],
            [self._origin(action, item[name_key]) for item in named] if self._locate is not None else None,
        )
        kept = [item for item, ok in zip(named, allowed, strict=True) if ok]
        if on_filtered is not None:
            try:
                on_filtered(len(kept), len(items) - len(kept))
            except Exception:  # recording the summary must never change the answer
                logger.exception("list filter summary failed")
        return kept

    def _learn(self, tools: list[dict[str, Any]]) -> None:
        self._listed = True
        for tool in tools:
            annotations = tool.get("annotations")
            if not isinstance(annotations, dict):
                continue
            hints = {h: annotations[h] for h in ANNOTATION_HINTS if isinstance(annotations.get(h), bool)}
            if self._annotations.get(tool["name"]) == hints:
                continue
            if len(self._annotations) >= _MAX_LEARNT_TOOLS:
                self._annotations.pop(next(iter(self._annotations)))
            self._annotations[tool["name"]] = hints

    # -- decisions out ---------------------------------------------------------------------------------------------

    def _emit(self, principal: Principal, method: str, action: str | None, name: str | None, d: Decision) -> None:
        event = DecisionEvent(principal, method, action, name, d.allowed, d.reasons, d.errors, d.names)
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must never turn into a decision
                logger.exception("authorization decision listener failed")


def _log_decision(event: DecisionEvent) -> None:
    level = logging.DEBUG if event.allowed else logging.INFO
    if logger.isEnabledFor(level):
        logger.log(
            level,
            "authz %s: subject=%r method=%s action=%s resource=%r policies=%s%s (%s)",
            "allow" if event.allowed else "deny",
            event.principal.subject,
            event.method,
            event.action,
            event.resource,
            ",".join(event.policies) or "-",
            f" errors={list(event.errors)}" if event.errors else "",
            describe(Decision(event.allowed, event.policies, event.errors, event.names), event.action),
        )


def _input(
    authorizer: CedarAuthorizer, name: str, origin: Origin | None, annotations: Mapping[str, bool] | None
) -> DecisionInput:
    """What the decision read beyond the caller and the message: the server, and behind a virtual MCP server the
    backend and its own name (when it differs from the advertised one)."""
    if origin is None:
        return DecisionInput(authorizer.server_name, annotations, authorizer.argument_names)
    own = origin.name if origin.name != name else None
    return DecisionInput(authorizer.server_name, annotations, authorizer.argument_names, origin.backend, own)


def _log_entities(
    authorizer: CedarAuthorizer,
    principal: Principal,
    action: ActionName,
    name: str,
    arguments: Mapping[str, Any] | None,
    annotations: Mapping[str, Any] | None,
    origin: Origin | None,
) -> None:
    """The entity set of one decision, at debug level (claims and arguments as Cedar sees them; never a token)."""
    try:
        entities = authorizer.entity_set(
            principal, action, name, arguments=arguments, annotations=annotations, origin=origin
        )
        logger.debug("authz entities: %s", json.dumps(entities, default=str, sort_keys=True))
    except Exception:  # logging must never turn into a decision
        logger.exception("authz: cannot log the entity set")


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}.get(
        type(value), type(value).__name__
    )
