"""Per-principal limits: a caller at its own limit is refused, every other caller is untouched."""

from __future__ import annotations

from hivegate.asgi.reverse_sessions import SessionTable
from hivegate.pipeline.limits import CallerLimits


def test_a_caller_at_its_limit_is_refused_and_others_are_not() -> None:
    limits = CallerLimits(max_requests=2, max_streams=1)
    held = [limits.take("mallory", stream=False), limits.take("mallory", stream=False)]
    assert all(slot is not None for slot in held)
    assert limits.take("mallory", stream=False) is None
    assert limits.take("alice", stream=False) is not None
    stream = limits.take("mallory", stream=True)  # streams are counted apart from requests
    assert stream is not None
    assert limits.take("mallory", stream=True) is None
    assert limits.refusal(stream=True) == "too many open streams for this caller (limit 1)"
    assert limits.refusal(stream=False) == "too many requests in flight for this caller (limit 2)"


def test_released_slots_come_back_once() -> None:
    limits = CallerLimits(max_requests=1, max_streams=1)
    slot = limits.take("u", stream=False)
    assert slot is not None
    slot.release()
    slot.release()  # idempotent: a second release never frees another's slot
    again = limits.take("u", stream=False)
    assert again is not None
    assert limits.take("u", stream=False) is None
    again.release()
    assert limits.held("u") == (0, 0)


def test_a_caller_at_its_session_limit_ends_its_own_oldest_session_only() -> None:
    table = SessionTable(max_sessions=100, max_per_owner=2)
    assert table.add("a1", "alice") == []
    assert table.add("m1", "mallory") == []
    assert table.add("m2", "mallory") == []
    assert table.owner("m1") == "mallory"  # m1 is now the more recently used
    assert table.add("m3", "mallory") == [("m2", "mallory")]
    assert table.owner("a1") == "alice"
    assert table.owner("m2") is None
    assert table.held_by("mallory") == 2


def test_a_full_table_ends_the_least_recently_used_session() -> None:
    table = SessionTable(max_sessions=2, max_per_owner=10)
    table.add("s1", "a")
    table.add("s2", "b")
    table.owner("s1")
    assert table.add("s3", "c") == [("s2", "b")]
    assert len(table) == 2
    table.remove("s1")
    table.remove("s1")
    assert table.held_by("a") == 0
