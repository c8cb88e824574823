"""Who is calling: the authenticated identity handed from authentication to everything downstream."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Principal", "TokenKind", "held_scopes"]

TokenKind = Literal["jwt", "opaque", "local", "anonymous"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `claims` holds every claim of the token (or the introspection answer)."""

    subject: str
    issuer: str
    kind: TokenKind
    claims: Mapping[str, Any] = field(default_factory=dict)
    expires_at: float | None = None

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes the token grants (`held_scopes` of its claims)."""
        return held_scopes(self.claims)

    @property
    def key(self) -> str:
        """A stable identity key (issuer + subject) used to bind sessions to their owner."""
        return f"{self.issuer}\x00{self.subject}"


def held_scopes(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """The scopes a token holds, in order, each once: `scope` (a space-separated string, RFC 9068 section 2.2.3,
    RFC 8693 section 4.2) and `scp` (a list or a string, as Okta and Microsoft Entra ID write it)."""
    found: list[str] = []
    for name in ("scope", "scp"):
        value = claims.get(name)
        items = value.split() if isinstance(value, str) else value if isinstance(value, list) else []
        found += [item for item in items if isinstance(item, str)]
    return tuple(dict.fromkeys(found))
