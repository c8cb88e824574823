"""The outcome of one authorization decision, as handed to the gateway and the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Decision", "DecisionInput"]


@dataclass(frozen=True, slots=True)
class Decision:
    """`allowed` is Cedar's answer (default deny); `reasons` are the ids (`policy<N>`, N counting every policy in
    config order) of the policies that decided it, and `names` the same policies as people name them: each one's
    `@id("…")` annotation, or its id when it has none; `errors` are evaluation errors Cedar skipped or why the
    request could not be evaluated at all (then `allowed` is False)."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    names: tuple[str, ...] = ()

    @property
    def named(self) -> tuple[str, ...]:
        """The deciding policies by name (`names`, or the ids when no names were given)."""
        return self.names or self.reasons


@dataclass(frozen=True, slots=True)
class DecisionInput:
    """What a decision read beyond the caller and the message, for the audit trail (so it can be re-decided):
    the server (`MCP::"<server>"`), the tool's annotation hints, the names of the arguments the policies read
    (`None`: the policies may read any, e.g. they use `context` as a whole); behind a virtual MCP server, `backend`
    (the `MCP::"<backend>"` parent) and `backend_name`, the backend's own name for it when that differs from the
    advertised one (`resource.backendName`)."""

    server: str
    annotations: Mapping[str, bool] | None = None
    argument_names: frozenset[str] | None = frozenset()
    backend: str | None = None
    backend_name: str | None = None
