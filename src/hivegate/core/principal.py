"""Who is calling: the authenticated identity handed from authentication to everything downstream."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["Principal", "TokenKind"]

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
    def key(self) -> str:
        """A stable identity key (issuer + subject) used to bind sessions to their owner."""
        return f"{self.issuer}\x00{self.subject}"
