"""The outcome of one authorization decision, as handed to the gateway and the audit log."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Decision"]


@dataclass(frozen=True, slots=True)
class Decision:
    """`allowed` is Cedar's answer (default deny); `reasons` are the ids (`policy<N>`, N counting every policy in
    config order) of the policies that decided it; `errors` are evaluation errors Cedar skipped or why the request
    could not be evaluated at all (then `allowed` is False)."""

    allowed: bool
    reasons: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
