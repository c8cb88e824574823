"""Why a request was allowed or denied, in words and as a code for the audit trail.

The code (`why`) is one of: `permit` (a permit matched, no forbid did), `forbid` (a forbid matched), `forbid_error`
(a forbid errored while evaluated: denied, fail closed), `no_policy` (no permit matched, or those that could
errored, which grants nothing: Cedar's default deny),
`scope` (the policies allow it but the token lacks a scope the target requires), `method` (a method the gateway
never lets through), `error` (the request could not be evaluated, e.g. arguments that are not an object).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from hivegate.authz.decision import Decision

__all__ = ["SCOPE_ERROR", "Why", "describe", "why"]

Why = Literal["permit", "forbid", "forbid_error", "no_policy", "scope", "method", "error"]
SCOPE_ERROR = "insufficient scope: "  # how the gate marks a call refused for its scopes
_POLICY_ERROR = "error while evaluating policy "  # Cedar's words for a policy it skipped


def why(decision: Decision, action: str | None = "call_tool") -> Why:
    """The code for what decided `decision` (`action` None: a method the gateway never lets through)."""
    if action is None:
        return "method"
    if decision.allowed:
        return "permit"
    if any(e.startswith(SCOPE_ERROR) for e in decision.errors):
        return "scope"
    if decision.reasons:
        errored = [e for e in decision.errors if any(f"`{r}`" in e for r in decision.reasons)]
        return "forbid_error" if errored else "forbid"
    unevaluated = [e for e in decision.errors if not e.startswith(_POLICY_ERROR)]
    return "error" if unevaluated else "no_policy"  # a permit that errored grants nothing: still no policy


def describe(decision: Decision, action: str | None = "call_tool") -> str:
    """One line saying what decided it, e.g. `denied by forbid no-contractors` or `denied: no policy permits it`."""
    names = _listed(decision.named)
    code = why(decision, action)
    if code == "permit":
        return f"allowed by {names}"
    if code == "forbid":
        return f"denied by {names}"
    if code == "forbid_error":
        return f"denied: {names} errored while evaluated (a forbid that errors denies)"
    if code == "scope":
        lacking = next(e for e in decision.errors if e.startswith(SCOPE_ERROR))
        return f"denied: {lacking} (permitted by {names})" if names else f"denied: {lacking}"
    if code == "method":
        return "denied: the gateway never lets this method through"
    if code == "error":
        return f"denied: cannot be evaluated: {next(e for e in decision.errors if not e.startswith(_POLICY_ERROR))}"
    return "denied: no policy permits it (default deny)"


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names)
