"""Cedar's messages, with what to do about them: the lines people see when a policy does not parse, validate or
evaluate the way they meant.

- `unexpected end of input` (a policy text that stops early): a `(`, `{` or `[` left open, or, most often, the `;`
  every policy ends with;
- an attribute the schema does not declare: a `claim_*` (it depends on the identity provider's tokens) or `arg_*`
  (on each tool's arguments) is read unguarded, so a request without it makes the policy error (a permit then
  grants nothing, a forbid denies): guard it with `principal has claim_email && …`; any other name is compared
  with the attributes hivegate sets (`backend` → `backendName`);
- an evaluation error saying an entity or the context lacks an attribute: the same guard.
"""

from __future__ import annotations

import re

from hivegate.config.reader import did_you_mean

__all__ = ["END_OF_INPUT", "guard_hint", "missing_attribute", "syntax_hint"]

END_OF_INPUT = "unexpected end of input"
DECLARED = ("name", "backendName", "operation", "feature", "uri", "readOnlyHint", "destructiveHint",
            "idempotentHint", "openWorldHint")  # fmt: skip
_CLOSERS = {"(": ")", "{": "}", "[": "]"}
_ON_ENTITY = re.compile(r"attribute `([^`]+)` on entity type `([^`]+)` not found")
_IN_CONTEXT = re.compile(r"attribute `([^`]+)` in context for \S+ not found")
_LACKS = re.compile(r'`(?:(\w+)::"[^"]*"|context)` does not have the attribute `([^`]+)`')
_RESOURCE_TYPES = {"Tool", "Prompt", "Resource"}


def syntax_hint(text: str, message: str) -> str:
    """What to add to Cedar's syntax `message` for policy `text` ("" when nothing useful)."""
    if message != END_OF_INPUT:
        return ""
    open_ = _unclosed(text)
    if open_:
        return f": is a `{_CLOSERS[open_[-1]]}` missing? (`{open_[-1]}` is never closed)"
    return ": is the `;` missing at the end of the policy? (every policy ends with `;`)"


def _unclosed(text: str) -> list[str]:
    """The brackets `text` opens and never closes, outside string literals."""
    stack: list[str] = []
    quoted = escaped = False
    for char in text:
        if quoted:
            escaped, quoted = (False, True) if escaped else (char == "\\", char != '"')
        elif char == '"':
            quoted = True
        elif char in _CLOSERS:
            stack.append(char)
        elif char in _CLOSERS.values() and stack and _CLOSERS[stack[-1]] == char:
            stack.pop()
    return stack


def missing_attribute(message: str) -> str | None:
    """A validator warning about an undeclared attribute, rewritten to say what to do (None: not one)."""
    if found := _ON_ENTITY.search(message):
        attr, kind = found.groups()
        var = "principal" if kind not in _RESOURCE_TYPES else "resource"
    elif found := _IN_CONTEXT.search(message):
        attr, var = found.group(1), "context"
    else:
        return None
    if attr.startswith(("claim_", "arg_")):
        source = "the identity provider's tokens" if attr.startswith("claim_") else "each tool's arguments"
        return (
            f"{var}.{attr} depends on {source}, so the schema cannot declare it; a request without it makes this "
            f"policy error (a permit then grants nothing, a forbid denies): guard it with `{var} has {attr} && …`"
        )
    if var == "resource":
        longer = [d for d in DECLARED if d.lower().startswith(attr.lower())]
        return f"{message} (did you mean {longer[0]!r}?)" if longer else f"{message}{did_you_mean(attr, DECLARED)}"
    return message


def guard_hint(error: str) -> str:
    """For an evaluation error naming an attribute the request lacks: how to guard it ("" otherwise)."""
    found = _LACKS.search(error)
    if found is None:
        return ""
    kind, attr = found.groups()
    var = "context" if kind is None else "resource" if kind in _RESOURCE_TYPES else "principal"
    return f" (guard it: `{var} has {attr} && …`)"
