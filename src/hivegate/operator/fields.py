"""The conditions that say how a workload's pod and scaling fields were applied.

- `PodTemplateValid` (when `spec.podTemplateSpec` is given): True once merged; its message names each setting of the
  operator's the template replaced. A template the operator refuses makes the resource `Failed` (`Valid: False`,
  and `PodTemplateValid: False`, set by the reconciler).
- `StdioReplicaCapped` (`MCPServer`): True when `spec.replicas` asks for more than one gateway for a stdio server
  (it runs one: the gateway attaches to the server's one pod).
- `SessionStorageWarning`: True when several replicas will not share their sessions as asked: `replicas > 1`
  without Redis `sessionStorage` where replicas need it, or with it where it cannot help (an HTTP image runs in each
  gateway pod, so a session stays with the pod whose server holds it).
- `FieldsNotApplied`: True when a field is read and not applied (`spec.backendReplicas`, `spec.trustProxyHeaders`,
  `resourceOverrides` keys the operator keeps, …), each named with why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from hivegate.operator.shape import Shape
from hivegate.operator.status import Clock, condition

__all__ = ["field_conditions", "session_sharing"]

Sharing = Literal["store", "server", "pod", "one"]


def session_sharing(shape: Shape) -> Sharing:
    """How the gateway's replicas can serve each other's sessions: `store` (through Redis `sessionStorage`: the
    gateway records them and replays a client's `initialize` where it lands), `server` (the server's own sessions,
    which every replica forwards as they are), `pod` (each pod runs its own server: a session stays on its pod),
    `one` (one replica)."""
    if shape.backend == "stdio-image":
        return "one"
    if shape.backend == "vmcp" or shape.transport == "sse":
        return "store"
    return "pod" if shape.backend == "http-image" else "server"


def _redis(spec: Mapping[str, Any]) -> bool:
    storage = spec.get("sessionStorage")
    return isinstance(storage, Mapping) and storage.get("provider") == "redis"


def _session_condition(spec: Mapping[str, Any], shape: Shape) -> tuple[bool, str, str]:
    asked = spec.get("replicas")
    many = isinstance(asked, int) and asked > 1 and shape.replicas > 1
    if not many:
        return False, "SessionStorageWarningNotApplicable", "one replica (or none asked for)"
    sharing, redis = session_sharing(shape), _redis(spec)
    if sharing == "store":
        if redis:
            return False, "SessionStorageConfigured", "replicas share sessions through Redis"
        return (
            True,
            "SessionStorageMissingForReplicas",
            (
                "replicas > 1 but sessionStorage.provider is not redis: a session is served by the replica that opened "
                "it only (the Service's sessionAffinity: ClientIP keeps a client on one)"
            ),
        )
    if sharing == "server":
        return False, "SessionStorageNotNeeded", (
            "the server keeps the sessions: every replica forwards them" + (" (sessionStorage is not used)" if redis
                                                                          else "")
        )  # fmt: skip
    return (
        True,
        "SessionsStayOnTheirPod",
        (
            "each replica runs its own server (the mcp container), so a session is served by its pod only"
            + (" and sessionStorage cannot share it" if redis else "")
            + "; keep sessionAffinity: ClientIP"
        ),
    )


def field_conditions(
    body: Mapping[str, Any],
    shape: Shape,
    notes: Sequence[str],
    template_notes: Sequence[str],
    current: Sequence[Mapping[str, Any]] | None,
    generation: int | None,
    clock: Clock,
) -> list[dict[str, Any]]:
    spec = body.get("spec") or {}
    out: list[dict[str, Any]] = []
    if spec.get("podTemplateSpec") is not None:
        text = "; ".join(template_notes) if template_notes else "merged into the pod template"
        out.append(condition(current, "PodTemplateValid", True, "ValidPodTemplateSpec", text, generation, clock))
    if shape.kind == "MCPServer":
        asked = spec.get("replicas")
        capped = shape.backend == "stdio-image" and isinstance(asked, int) and asked > 1
        message = (
            f"spec.replicas is {asked}: a stdio server runs one gateway (it attaches to the server's one pod)"
            if capped
            else "stdio replica cap is not active"
        )
        reason = "StdioTransportCapAt1" if capped else "StdioReplicaCapNotActive"
        out.append(condition(current, "StdioReplicaCapped", capped, reason, message, generation, clock))
    warn, reason, message = _session_condition(spec, shape)
    out.append(condition(current, "SessionStorageWarning", warn, reason, message, generation, clock))
    text = "; ".join(notes) if notes else "every field given is applied"
    out.append(condition(current, "FieldsNotApplied", bool(notes), "FieldsNotApplied" if notes else "AllApplied",
                         text[:1000], generation, clock))  # fmt: skip
    return out
