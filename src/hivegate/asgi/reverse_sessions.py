"""Which principal owns each session a remote server handed out through the reverse proxy, within limits.

A session id works only for the principal that received it (`Sessions are never authentication`). The table holds
at most `max_sessions` sessions, and at most `max_per_owner` of one principal: a principal at its limit, or a full
table, has its least recently used session ended (the caller gets the ids to `DELETE` at the server), so one caller
opening sessions in a loop only ever ends its own. An id unknown here (the gateway restarted) belongs to the first
principal that uses it; ids are the server's, long and random, so only the session's own client can know it. An
id ended here is remembered (a bounded number of them) and never adopted again.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["SessionTable"]


class SessionTable:
    def __init__(self, *, max_sessions: int = 1000, max_per_owner: int = 50) -> None:
        self._max = max_sessions
        self._max_per_owner = max_per_owner
        self._owners: OrderedDict[str, str] = OrderedDict()  # session id → owner, least recently used first
        self._count: dict[str, int] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()  # ended here: never adopted again as unknown

    def __len__(self) -> int:
        return len(self._owners)

    def owner(self, session_id: str) -> str | None:
        """The session's owner (and the session counts as used now), or None when unknown."""
        found = self._owners.get(session_id)
        if found is not None:
            self._owners.move_to_end(session_id)
        return found

    def ended(self, session_id: str) -> bool:
        """Whether the session was ended here (to make room, or by a DELETE): it is gone, whoever asks."""
        return session_id in self._ended

    def add(self, session_id: str, owner: str) -> list[tuple[str, str]]:
        """Record `owner`'s new session; returns the `(session id, owner)` pairs ended to make room (to be deleted
        at the server)."""
        if session_id in self._owners:
            self._owners.move_to_end(session_id)
            return []
        ended: list[tuple[str, str]] = []
        if self._count.get(owner, 0) >= self._max_per_owner:
            oldest = next(sid for sid, who in self._owners.items() if who == owner)
            ended.append((oldest, owner))
            self.remove(oldest)
        while len(self._owners) >= self._max:
            oldest, who = next(iter(self._owners.items()))
            ended.append((oldest, who))
            self.remove(oldest)
        self._owners[session_id] = owner
        self._count[owner] = self._count.get(owner, 0) + 1
        return ended

    def remove(self, session_id: str) -> None:
        owner = self._owners.pop(session_id, None)
        if owner is None:
            return
        self._ended[session_id] = None
        if len(self._ended) > 10 * self._max:
            self._ended.popitem(last=False)
        left = self._count[owner] - 1
        if left:
            self._count[owner] = left
        else:
            del self._count[owner]

    def held_by(self, owner: str) -> int:
        return self._count.get(owner, 0)
