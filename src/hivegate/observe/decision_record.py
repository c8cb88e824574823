"""The `authorization` object of an audit line: the decision, what decided it, and what it was decided on.

`{"decision": "allow" | "deny", "policies": [ids], "names": [...], "why": ..., "input": {...}}`: `names` (only when
a deciding policy has an `@id("…")` annotation) names the same policies as `policies`, by annotation; `why` is
`hivegate.authz.explain.why`'s code (`no_policy` for a deny by no policy). `input` holds what the decision was made
on, so `hivegate authz replay` can decide it again under other policies:

- `server`, `action`, `resource`: the `MCP::"<server>"` the gateway serves, the Cedar action and the tool, prompt or
  URI as advertised; behind a virtual MCP server, `backend` (the `MCP::"<backend>"` parent, a child of the server)
  and `backend_name`, the backend's own name for it (`resource.backendName`), only when it differs from `resource`;
- `principal`: `{"sub", "claims"}`, the caller's claims (with `authorizationClaims: true`, the default) but never a
  token: claims named `jti`, `nonce`, `at_hash`, `c_hash` or ending in `token`, and string values shaped like a JWT,
  are left out;
- `annotations`: the tool's annotation hints the decision read;
- `arguments`, per `authorizationArguments`: `none` (no values), `read` (the arguments some policy reads), `all`
  (every argument; the default when `includeRequestData` is on). Values larger in all than `maxDataSize` bytes
  fall back to those the policies read. `arguments_complete` says whether every argument is there; if not,
  `arguments_read` names the arguments the policies read (each of them that was sent is recorded).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import orjson

from hivegate.core.principal import Principal
from hivegate.observe.exchange import McpCall

__all__ = ["ArgumentsKept", "authorization_record", "recordable_claims"]

ArgumentsKept = Literal["none", "read", "all"]

_TOKENISH_CLAIMS = frozenset({"jti", "nonce", "at_hash", "c_hash"})
_JWT_SHAPED = re.compile(r"[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*")


def recordable_claims(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The claims an audit line may carry: never one that is (or looks like) a token, nor a token's own id."""
    return {
        name: value
        for name, value in claims.items()
        if name not in _TOKENISH_CLAIMS
        and not name.lower().endswith("token")
        and not (isinstance(value, str) and _JWT_SHAPED.fullmatch(value))
    }


def authorization_record(
    call: McpCall,
    principal: Principal | None,
    *,
    claims: bool = True,
    arguments: ArgumentsKept = "none",
    max_size: int = 1024,
) -> dict[str, Any] | None:
    """The `authorization` object for a decided call; None when the call was not decided."""
    if call.decision is None:
        return None
    record: dict[str, Any] = {"decision": call.decision, "policies": list(call.policies)}
    if call.policy_names and call.policy_names != call.policies:
        record["names"] = list(call.policy_names)
    if call.why is not None:
        record["why"] = call.why
    seen = call.decision_input
    if call.decided_on is None or seen is None or principal is None:
        return record
    action, resource = call.decided_on
    found: dict[str, Any] = {"server": seen.server, "action": action, "resource": resource}
    if seen.backend is not None:
        found["backend"] = seen.backend
    if seen.backend_name is not None:
        found["backend_name"] = seen.backend_name
    who: dict[str, Any] = {"sub": principal.subject}
    if claims:
        who["claims"] = recordable_claims(principal.claims)
    found["principal"] = who
    if seen.annotations:
        found["annotations"] = dict(seen.annotations)
    params = call.params
    given = params.get("arguments") if isinstance(params, Mapping) and action != "read_resource" else None
    if arguments != "none" and isinstance(given, Mapping):
        kept, complete = _arguments(given, arguments, seen.argument_names, max_size)
        found["arguments"] = kept
        found["arguments_complete"] = complete
        if not complete and seen.argument_names is not None:
            found["arguments_read"] = sorted(seen.argument_names)  # every one of these that was sent is recorded
    elif arguments != "none" and given is None:
        found["arguments_complete"] = True  # a call without arguments
    record["input"] = found
    return record


def _arguments(
    given: Mapping[str, Any], kept: ArgumentsKept, read: frozenset[str] | None, max_size: int
) -> tuple[dict[str, Any], bool]:
    everything = dict(given)
    if kept == "all" or read is None:
        if _size(everything) <= max_size:
            return everything, True
        if read is None:
            return {}, False
    chosen = {k: v for k, v in given.items() if k in read}
    return chosen, len(chosen) == len(given)


def _size(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except TypeError:
        return 1 << 62
